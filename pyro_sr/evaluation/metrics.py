"""Image-quality metrics on RGB in [0, 1], no border crop: the one metrics module used by evaluate, demo,
tests and benchmarks.

Two PSNRs are reported because they differ: ``psnr`` is computed from the data set's MSE (how the paper's
MSE figures translate), ``mean_psnr`` is the mean of per-image PSNRs (how SR papers usually report).
SSIM is torchmetrics' (Gaussian window 11, sigma 1.5), a well-tested implementation of Wang et al. (2004).
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from pyro_sr.data.degradation import Degradation


def mse_to_psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def per_image_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).flatten(1).mean(1)


def per_image_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(per_image_mse(x, y).clamp_min(1e-12))


def per_image_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    kernel = min(11, x.shape[-1], x.shape[-2]) // 2 * 2 + 1  # torchmetrics needs an odd window within the image
    return structural_similarity_index_measure(x, y, data_range=1.0, kernel_size=kernel, reduction="none")


class SRMetrics:
    """Accumulates MSE, both PSNRs, SSIM and LR-consistency PSNR (PSNR of degrade(SR) against the LR input)
    over batches, so a whole data set is scored without keeping its outputs."""

    def __init__(self, degradation: Degradation):
        self.degradation = degradation
        self.images = 0
        self.sq_err = 0.0
        self.pixels = 0
        self.lr_sq_err = 0.0
        self.lr_pixels = 0
        self.psnr_sum = 0.0
        self.ssim_sum = 0.0

    @torch.no_grad()
    def update(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> None:
        sr = sr.clamp(0, 1)
        self.images += len(sr)
        self.sq_err += float(((sr - hr) ** 2).sum())
        self.pixels += hr.numel()
        self.lr_sq_err += float(((self.degradation(sr) - lr) ** 2).sum())
        self.lr_pixels += lr.numel()
        self.psnr_sum += float(per_image_psnr(sr, hr).sum())
        self.ssim_sum += float(per_image_ssim(sr, hr).sum())

    def result(self) -> dict[str, float]:
        if not self.images:
            raise ValueError("no images were scored")
        mse = self.sq_err / self.pixels
        return {
            "mse": mse,
            "psnr": mse_to_psnr(mse),
            "mean_psnr": self.psnr_sum / self.images,
            "ssim": self.ssim_sum / self.images,
            "lr_psnr": mse_to_psnr(self.lr_sq_err / self.lr_pixels),
            "images": self.images,
        }
