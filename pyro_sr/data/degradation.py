"""Degradation operators that turn a high-resolution (HR) image into its low-resolution (LR) input.

The paper's operator is a per-channel Gaussian blur with ``scipy.ndimage.gaussian_filter`` semantics
(``mode="reflect"``: half-sample symmetric borders; ``truncate=4.0``) followed by taking every
``scale``-th pixel starting at offset ``scale // 2``. It is written in pure torch so it is batched,
differentiable and runs on any device; only the sampled output pixels are computed (a strided
separable convolution), which makes it cheap enough to apply inside a training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED_SCALES = (2, 4, 8)
DEGRADATIONS = ("gaussian", "bicubic")


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """The normalised 1-D Gaussian kernel scipy.ndimage uses: radius ``int(truncate * sigma + 0.5)``."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def symmetric_indices(length: int, pad: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices that extend ``range(length)`` by ``pad`` on each side with half-sample symmetric borders.

    This is scipy's ``reflect`` mode (``d c b a | a b c d | d c b a``), repeated as often as needed, so
    it also works when the kernel is wider than the image.
    """
    idx = torch.arange(-pad, length + pad, device=device) % (2 * length)
    return torch.where(idx >= length, 2 * length - 1 - idx, idx)


def check_scale(scale: int) -> int:
    """``scale`` if pyro-sr supports it (the one place that says which factors do), else a clear error."""
    if scale not in SUPPORTED_SCALES:
        raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {scale}")
    return scale


def _check_image_batch(x: torch.Tensor, scale: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected an image batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    check_scale(scale)
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not divisible by the scale {scale}")


def gaussian_degrade(hr: torch.Tensor, scale: int = 4, sigma: float = 1.0) -> torch.Tensor:
    """Blur each channel with a Gaussian (scipy ``reflect`` borders) and keep pixels ``scale//2 :: scale``."""
    _check_image_batch(hr, scale)
    n, c, h, w = hr.shape
    kernel = gaussian_kernel1d(sigma).to(device=hr.device, dtype=hr.dtype)
    radius = (kernel.numel() - 1) // 2
    offset = scale // 2
    # Pad symmetrically, then start the strided window so that output k is centred on pixel offset + k*scale.
    rows = symmetric_indices(h, radius, hr.device)[offset : offset + (h // scale - 1) * scale + 2 * radius + 1]
    cols = symmetric_indices(w, radius, hr.device)[offset : offset + (w // scale - 1) * scale + 2 * radius + 1]
    x = hr.index_select(-2, rows).index_select(-1, cols).reshape(n * c, 1, rows.numel(), cols.numel())
    x = F.conv2d(x, kernel.view(1, 1, -1, 1), stride=(scale, 1))
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), stride=(1, scale))
    return x.reshape(n, c, h // scale, w // scale)


def bicubic_degrade(hr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """Antialiased bicubic downscaling (the usual DIV2K/Set5 protocol), offered as a second degradation."""
    _check_image_batch(hr, scale)
    return F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)


@dataclass(frozen=True)
class Degradation:
    """A named degradation with its parameters; calling it maps HR (N, C, H, W) to LR."""

    kind: str = "gaussian"
    scale: int = 4
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.kind!r}; choose from {DEGRADATIONS}")
        check_scale(self.scale)
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be a positive number, got {self.sigma}")

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        if self.kind == "gaussian":
            return gaussian_degrade(hr, self.scale, self.sigma)
        return bicubic_degrade(hr, self.scale)


def degrade(hr: torch.Tensor, scale: int = 4, sigma: float = 1.0, kind: str = "gaussian") -> torch.Tensor:
    """Degrade an HR batch with the paper's operator (default) or bicubic downscaling."""
    return Degradation(kind, scale, sigma)(hr)
