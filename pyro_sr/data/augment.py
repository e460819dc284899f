"""Exact data augmentation for super-resolution pairs: transform the HR image, then degrade it again.

The paper's degradation is linear, per channel and samples a fixed grid (offset ``scale // 2``), so transforming
an LR image would pair it with the wrong HR pixels; recomputing the LR from the transformed HR keeps every pair a
true (degrade(x), x). Our CNN overfits CIFAR-10 within ~15 epochs (docs/training.md), which is what these are for.
``shift`` is the one that keeps images upright with natural colours: it crops each image one LR pixel smaller at a
random offset, so the sampling grid lands on each of the ``scale**2`` phases of the HR image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from pyro_sr.data.degradation import Degradation

AUGMENTATIONS = ("hflip", "dihedral", "rgb", "shift")
AUGMENTATION_HELP = (
    "hflip: left-right mirroring; dihedral: the 8 flips/rotations (square images); rgb: channel order; "
    "shift: a crop one LR pixel smaller at a random sampling phase"
)


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return tuple(names)


def augmentations_from_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    """``--augment`` as a tuple: ``none`` turns augmentation off; None (unset) keeps the recipe's."""
    if names is None:
        return None
    if "none" in names and len(names) > 1:
        raise ValueError("--augment none cannot be combined with other augmentations")
    return check_augmentations([name for name in names if name != "none"])


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(a.device).view(-1, 1, 1, 1), a, b)


def random_phase_crop(hr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop every image of ``hr`` (N, C, H, W) to (H - scale, W - scale) at its own offset in ``[0, scale)``.

    Offsets that are not multiples of ``scale`` move the degradation's sampling grid to pixels it never sees in
    the uncropped image: new, still exact, training pairs of natural orientation and colour.
    """
    n, _, h, w = hr.shape
    if h <= scale or w <= scale:
        raise ValueError(f"shift augmentation needs images larger than the scale {scale}, got {h}x{w}")
    dy, dx = torch.randint(0, scale, (2, n), generator=generator).to(hr.device)
    rows = (dy[:, None] + torch.arange(h - scale, device=hr.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w - scale, device=hr.device))[:, None, None, :]
    images = torch.arange(n, device=hr.device)[:, None, None, None]
    channels = torch.arange(hr.shape[1], device=hr.device)[None, :, None, None]
    return hr[images, channels, rows, cols]


def augment_hr(
    hr: torch.Tensor, names: Sequence[str], scale: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply each named augmentation to every image of ``hr`` (N, 3, H, W) with its own random draw.

    ``scale`` is the degradation's (no default, so it cannot silently differ): ``shift`` crops by one LR pixel.
    """
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
    if "shift" in names:
        hr = random_phase_crop(hr, scale, generator)
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
            hr = augment_hr(hr, self.names, self.degradation.scale, generator)
            yield self.degradation(hr), hr
