import pytest
import torch
from torch import nn

from pyro_sr.models.cnn import CNNConfig, ResidualSR, SeedCNN, build_cnn


@pytest.mark.parametrize("arch", ["seed", "resnet"])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_any_image_size_is_upscaled_by_the_scale(arch, scale):
    model = build_cnn(CNNConfig(arch=arch, scale=scale, channels=8, blocks=2))
    for h, w in [(5, 7), (8, 8), (1, 3)]:
        assert model(torch.rand(2, 3, h, w)).shape == (2, 3, h * scale, w * scale)


def test_seed_cnn_is_the_papers_network():
    layers = list(SeedCNN(CNNConfig(arch="seed")).net)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in layers if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, 3), (64, 64, 5), (64, 128, 5), (128, 64, 5), (64, 3, 5)]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Conv2d", "ReLU", "Upsample", "ReLU", "Conv2d", "ReLU", "Upsample", "ReLU",
                     "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU"]  # fmt: skip
    assert all(m.mode == "bicubic" and m.scale_factor == 2 for m in layers if isinstance(m, nn.Upsample))


def test_residual_cnn_starts_close_to_bicubic():
    model = ResidualSR(CNNConfig(channels=16, blocks=4))
    with torch.no_grad():
        nn.init.zeros_(model.tail.weight)
        nn.init.zeros_(model.tail.bias)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model(lr), nn.functional.interpolate(lr, scale_factor=4, mode="bicubic"))


def test_config_rejects_unknown_arch_and_scale():
    with pytest.raises(ValueError, match="architecture"):
        CNNConfig(arch="unet")
    with pytest.raises(ValueError, match="scale"):
        CNNConfig(scale=3)
