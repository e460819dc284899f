"""Exact data augmentation for super-resolution pairs: transform the HR image, then degrade it again.

The paper's degradation is linear, per channel and samples a fixed grid (offset ``scale // 2``), so transforming
an LR image would pair it with the wrong HR pixels; recomputing the LR from the transformed HR keeps every pair a
true (degrade(x), x). Our CNN overfits CIFAR-10 within ~15 epochs (docs/training.md), which is what these are for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from pyro_sr.data.degradation import Degradation

AUGMENTATIONS = ("hflip", "dihedral", "rgb")
AUGMENTATION_HELP = "hflip: left-right mirroring; dihedral: the 8 flips/rotations (square images); rgb: channel order"


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return tuple(names)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(a.device).view(-1, 1, 1, 1), a, b)


def augment_hr(hr: torch.Tensor, names: Sequence[str], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply each named augmentation to every image of ``hr`` (N, 3, H, W) with its own random draw."""
    n = len(hr)
    if "hflip" in names or "dihedral" in names:
        hr = _where(torch.rand(n, generator=generator) < 0.5, hr.flip(-1), hr)
    if "dihedral" in names:
        hr = _where(torch.rand(n, generator=generator) < 0.5, hr.flip(-2), hr)
        if hr.shape[-1] != hr.shape[-2]:
            raise ValueError(f"dihedral augmentation needs square images, got {tuple(hr.shape[-2:])}")
        hr = _where(torch.rand(n, generator=generator) < 0.5, hr.transpose(-1, -2), hr)
    if "rgb" in names:
        order = torch.rand(n, 3, generator=generator).argsort(dim=1).to(hr.device)
        hr = hr.gather(1, order.view(n, 3, 1, 1).expand_as(hr))
    return hr


class AugmentedPairs:
    """Training data whose HR images are augmented on the fly and whose LR inputs are degraded again."""

    def __init__(self, data, degradation: Degradation, names: Sequence[str]):
        self.data = data
        self.degradation = degradation
        self.names = check_augmentations(names)

    def __len__(self) -> int:
        return len(self.data)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _, hr in self.data.batches(batch_size, shuffle, generator, device):
            hr = augment_hr(hr, self.names, generator)
            yield self.degradation(hr), hr
