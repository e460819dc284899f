"""Figures written as PNG files (atomically), with matplotlib's Agg backend so no display is needed."""

from __future__ import annotations

from pathlib import Path

import torch

from pyro_sr.data.images import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
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
