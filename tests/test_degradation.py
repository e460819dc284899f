import numpy as np
import pytest
import torch
from scipy import ndimage

from pyro_sr.data.degradation import Degradation, bicubic_degrade, degrade, gaussian_kernel1d


def scipy_degrade(x: np.ndarray, scale: int, sigma: float) -> np.ndarray:
    out = np.empty(x.shape[:2] + (x.shape[2] // scale, x.shape[3] // scale))
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            blurred = ndimage.gaussian_filter(x[i, c], sigma, mode="reflect", truncate=4.0)
            out[i, c] = blurred[scale // 2 :: scale, scale // 2 :: scale]
    return out


@pytest.mark.parametrize(
    "scale,size,sigma",
    [(4, (32, 32), 1.0), (2, (6, 10), 1.0), (8, (16, 24), 1.0), (4, (4, 8), 1.0), (4, (20, 12), 1.7), (2, (2, 2), 0.6)],
)
def test_matches_scipy_gaussian_filter_and_slicing(scale, size, sigma):
    x = np.random.default_rng(1).random((3, 3) + size).astype(np.float32)
    ours = degrade(torch.from_numpy(x), scale=scale, sigma=sigma).numpy()
    np.testing.assert_allclose(ours, scipy_degrade(x.astype(np.float64), scale, sigma), atol=1e-5)


def test_kernel_has_nine_taps_for_sigma_one():
    kernel = gaussian_kernel1d(1.0)
    assert kernel.numel() == 9
    assert float(kernel.sum()) == pytest.approx(1.0)


def test_is_differentiable_and_linear():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: degrade(t, scale=2), (x,))
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(degrade(2 * a + b), 2 * degrade(a) + degrade(b))


def test_rejects_sizes_not_divisible_by_scale_and_bad_parameters():
    with pytest.raises(ValueError, match="not divisible"):
        degrade(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="scale"):
        Degradation(scale=3)
    with pytest.raises(ValueError, match="sigma"):
        Degradation(sigma=0.0)
    with pytest.raises(ValueError, match="N, C, H, W"):
        degrade(torch.rand(3, 32, 32))


def test_bicubic_degradation_is_named_and_shapes_right():
    x = torch.rand(2, 3, 32, 48)
    assert Degradation("bicubic", 4)(x).shape == (2, 3, 8, 12)
    torch.testing.assert_close(Degradation("bicubic", 2)(x), bicubic_degrade(x, 2))
    constant = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(bicubic_degrade(constant, 4), torch.full((1, 3, 4, 4), 0.3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda_like_on_cpu():
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(degrade(x.cuda()).cpu(), degrade(x), atol=1e-6, rtol=1e-5)
