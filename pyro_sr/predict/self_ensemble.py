"""Self-ensembling a CNN over the exact symmetries of the degradation (the "+" of EDSR+).

A transform g of the HR image is usable only if degrading commutes with it, degrade(g x) = g degrade(x): then
g^-1 f(g y) is as valid a prediction of x as f(y), and averaging them cancels part of the network's error. The
paper's operator samples every 4th pixel from offset 2, so mirroring moves the grid (offset 1) and is *not* such
a symmetry; transposing and reordering channels are. Which of the 48 flips/rotations/channel orders qualify is
found by checking the degradation numerically, so bicubic downscaling (mirror-symmetric) gets all of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.models.contract import Upscaler

ENSEMBLE_HELP = "12 passes for the paper's operator: transposed or not, 6 channel orders; 48 for bicubic"


@dataclass(frozen=True)
class ImageSymmetry:
    """Reorder the channels, then mirror rows and/or columns, then (optionally) transpose."""

    channels: tuple[int, int, int] = (0, 1, 2)
    flip_rows: bool = False
    flip_cols: bool = False
    transpose: bool = False

    def _mirror(self, images: torch.Tensor) -> torch.Tensor:
        """The mirrors alone; each is its own inverse."""
        dims = [d for d, flip in ((-2, self.flip_rows), (-1, self.flip_cols)) if flip]
        return images.flip(dims) if dims else images

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        images = self._mirror(images[..., list(self.channels), :, :])
        return images.transpose(-1, -2) if self.transpose else images

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        images = self._mirror(images.transpose(-1, -2) if self.transpose else images)
        return images[..., [self.channels.index(c) for c in range(3)], :, :]


ALL_SYMMETRIES = tuple(
    ImageSymmetry(channels, flip_rows, flip_cols, transpose)
    for channels in itertools.permutations(range(3))
    for flip_rows, flip_cols, transpose in itertools.product((False, True), repeat=3)
)


def degradation_symmetries(degradation: Degradation, atol: float = 1e-5) -> list[ImageSymmetry]:
    """The transforms that commute with ``degradation`` (identity first), checked on a random non-square image."""
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 6 * degradation.scale, 10 * degradation.scale, generator=generator, dtype=torch.float64)
    lr = degradation(hr)
    return [g for g in ALL_SYMMETRIES if torch.allclose(degradation(g.apply(hr)), g.apply(lr), atol=atol)]


def self_ensemble(upscaler: Upscaler, symmetries: list[ImageSymmetry]) -> Upscaler:
    """LR -> the mean of g^-1(upscaler(g(LR))) over ``symmetries``."""
    if not symmetries:
        raise ValueError("self-ensembling needs at least one symmetry")

    def ensembled(lr: torch.Tensor) -> torch.Tensor:
        total = None
        for g in symmetries:
            sr = g.invert(upscaler(g.apply(lr)))
            total = sr if total is None else total + sr
        return total / len(symmetries)

    return ensembled
