"""Super-resolving images of any size with bounded memory: the LR image is cut into overlapping tiles whose
margin covers the network's receptive field, so for a CNN the stitched output equals a whole-image pass.
For a VAE each tile draws its own latents, so samples of large images are stitched from per-tile samples."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from pyro_sr.data.datasets import to_float
from pyro_sr.data.images import ImageError, load_rgb, save_png
from pyro_sr.inference.consistency import project_to_lr
from pyro_sr.inference.sampling import sample_super_resolutions, summarize_samples
from pyro_sr.inference.self_ensemble import Upscaler, degradation_symmetries, self_ensemble
from pyro_sr.pretrained import LoadedModel, load_model
from pyro_sr.training.device import resolve_device

TILE_MARGIN = 16  # LR pixels; more than the receptive-field radius of the bundled networks


@torch.no_grad()
def super_resolve(
    upscaler: Upscaler, lr: torch.Tensor, scale: int, tile: int = 128, margin: int = TILE_MARGIN
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


def upscaler_for(
    loaded: LoadedModel, num_samples: int | None = None, temperature: float = 1.0, ensemble: bool = False
) -> Upscaler:
    """LR -> SR for a CNN, or LR -> K samples (K, N, 3, H, W) for a VAE (K = 16 unless given). ``ensemble``
    averages a CNN over the exact symmetries of its degradation (``self_ensemble``)."""
    if loaded.probabilistic:
        if ensemble:
            raise ValueError(f"model {loaded.name!r} is a VAE; --self-ensemble applies to deterministic CNNs")
        return lambda lr: sample_super_resolutions(loaded.model, lr, num_samples or 16, temperature)
    if num_samples not in (None, 1):
        raise ValueError(f"model {loaded.name!r} is a deterministic CNN; --num-samples needs a VAE")
    return self_ensemble(loaded.model, degradation_symmetries(loaded.degradation)) if ensemble else loaded.model


def upscale_files(
    images: Iterable[str | Path],
    model: str | Path,
    out_dir: str | Path,
    scale: int | None = None,
    device: str = "cpu",
    tile: int = 128,
    num_samples: int | None = None,
    temperature: float = 1.0,
    lr_consistent: bool = False,
    ensemble: bool = False,
) -> list[Path]:
    """Write ``out_dir/<stem>.png`` for each input image: the super-resolution of a CNN, or the mean of
    ``num_samples`` VAE samples together with ``<stem>_sample<k>.png`` and the per-pixel std ``<stem>_std.png``
    (normalised to the image's largest std). With ``lr_consistent`` every output is projected onto the images
    whose degradation is the input (``project_to_lr``); ``ensemble`` self-ensembles a CNN. Returns the written
    paths."""
    images = [Path(p) for p in images]
    stems = [p.stem for p in images]
    duplicated = sorted({s for s in stems if stems.count(s) > 1})
    if duplicated:
        raise ImageError(f"several inputs share the name {duplicated[0]!r}; their outputs would overwrite each other")
    dev = resolve_device(device)
    loaded = load_model(model, dev)
    if scale is not None and scale != loaded.scale:
        raise ValueError(f"model {loaded.name!r} upscales x{loaded.scale}, not x{scale}")
    upscaler = upscaler_for(loaded, num_samples, temperature, ensemble)
    out_dir = Path(out_dir)
    written = []
    for path in images:
        lr = to_float(load_rgb(path)).unsqueeze(0).to(dev)
        sr = super_resolve(upscaler, lr, loaded.scale, tile)
        if lr_consistent:
            sr = project_to_lr(sr, lr, loaded.degradation).clamp(0, 1)
        if not loaded.probabilistic:
            save_png(sr[0], out_dir / f"{path.stem}.png")
            written.append(out_dir / f"{path.stem}.png")
            continue
        written += write_samples(sr[:, 0], out_dir, path.stem)
    return written


def write_samples(samples: torch.Tensor, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.png`` (the mean), ``<stem>_sample<k>.png`` and ``<stem>_std.png`` for samples (K, 3, H, W)."""
    mean, std = summarize_samples(samples)
    paths = [out_dir / f"{stem}.png", *(out_dir / f"{stem}_sample{k}.png" for k in range(len(samples)))]
    for image, target in zip([mean, *samples], paths, strict=True):
        save_png(image, target)
    save_png(std_map(std), out_dir / f"{stem}_std.png")
    return [*paths, out_dir / f"{stem}_std.png"]


def std_map(std: torch.Tensor) -> torch.Tensor:
    """A grey-level picture of a per-pixel std (3, H, W): mean over channels, scaled so the largest is white."""
    grey = std.mean(0, keepdim=True)
    return (grey / grey.max().clamp_min(1e-8)).expand(3, -1, -1)


def sample_to_files(
    loaded: LoadedModel,
    lr: torch.Tensor,
    names: list[str],
    out_dir: str | Path,
    num_samples: int,
    temperature: float = 1.0,
    hr: torch.Tensor | None = None,
    tile: int = 128,
    lr_consistent: bool = False,
) -> list[Path]:
    """For each LR image (N, 3, h, w) of a batch: its samples, mean and std map (see ``write_samples``) and a
    one-row grid ``<name>_grid.png``: LR | mean | up to 4 samples | std | HR (when ``hr`` is given). With
    ``lr_consistent`` the samples are projected onto the LR input first."""
    from pyro_sr.evaluation.figures import save_comparison_grid
    from pyro_sr.models.cnn import nearest_upscale

    if not loaded.probabilistic:
        raise ValueError(f"model {loaded.name!r} is a deterministic CNN; sampling needs a VAE checkpoint")
    out_dir = Path(out_dir)
    upscaler = upscaler_for(loaded, num_samples, temperature)
    written = []
    for i, name in enumerate(names):
        samples = super_resolve(upscaler, lr[i : i + 1], loaded.scale, tile)[:, 0]
        if lr_consistent:
            samples = project_to_lr(samples, lr[i : i + 1].expand(len(samples), -1, -1, -1), loaded.degradation)
            samples = samples.clamp(0, 1)
        written += write_samples(samples, out_dir, name)
        mean, std = summarize_samples(samples)
        columns = {"LR": nearest_upscale(lr[i : i + 1], loaded.scale), f"mean of {num_samples}": mean[None]}
        columns.update({f"sample {k}": samples[k : k + 1] for k in range(min(4, num_samples))})
        columns["std"] = std_map(std)[None]
        if hr is not None:
            columns["HR"] = hr[i : i + 1]
        save_comparison_grid(columns, out_dir / f"{name}_grid.png")
        written.append(out_dir / f"{name}_grid.png")
    return written
