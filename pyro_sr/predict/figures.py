"""Figures written as PNG files (atomically), with matplotlib's Agg backend so no display is needed, and the
columns every comparison grid is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pyro_sr.common import atomic_write
from pyro_sr.models.blocks import bicubic_upscale, nearest_upscale
from pyro_sr.models.contract import Upscaler
from pyro_sr.predict.sampling import summarize_samples


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Lay out, write atomically as PNG and close a matplotlib figure."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)


def save_comparison_grid(columns: dict[str, torch.Tensor], path: str | Path) -> None:
    """One row per image, one labelled column per method; images are (N, 3, H, W) in [0, 1]."""
    plt = pyplot()
    rows = len(next(iter(columns.values())))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns), 1.6 * rows + 0.4), squeeze=False)
    for col, (title, images) in enumerate(columns.items()):
        axes[0, col].set_title(title, fontsize=9)
        for row in range(rows):
            axes[row, col].imshow(images[row].clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            axes[row, col].axis("off")
    fig.tight_layout(pad=0.3)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def std_map(std: torch.Tensor) -> torch.Tensor:
    """A grey-level picture of a per-pixel std (3, H, W): mean over channels, scaled so the largest is white."""
    grey = std.mean(0, keepdim=True)
    return (grey / grey.max().clamp_min(1e-8)).expand(3, -1, -1)


def baseline_columns(
    lr: torch.Tensor, scale: int, cnn: tuple[str, Upscaler] | None = None, input_label: str = "LR"
) -> dict[str, torch.Tensor]:
    """The first columns of a grid: the input (nearest), bicubic and, when given, a (label, CNN)."""
    columns = {input_label: nearest_upscale(lr, scale), "bicubic": bicubic_upscale(lr, scale)}
    if cnn is not None:
        columns[cnn[0]] = cnn[1](lr)
    return columns


def sample_columns(
    samples: torch.Tensor, label: str = "", shown: int = 4, mean: bool = True
) -> dict[str, torch.Tensor]:
    """A probabilistic model's columns from its samples (K, N, 3, H, W): the mean of K, the first ``shown``
    samples and the per-pixel std map; ``label`` prefixes each title."""
    mean_of, std = summarize_samples(samples)
    return summary_columns(mean_of if mean else None, std, samples[:shown], len(samples), label)


def summary_columns(
    mean: torch.Tensor | None, std: torch.Tensor, shown: torch.Tensor, count: int, label: str = ""
) -> dict[str, torch.Tensor]:
    """``sample_columns`` from the summaries of ``count`` samples (N, 3, H, W each; ``shown``: (S, N, 3, H, W))."""
    prefix = f"{label} " if label else ""
    columns = {f"{prefix}mean of {count}": mean} if mean is not None else {}
    columns.update({f"{prefix}sample {k}": sample for k, sample in enumerate(shown)})
    columns[f"{prefix}std"] = torch.stack([std_map(s) for s in std])
    return columns
