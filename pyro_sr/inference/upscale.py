"""Super-resolving images of any size with bounded memory: the LR image is cut into overlapping tiles whose
margin covers the network's receptive field, so the stitched output equals a whole-image pass."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from pyro_sr.data.datasets import to_float
from pyro_sr.data.images import ImageError, load_rgb, save_png
from pyro_sr.pretrained import load_model

TILE_MARGIN = 16  # LR pixels; more than the receptive-field radius of the bundled CNNs


@torch.no_grad()
def super_resolve(model: nn.Module, lr: torch.Tensor, scale: int, tile: int = 128, margin: int = TILE_MARGIN):
    """SR of an LR batch (N, 3, h, w) -> (N, 3, h*scale, w*scale) in [0, 1], tile by tile."""
    if tile < 1:
        raise ValueError(f"tile size must be positive, got {tile}")
    n, c, h, w = lr.shape
    if h <= tile and w <= tile:
        return model(lr).clamp(0, 1)
    out = lr.new_empty(n, c, h * scale, w * scale)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + tile + margin, h), min(left + tile + margin, w)
            sr = model(lr[..., t0:t1, l0:l1])
            bottom, right = min(top + tile, h), min(left + tile, w)
            out[..., top * scale : bottom * scale, left * scale : right * scale] = sr[
                ..., (top - t0) * scale : (bottom - t0) * scale, (left - l0) * scale : (right - l0) * scale
            ]
    return out.clamp(0, 1)


def upscale_files(
    images: Iterable[str | Path],
    model: str | Path,
    out_dir: str | Path,
    scale: int | None = None,
    device: str = "cpu",
    tile: int = 128,
) -> list[Path]:
    """Write ``out_dir/<stem>.png``, the super-resolved image, for each input image; returns the written paths."""
    from pyro_sr.training.device import resolve_device

    images = [Path(p) for p in images]
    stems = [p.stem for p in images]
    duplicated = sorted({s for s in stems if stems.count(s) > 1})
    if duplicated:
        raise ImageError(f"several inputs share the name {duplicated[0]!r}; their outputs would overwrite each other")
    dev = resolve_device(device)
    loaded = load_model(model, dev)
    if scale is not None and scale != loaded.scale:
        raise ValueError(f"model {loaded.name!r} upscales x{loaded.scale}, not x{scale}")
    written = []
    for path in images:
        lr = to_float(load_rgb(path)).unsqueeze(0).to(dev)
        sr = super_resolve(loaded.model, lr, loaded.scale, tile)
        target = Path(out_dir) / f"{path.stem}.png"
        save_png(sr[0], target)
        written.append(target)
    return written
