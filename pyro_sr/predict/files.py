"""Writing super-resolutions of image files and data sets to PNG files: the CLI's ``upscale`` and ``sample``.

Every input is checked before the first output is written, and the output folder before any work. Memory is
bounded by the output image, not by the number of samples: a CNN's output is assembled as uint8 tile by tile,
and a VAE's K samples are drawn and written one at a time while a float32 running mean and sum of squared
deviations (Welford's update) give the mean and std (``--lr-consistent`` is the exception: its projection is
solved on the whole image at once). Progress bars count tiles, the unit of work of every output."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pyro_sr.common import ImageError, check_writable_dir, progress
from pyro_sr.data.datasets import to_float
from pyro_sr.data.images import check_image, load_rgb, save_png, to_uint8
from pyro_sr.models.blocks import nearest_upscale
from pyro_sr.predict.figures import save_comparison_grid, std_map, summary_columns
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, Temperature, summarize_samples
from pyro_sr.predict.tiling import DEFAULT_TILE, Region, super_resolve_uint8, tile_count
from pyro_sr.predict.upscalers import predict_tiled, tile_margin, upscaler_for
from pyro_sr.weights.loading import LoadedModel, load_model

GRID_MAX_SIDE = 1024  # SR pixels; a larger output gets no comparison grid (it would be unreadably large)
GRID_SAMPLES = 4


def _check_inputs(images: Iterable[str | Path]) -> dict[Path, tuple[int, int]]:
    """Each input image and its (height, width), all checked before any output is written."""
    paths = [Path(p) for p in images]
    stems = [p.stem for p in paths]
    duplicated = sorted({s for s in stems if stems.count(s) > 1})
    if duplicated:
        raise ImageError(f"several inputs share the name {duplicated[0]!r}; their outputs would overwrite each other")
    return {path: check_image(path) for path in paths}


@dataclass
class Samples:
    """What ``write_sample_files`` keeps for a grid: mean, std and the first samples, (1, 3, H, W) each."""

    mean: torch.Tensor
    std: torch.Tensor
    shown: torch.Tensor  # (S, 1, 3, H, W)
    count: int


def write_sample_files(
    loaded: LoadedModel,
    lr: torch.Tensor,
    out_dir: Path,
    stem: str,
    num_samples: int,
    temperature: Temperature | None = None,
    pixel_temperature: float | str | None = None,
    tile: int = DEFAULT_TILE,
    lr_consistent: bool = False,
    bar: tqdm | None = None,
) -> tuple[list[Path], Samples | None]:
    """``<stem>_sample<k>.png`` for k < K, then ``<stem>.png`` (their mean) and ``<stem>_std.png`` (the per-pixel
    std, normalised to the image's largest) for one LR image (1, 3, h, w); also, for an output of at most
    ``GRID_MAX_SIDE`` pixels a side, what a comparison grid shows."""
    paths = [out_dir / f"{stem}_sample{k}.png" for k in range(num_samples)]
    if lr_consistent:
        samples = predict_tiled(
            loaded, upscaler_for(loaded, num_samples, temperature, pixel_temperature=pixel_temperature), lr, tile, True
        )
        for sample, path in zip(samples, paths, strict=True):
            save_png(sample[0], path)
        mean, std = summarize_samples(samples)
        shown = samples[:GRID_SAMPLES]
        if bar is not None:
            bar.update(tile_count(lr.shape[-2:], tile) * num_samples)
    else:
        height, width = (loaded.scale * s for s in lr.shape[-2:])
        mean, squared_deviations = torch.zeros(3, height, width), torch.zeros(3, height, width)
        drawn = 0  # samples of every pixel so far, before the current one

        def accumulate(region: Region, sr: torch.Tensor) -> None:
            """Welford's update of the running mean and sum of squared deviations: accurate in float32."""
            sr = sr.float().cpu()
            m, m2 = mean[:, region[0], region[1]], squared_deviations[:, region[0], region[1]]
            delta = sr - m
            m += delta / (drawn + 1)
            m2 += delta * (sr - m)
            if bar is not None:
                bar.update()

        kept = []
        for k, path in enumerate(paths):
            one_sample = upscaler_for(loaded, 1, temperature, pixel_temperature=pixel_temperature)  # a new sample
            sample = super_resolve_uint8(one_sample, lr, loaded.scale, tile, accumulate, tile_margin(loaded))
            drawn += 1
            save_png(sample, path)
            if k < GRID_SAMPLES and max(height, width) <= GRID_MAX_SIDE:
                kept.append(to_float(torch.from_numpy(sample).permute(2, 0, 1)[None]))
        std = squared_deviations.div_(num_samples).sqrt_()
        mean, std, shown = mean[None], std[None], torch.stack(kept) if kept else None
    save_png(mean[0], out_dir / f"{stem}.png")
    save_png(std_map(std[0]), out_dir / f"{stem}_std.png")
    written = [out_dir / f"{stem}.png", *paths, out_dir / f"{stem}_std.png"]
    if max(mean.shape[-2:]) > GRID_MAX_SIDE:
        return written, None
    return written, Samples(mean.cpu(), std.cpu(), shown.cpu(), num_samples)


def upscale_files(
    images: Iterable[str | Path],
    model: str | Path | LoadedModel,
    out_dir: str | Path,
    scale: int | None = None,
    device: str = "cpu",
    tile: int = DEFAULT_TILE,
    num_samples: int | None = None,
    temperature: Temperature | None = None,
    pixel_temperature: float | str | None = None,
    lr_consistent: bool = False,
    ensemble: bool = False,
) -> list[Path]:
    """Write ``out_dir/<stem>.png`` for each input image: the super-resolution of a deterministic model, or, for a
    probabilistic one, the mean of ``num_samples`` samples with the samples and std map (``write_sample_files``).
    With ``lr_consistent`` every output is projected onto the images whose degradation is the input
    (``predict_tiled``); ``ensemble`` self-ensembles a CNN. Returns the written paths."""
    images = _check_inputs(images)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    if scale is not None and scale != loaded.scale:
        raise ValueError(f"model {loaded.name!r} upscales x{loaded.scale}, not x{scale}")
    upscaler = upscaler_for(loaded, num_samples, temperature, ensemble, pixel_temperature)
    out_dir = check_writable_dir(out_dir)
    count = (DEFAULT_NUM_SAMPLES if num_samples is None else num_samples) if loaded.probabilistic else 1
    written = []
    with progress(
        total=sum(tile_count(size, tile) for size in images.values()) * count, desc="upscale", unit="tile"
    ) as bar:
        for path in images:
            lr = to_float(load_rgb(path)).unsqueeze(0).to(loaded.device)
            if loaded.probabilistic:
                options = {
                    "temperature": temperature,
                    "pixel_temperature": pixel_temperature,
                    "tile": tile,
                    "lr_consistent": lr_consistent,
                    "bar": bar,
                }
                written += write_sample_files(loaded, lr, out_dir, path.stem, count, **options)[0]
                continue
            if lr_consistent:
                sr = to_uint8(predict_tiled(loaded, upscaler, lr, tile, lr_consistent=True)[0])
                bar.update(tile_count(lr.shape[-2:], tile))
            else:
                margin = tile_margin(loaded)
                sr = super_resolve_uint8(upscaler, lr, loaded.scale, tile, lambda *_: bar.update(), margin)
            save_png(sr, out_dir / f"{path.stem}.png")
            written.append(out_dir / f"{path.stem}.png")
    return written


def sample_to_files(
    loaded: LoadedModel,
    lr: torch.Tensor,
    names: list[str],
    out_dir: str | Path,
    num_samples: int,
    temperature: Temperature | None = None,
    pixel_temperature: float | str | None = None,
    hr: torch.Tensor | None = None,
    tile: int = DEFAULT_TILE,
    lr_consistent: bool = False,
) -> list[Path]:
    """For each LR image (N, 3, h, w) of a batch: its samples, mean and std map (``write_sample_files``) and, for
    outputs up to ``GRID_MAX_SIDE`` pixels a side, a one-row grid ``<name>_grid.png``: LR | mean | up to 4 samples
    | std | HR (when ``hr`` is given). With ``lr_consistent`` the samples are projected onto the LR input first."""
    if not loaded.probabilistic:
        raise ValueError(f"model {loaded.name!r} is deterministic; sampling needs a probabilistic model")
    out_dir = check_writable_dir(out_dir)
    written = []
    options = {
        "temperature": temperature,
        "pixel_temperature": pixel_temperature,
        "tile": tile,
        "lr_consistent": lr_consistent,
    }
    with progress(total=tile_count(lr.shape[-2:], tile) * len(names) * num_samples, desc="sample", unit="tile") as bar:
        for i, name in enumerate(names):
            paths, kept = write_sample_files(loaded, lr[i : i + 1], out_dir, name, num_samples, bar=bar, **options)
            written += paths
            if kept is None:
                continue
            columns = {
                "LR": nearest_upscale(lr[i : i + 1], loaded.scale).cpu(),
                **summary_columns(kept.mean, kept.std, kept.shown, kept.count),
            }
            if hr is not None:
                columns["HR"] = hr[i : i + 1].cpu()
            save_comparison_grid(columns, out_dir / f"{name}_grid.png")
            written.append(out_dir / f"{name}_grid.png")
    return written


def sample_image_files(
    loaded: LoadedModel,
    images: Iterable[str | Path],
    out_dir: str | Path,
    num_samples: int,
    temperature: Temperature | None = None,
    pixel_temperature: float | str | None = None,
    tile: int = DEFAULT_TILE,
    lr_consistent: bool = False,
) -> list[Path]:
    """``sample_to_files`` for LR image files, each named by its stem."""
    images = _check_inputs(images)
    check_writable_dir(out_dir)
    written = []
    for path in images:
        lr = to_float(load_rgb(path)).unsqueeze(0).to(loaded.device)
        written += sample_to_files(
            loaded, lr, [path.stem], out_dir, num_samples, temperature, pixel_temperature, None, tile, lr_consistent
        )
    return written
