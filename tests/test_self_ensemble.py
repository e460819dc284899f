import pytest
import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.models.blocks import bicubic_upscale
from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.predict.self_ensemble import ALL_SYMMETRIES, degradation_symmetries, self_ensemble


def test_every_symmetry_is_undone_by_its_inverse():
    images = torch.rand(2, 3, 5, 7)
    assert len(set(ALL_SYMMETRIES)) == 48
    for g in ALL_SYMMETRIES:
        torch.testing.assert_close(g.invert(g.apply(images)), images, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("degradation", "count", "mirrors"),
    [
        (Degradation(scale=4), 12, False),  # offset 2 of 4: mirroring moves the sampling grid
        (Degradation(scale=2), 12, False),
        (Degradation("bicubic", 4), 48, True),
    ],
)
def test_the_symmetries_found_are_exactly_those_that_commute_with_degrading(degradation, count, mirrors):
    found = degradation_symmetries(degradation)
    assert len(found) == count and found[0] == ALL_SYMMETRIES[0]
    assert any(g.flip_rows or g.flip_cols for g in found) == mirrors
    hr = torch.rand(2, 3, 8 * degradation.scale, 4 * degradation.scale, dtype=torch.float64)
    for g in ALL_SYMMETRIES:
        commutes = torch.allclose(degradation(g.apply(hr)), g.apply(degradation(hr)), atol=1e-6)
        assert commutes == (g in found)


def test_self_ensembling_an_equivariant_upscaler_changes_nothing_and_a_cnn_keeps_its_shape():
    lr = torch.rand(2, 3, 6, 9)
    symmetries = degradation_symmetries(Degradation(scale=4))

    def bicubic(x):
        return bicubic_upscale(x, 4)

    torch.testing.assert_close(self_ensemble(bicubic, symmetries)(lr), bicubic(lr))
    torch.manual_seed(0)
    cnn = build_cnn(CNNConfig(channels=8, blocks=1)).eval()
    with torch.no_grad():
        plain, ensembled = cnn(lr), self_ensemble(cnn, symmetries)(lr)
    assert ensembled.shape == plain.shape == (2, 3, 24, 36)
    assert not torch.allclose(ensembled, plain)
    with pytest.raises(ValueError, match="at least one"):
        self_ensemble(cnn, [])
