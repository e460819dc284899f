import math

import pytest
import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.metrics import SRMetrics, mse_to_psnr, per_image_psnr, per_image_ssim


def test_psnr_from_mse():
    assert mse_to_psnr(0.01) == pytest.approx(20.0)
    assert mse_to_psnr(0.0) == math.inf


def test_dataset_psnr_and_mean_per_image_psnr_differ_as_defined():
    hr = torch.rand(2, 3, 16, 16)
    sr = hr.clone()
    sr[0] += 0.1  # one bad image, one nearly perfect one
    sr[1] += 0.001
    sr = sr.clamp(0, 1)
    metrics = SRMetrics(Degradation())
    metrics.update(sr[:1], hr[:1], Degradation()(hr[:1]))
    metrics.update(sr[1:], hr[1:], Degradation()(hr[1:]))
    result = metrics.result()
    mse = float(((sr - hr) ** 2).mean())
    assert result["mse"] == pytest.approx(mse, rel=1e-5)
    assert result["psnr"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert result["mean_psnr"] == pytest.approx(float(per_image_psnr(sr, hr).mean()), rel=1e-5)
    assert result["mean_psnr"] > result["psnr"] + 5
    assert result["images"] == 2


def test_lr_consistency_is_perfect_for_the_truth_and_ssim_is_one():
    degradation = Degradation()
    hr = torch.rand(3, 3, 32, 32)
    metrics = SRMetrics(degradation)
    metrics.update(hr, hr, degradation(hr))
    result = metrics.result()
    assert result["lr_psnr"] == math.inf and result["psnr"] == math.inf
    assert result["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert per_image_ssim(hr, 1 - hr).max() < 0.5


def test_empty_metrics_refuse_to_report():
    with pytest.raises(ValueError):
        SRMetrics(Degradation()).result()


@pytest.mark.parametrize("size", [(32, 32), (17, 24)])
def test_ssim_agrees_with_torchmetrics(size):
    from torchmetrics.functional.image import structural_similarity_index_measure

    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(4, 3, *size, generator=gen)
    # from a near copy to noise: the agreement must hold over the whole range of SSIM
    sr = (hr + torch.linspace(0.01, 1.0, 4).view(4, 1, 1, 1) * torch.randn(hr.shape, generator=gen)).clamp(0, 1)
    theirs = structural_similarity_index_measure(sr, hr, data_range=1.0, reduction="none")
    assert torch.allclose(per_image_ssim(sr, hr), theirs, atol=1e-5)
    assert theirs.max() > 0.9 and theirs.min() < 0.5


def test_ssim_refuses_images_smaller_than_its_window_and_unlike_batches():
    with pytest.raises(ValueError, match="at least 6 pixels"):
        per_image_ssim(torch.rand(1, 3, 5, 8), torch.rand(1, 3, 5, 8))
    with pytest.raises(ValueError, match="one shape"):
        per_image_ssim(torch.rand(1, 3, 8, 8), torch.rand(2, 3, 8, 8))
