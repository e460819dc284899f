"""Super-resolving images of any size with bounded memory: the LR image is cut into overlapping tiles whose
margin covers the network's receptive field, so for a CNN the stitched output equals a whole-image pass.
For a VAE each tile draws its own latents, so samples of large images are stitched from per-tile samples."""

from __future__ import annotations

import torch

from pyro_sr.models.contract import Upscaler

TILE_MARGIN = 16  # LR pixels; more than the receptive-field radius of the bundled networks
DEFAULT_TILE = 128  # LR pixels a side


@torch.no_grad()
def super_resolve(
    upscaler: Upscaler, lr: torch.Tensor, scale: int, tile: int = DEFAULT_TILE, margin: int = TILE_MARGIN
) -> torch.Tensor:
    """SR of an LR batch (N, 3, h, w) -> (..., N, 3, h*scale, w*scale) in [0, 1], tile by tile.

    ``upscaler`` maps an LR batch to its SR batch, possibly with leading sample dimensions (a VAE's K samples).
    """
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    h, w = lr.shape[-2:]
    if h <= tile and w <= tile:
        return upscaler(lr).clamp(0, 1)
    out = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + tile + margin, h), min(left + tile + margin, w)
            sr = upscaler(lr[..., t0:t1, l0:l1])
            if out is None:
                out = sr.new_empty(*sr.shape[:-2], h * scale, w * scale)
            bottom, right = min(top + tile, h), min(left + tile, w)
            out[..., top * scale : bottom * scale, left * scale : right * scale] = sr[
                ..., (top - t0) * scale : (bottom - t0) * scale, (left - l0) * scale : (right - l0) * scale
            ]
    return out.clamp(0, 1)
