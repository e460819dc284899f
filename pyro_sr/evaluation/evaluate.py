"""Scoring interpolation baselines and trained models on one set of (LR, HR) pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from pyro_sr.data.datasets import PairedImages
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.metrics import SRMetrics
from pyro_sr.models.cnn import bicubic_upscale, nearest_upscale

Upscaler = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def score(upscaler: Upscaler, pairs: PairedImages, degradation: Degradation, device: torch.device | str = "cpu",
          batch_size: int = 250) -> dict[str, float]:  # fmt: skip
    """Metrics of ``upscaler`` (LR batch -> SR batch) over all of ``pairs``."""
    metrics = SRMetrics(degradation)
    for lr, hr in pairs.batches(batch_size, device=device):
        metrics.update(upscaler(lr), hr, lr)
    return metrics.result()


def evaluate_models(
    checkpoints: Iterable[str | Path],
    pairs: PairedImages,
    degradation: Degradation,
    device: str = "cpu",
) -> list[dict]:
    """Rows for nearest, bicubic and each checkpoint (a path or a bundled name)."""
    from pyro_sr.pretrained import load_model
    from pyro_sr.training.device import resolve_device

    dev = resolve_device(device)
    scale = degradation.scale
    loaded = [load_model(spec, dev) for spec in checkpoints]  # fail on a bad checkpoint before any work
    for model in loaded:
        if model.scale != scale:
            raise ValueError(f"model {model.name!r} upscales x{model.scale}, but the data is degraded x{scale}")
    rows = [
        {"model": "nearest", **score(lambda x: nearest_upscale(x, scale), pairs, degradation, dev)},
        {"model": "bicubic", **score(lambda x: bicubic_upscale(x, scale), pairs, degradation, dev)},
    ]
    for model in loaded:
        params = sum(p.numel() for p in model.model.parameters())
        rows.append({"model": model.name, "params": params, **score(model.model, pairs, degradation, dev)})
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table (also valid Markdown)."""
    header = "| model | MSE | PSNR (dataset MSE) | mean per-image PSNR | SSIM | LR-PSNR |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mse']:.5f} | {r['psnr']:.2f} | {r['mean_psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r['lr_psnr']:.2f} |"
        )
    return "\n".join(lines)
