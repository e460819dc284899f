"""Image-quality metrics on RGB in [0, 1], no border crop: the one metrics module: ``METRICS`` is the table that
``evaluate``, the demo, ``bundle_weights.py`` and ``make_results.py`` iterate, so a new metric is one entry here.

Two PSNRs are reported because they differ: ``psnr`` is computed from the data set's MSE (how the paper's
MSE figures translate), ``mean_psnr`` is the mean of per-image PSNRs (how SR papers usually report).
SSIM is Wang et al.'s (2004) with an 11-tap Gaussian window (sigma 1.5) over reflect-padded borders, the same
figure torchmetrics 1.9 computes (tests/test_metrics.py checks they agree), written here in separable
convolutions because importing torchmetrics alone took 5 s of the demo's 30 s budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pyro_sr.data.degradation import Degradation


def mse_to_psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def per_image_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).flatten(1).mean(1)


def per_image_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(per_image_mse(x, y).clamp_min(1e-12))


SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # an 11-tap window: torchmetrics' int(3.5 * sigma + 0.5) on each side
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al.'s stabilising constants, for data in [0, 1]


def per_image_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image pair over its channels and pixels, (N,); images at least 6 pixels a side."""
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"SSIM compares two (N, C, H, W) batches of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) <= SSIM_RADIUS:
        raise ValueError(f"SSIM needs images of at least {SSIM_RADIUS + 1} pixels a side, got {tuple(x.shape[-2:])}")
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=x.dtype, device=x.device)
    window = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    window = window / window.sum()
    y = y.to(x.dtype)
    moments = torch.cat([x, y, x * x, y * y, x * y], 1)  # local means of these five give every SSIM term
    moments = F.pad(moments, (SSIM_RADIUS,) * 4, mode="reflect")
    groups = moments.shape[1]
    moments = F.conv2d(moments, window.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    moments = F.conv2d(moments, window.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    mu_x, mu_y, xx, yy, xy = moments.chunk(5, 1)
    var_x, var_y = (xx - mu_x**2).clamp_min(0), (yy - mu_y**2).clamp_min(0)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim = (2 * mu_x * mu_y + c1) * (2 * (xy - mu_x * mu_y) + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim.flatten(1).mean(1)


@dataclass(frozen=True)
class Metric:
    """One image-quality metric: per batch it adds ``total`` and ``count`` sums; its value is
    ``finish(total / count)``. ``title`` and ``digits`` are how tables show it; ``summary_digits`` how the
    short tables of README and RESULTS.md do (None: not shown there)."""

    key: str
    title: str
    digits: int
    sums: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Degradation], tuple[float, int]]
    finish: Callable[[float], float] = float
    summary_title: str | None = None
    summary_digits: int | None = None


def _squared_error(sr, hr, lr, degradation) -> tuple[float, int]:
    return float(((sr - hr) ** 2).sum()), hr.numel()


def _lr_squared_error(sr, hr, lr, degradation) -> tuple[float, int]:
    return float(((degradation(sr) - lr) ** 2).sum()), lr.numel()


METRICS: tuple[Metric, ...] = (
    Metric("mse", "MSE", 5, _squared_error, summary_title="MSE", summary_digits=5),
    Metric("psnr", "PSNR (dataset MSE)", 2, _squared_error, mse_to_psnr, "PSNR", 2),
    Metric("mean_psnr", "mean per-image PSNR", 2, lambda sr, hr, lr, d: (float(per_image_psnr(sr, hr).sum()), len(sr))),
    Metric("ssim", "SSIM", 4, lambda sr, hr, lr, d: (float(per_image_ssim(sr, hr).sum()), len(sr)), float, "SSIM", 3),
    Metric("lr_psnr", "LR-PSNR", 2, _lr_squared_error, mse_to_psnr, "LR-PSNR", 1),
)
METRIC_KEYS = tuple(metric.key for metric in METRICS)


class SRMetrics:
    """Accumulates every metric of ``METRICS`` over batches (outputs clamped to [0, 1]), so a whole data set is
    scored without keeping its outputs."""

    def __init__(self, degradation: Degradation):
        self.degradation = degradation
        self.images = 0
        self.totals = {metric.key: [0.0, 0] for metric in METRICS}

    @torch.no_grad()
    def update(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> None:
        sr = sr.clamp(0, 1)
        self.images += len(sr)
        for metric in METRICS:
            total, count = metric.sums(sr, hr, lr, self.degradation)
            self.totals[metric.key][0] += total
            self.totals[metric.key][1] += count

    def result(self) -> dict[str, float]:
        if not self.images:
            raise ValueError("no images were scored")
        values = {
            metric.key: metric.finish(self.totals[metric.key][0] / self.totals[metric.key][1]) for metric in METRICS
        }
        return {**values, "images": self.images}
