"""Writing super-resolutions of image files and data sets to PNG files: the CLI's ``upscale`` and ``sample``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from pyro_sr.common import ImageError
from pyro_sr.data.datasets import to_float
from pyro_sr.data.images import load_rgb, save_png
from pyro_sr.models.blocks import nearest_upscale
from pyro_sr.predict.figures import sample_columns, save_comparison_grid, std_map
from pyro_sr.predict.sampling import summarize_samples
from pyro_sr.predict.tiling import DEFAULT_TILE
from pyro_sr.predict.upscalers import predict_tiled, upscaler_for
from pyro_sr.weights.loading import LoadedModel, load_model


def _check_unique_stems(images: list[Path]) -> None:
    stems = [p.stem for p in images]
    duplicated = sorted({s for s in stems if stems.count(s) > 1})
    if duplicated:
        raise ImageError(f"several inputs share the name {duplicated[0]!r}; their outputs would overwrite each other")


def upscale_files(
    images: Iterable[str | Path],
    model: str | Path | LoadedModel,
    out_dir: str | Path,
    scale: int | None = None,
    device: str = "cpu",
    tile: int = DEFAULT_TILE,
    num_samples: int | None = None,
    temperature: float = 1.0,
    lr_consistent: bool = False,
    ensemble: bool = False,
) -> list[Path]:
    """Write ``out_dir/<stem>.png`` for each input image: the super-resolution of a deterministic model, or the
    mean of ``num_samples`` samples together with ``<stem>_sample<k>.png`` and the per-pixel std ``<stem>_std.png``
    (normalised to the image's largest std). With ``lr_consistent`` every output is projected onto the images
    whose degradation is the input (``predict_tiled``); ``ensemble`` self-ensembles a CNN. Returns the written
    paths."""
    images = [Path(p) for p in images]
    _check_unique_stems(images)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    dev = loaded.device
    if scale is not None and scale != loaded.scale:
        raise ValueError(f"model {loaded.name!r} upscales x{loaded.scale}, not x{scale}")
    upscaler = upscaler_for(loaded, num_samples, temperature, ensemble)
    out_dir = Path(out_dir)
    written = []
    for path in images:
        lr = to_float(load_rgb(path)).unsqueeze(0).to(dev)
        sr = predict_tiled(loaded, upscaler, lr, tile, lr_consistent)
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


def sample_to_files(
    loaded: LoadedModel,
    lr: torch.Tensor,
    names: list[str],
    out_dir: str | Path,
    num_samples: int,
    temperature: float = 1.0,
    hr: torch.Tensor | None = None,
    tile: int = DEFAULT_TILE,
    lr_consistent: bool = False,
) -> list[Path]:
    """For each LR image (N, 3, h, w) of a batch: its samples, mean and std map (see ``write_samples``) and a
    one-row grid ``<name>_grid.png``: LR | mean | up to 4 samples | std | HR (when ``hr`` is given). With
    ``lr_consistent`` the samples are projected onto the LR input first."""
    if not loaded.probabilistic:
        raise ValueError(f"model {loaded.name!r} is deterministic; sampling needs a probabilistic model")
    out_dir = Path(out_dir)
    upscaler = upscaler_for(loaded, num_samples, temperature)
    written = []
    for i, name in enumerate(names):
        samples = predict_tiled(loaded, upscaler, lr[i : i + 1], tile, lr_consistent)[:, 0]
        written += write_samples(samples, out_dir, name)
        columns = {"LR": nearest_upscale(lr[i : i + 1], loaded.scale), **sample_columns(samples[:, None])}
        if hr is not None:
            columns["HR"] = hr[i : i + 1]
        save_comparison_grid(columns, out_dir / f"{name}_grid.png")
        written.append(out_dir / f"{name}_grid.png")
    return written


def sample_image_files(
    loaded: LoadedModel,
    images: Iterable[str | Path],
    out_dir: str | Path,
    num_samples: int,
    temperature: float = 1.0,
    tile: int = DEFAULT_TILE,
    lr_consistent: bool = False,
) -> list[Path]:
    """``sample_to_files`` for LR image files, each named by its stem."""
    images = [Path(p) for p in images]
    _check_unique_stems(images)
    dev = loaded.device
    written = []
    for path in images:
        lr = to_float(load_rgb(path)).unsqueeze(0).to(dev)
        written += sample_to_files(
            loaded, lr, [path.stem], out_dir, num_samples, temperature, None, tile, lr_consistent
        )
    return written
