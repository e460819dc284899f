"""Super-resolving images of any size with bounded memory: the LR image is cut into overlapping tiles whose
margin covers the network's receptive field (the model's ``receptive_radius``), so the stitched output equals a
whole-image pass. A VAE's sampler gives every tile its crop of one whole-image draw of the latents' noise (an
upscaler with a ``window(rows, cols)`` method: ``predict.upscalers.NoiseFieldSampler``), so a tiled sample is a
sample of the model, the same as a whole-image pass with that noise.

``super_resolve`` returns a float tensor (for batches held in memory); ``super_resolve_uint8`` writes each tile
into a uint8 image as it comes, so its peak memory is that image (3 bytes a pixel) plus one tile's work."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from pyro_sr.data.images import to_uint8
from pyro_sr.models.contract import Upscaler

TILE_MARGIN = 16  # LR pixels, for an upscaler whose model does not say its receptive_radius
DEFAULT_TILE = 128  # LR pixels a side

Region = tuple[slice, slice]  # output rows and columns


def tile_count(size: Sequence[int], tile: int = DEFAULT_TILE) -> int:
    """How many tiles an LR image of ``size`` (height, width; e.g. ``lr.shape[-2:]``) is cut into."""
    height, width = size
    return math.ceil(height / tile) * math.ceil(width / tile)


def _tiles(
    upscaler: Upscaler, lr: torch.Tensor, scale: int, tile: int, margin: int
) -> Iterator[tuple[Region, torch.Tensor]]:
    """(output region, SR of that region) for each tile, the SR computed with ``margin`` LR pixels of context."""
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    h, w = lr.shape[-2:]
    window = getattr(upscaler, "window", None)  # an upscaler that must know where its input lies in the image
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + tile + margin, h), min(left + tile + margin, w)
            tile_upscaler = upscaler if window is None else window((t0, t1), (l0, l1))
            sr = tile_upscaler(lr[..., t0:t1, l0:l1])
            bottom, right = min(top + tile, h), min(left + tile, w)
            region = (slice(top * scale, bottom * scale), slice(left * scale, right * scale))
            yield (
                region,
                sr[..., (top - t0) * scale : (bottom - t0) * scale, (left - l0) * scale : (right - l0) * scale],
            )


@torch.no_grad()
def super_resolve(
    upscaler: Upscaler, lr: torch.Tensor, scale: int, tile: int = DEFAULT_TILE, margin: int = TILE_MARGIN
) -> torch.Tensor:
    """SR of an LR batch (N, 3, h, w) -> (..., N, 3, h*scale, w*scale) in [0, 1], tile by tile.

    ``upscaler`` maps an LR batch to its SR batch, possibly with leading sample dimensions (a VAE's K samples).
    """
    h, w = lr.shape[-2:]
    if h <= tile and w <= tile:
        return upscaler(lr).clamp(0, 1)
    out = None
    for (rows, cols), sr in _tiles(upscaler, lr, scale, tile, margin):
        if out is None:
            out = sr.new_empty(*sr.shape[:-2], h * scale, w * scale)
        out[..., rows, cols] = sr
    return out.clamp(0, 1)


@torch.no_grad()
def super_resolve_uint8(
    upscaler: Upscaler,
    lr: torch.Tensor,
    scale: int,
    tile: int = DEFAULT_TILE,
    on_tile: Callable[[Region, torch.Tensor], None] | None = None,
    margin: int = TILE_MARGIN,
) -> np.ndarray:
    """SR of one LR image (1, 3, h, w) as uint8 (h*scale, w*scale, 3), rounded from [0, 1], filled tile by tile.

    ``upscaler`` must return one output per image (a VAE's single sample: leading dimensions of size 1);
    ``on_tile(region, sr)`` sees each tile's float SR (3, th, tw) first, e.g. to accumulate sample statistics."""
    h, w = lr.shape[-2:]
    out = np.empty((h * scale, w * scale, 3), dtype=np.uint8)
    for (rows, cols), sr in _tiles(upscaler, lr, scale, tile, margin):
        if sr.numel() != 3 * (rows.stop - rows.start) * (cols.stop - cols.start):
            raise ValueError(f"super_resolve_uint8 takes one output per image, got a tile of shape {tuple(sr.shape)}")
        sr = sr.reshape(3, *sr.shape[-2:]).clamp(0, 1)
        if on_tile is not None:
            on_tile((rows, cols), sr)
        out[rows, cols] = to_uint8(sr)
    return out
