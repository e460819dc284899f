"""Scoring interpolation baselines and trained models on one set of (LR, HR) pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from pyro_sr.common import progress, resolve_device
from pyro_sr.data.datasets import PairedImages
from pyro_sr.data.degradation import Degradation
from pyro_sr.metrics import METRICS, SRMetrics
from pyro_sr.models.blocks import bicubic_upscale, nearest_upscale
from pyro_sr.models.contract import ProbabilisticSR, Upscaler
from pyro_sr.predict.consistency import lr_consistent, project_to_lr
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, sample_super_resolutions, summarize_samples
from pyro_sr.predict.self_ensemble import degradation_symmetries, self_ensemble
from pyro_sr.weights.loading import load_models


@torch.no_grad()
def score(
    upscaler: Upscaler,
    pairs: PairedImages,
    degradation: Degradation,
    device: torch.device | str = "cpu",
    batch_size: int = 250,
    desc: str = "",
) -> dict[str, float]:
    """Metrics of ``upscaler`` (LR batch -> SR batch) over all of ``pairs``; ``desc`` labels the progress bar."""
    metrics = SRMetrics(degradation)
    for lr, hr in progress(pairs.batches(batch_size, device=device), pairs.num_batches(batch_size), desc):
        metrics.update(upscaler(lr), hr, lr)
    return metrics.result()


SCORED_AT_ONCE = 512  # single samples per metrics update: fewer, larger calls, in bounded memory


@torch.no_grad()
def score_samples(
    vae: ProbabilisticSR,
    pairs: PairedImages,
    degradation: Degradation,
    num_samples: int,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
    batch_size: int = 100,
    project: bool = False,
    desc: str = "",
    keep: int = 0,
) -> tuple[dict[str, float], dict[str, float], torch.Tensor | None]:
    """Two rows of metrics for a VAE: the mean of ``num_samples`` samples, and single samples (each sample
    scored on its own), both with the diversity (mean per-pixel std across samples); and, with ``keep``, the
    samples of the first ``keep`` images, (K, keep, 3, H, W), so that a figure of them needs no second draw. With
    ``project`` each sample is first projected onto its LR input."""
    of_mean, of_samples, diversity, kept = SRMetrics(degradation), SRMetrics(degradation), 0.0, []
    for lr, hr in progress(pairs.batches(batch_size, device=device), pairs.num_batches(batch_size), desc):
        samples = sample_super_resolutions(vae, lr, num_samples, temperature)
        if project:
            samples = project_to_lr(samples, lr, degradation).clamp(0, 1)
        mean, std = summarize_samples(samples)
        of_mean.update(mean, hr, lr)
        single, hrs, lrs = samples.flatten(0, 1), hr.repeat(num_samples, 1, 1, 1), lr.repeat(num_samples, 1, 1, 1)
        for start in range(0, len(single), SCORED_AT_ONCE):
            end = start + SCORED_AT_ONCE
            of_samples.update(single[start:end], hrs[start:end], lrs[start:end])
        diversity += float(std.mean((1, 2, 3)).sum())
        wanted = keep - sum(part.shape[1] for part in kept)
        if wanted > 0:
            kept.append(samples[:, :wanted].clone())  # not a view that keeps the batch
    extra = {"num_samples": num_samples, "temperature": temperature, "diversity": diversity / len(pairs)}
    return {**of_mean.result(), **extra}, {**of_samples.result(), **extra}, torch.cat(kept, 1) if kept else None


def evaluate_models(
    checkpoints: Iterable[str | Path],
    pairs: PairedImages,
    degradation: Degradation,
    device: str = "cpu",
    num_samples: int = DEFAULT_NUM_SAMPLES,
    temperature: float = 1.0,
    project: bool = False,
    ensemble: bool = False,
    kept_samples: dict[str, torch.Tensor] | None = None,
    keep: int = 8,
) -> list[dict]:
    """Rows for nearest, bicubic and each checkpoint (a path or a bundled name); a VAE gives two rows, the mean
    of ``num_samples`` samples and single samples. With ``project`` every output is made LR-consistent
    (``project_to_lr``), with ``ensemble`` every CNN is self-ensembled (``self_ensemble``); the row names say
    so. Given a dict ``kept_samples``, each VAE's scored samples of the first ``keep`` images go into it under the
    model's name (the demo's grid shows them)."""
    dev = resolve_device(device)
    scale = degradation.scale
    loaded = load_models(checkpoints, dev, scale)

    def consistent(upscaler: Upscaler) -> Upscaler:
        return lr_consistent(upscaler, degradation) if project else upscaler

    suffix = " + projection" if project else ""
    symmetries = degradation_symmetries(degradation) if ensemble else []
    rows = [
        {
            "model": "nearest" + suffix,
            **score(consistent(lambda x: nearest_upscale(x, scale)), pairs, degradation, dev, desc="nearest"),
        },
        {
            "model": "bicubic" + suffix,
            **score(consistent(lambda x: bicubic_upscale(x, scale)), pairs, degradation, dev, desc="bicubic"),
        },
    ]
    for model in loaded:
        params = sum(p.numel() for p in model.model.parameters())
        name = model.name + suffix
        if not model.probabilistic:
            upscaler = self_ensemble(model.model.predict, symmetries) if ensemble else model.model.predict
            name = f"{model.name} + self-ensemble ({len(symmetries)}){suffix}" if ensemble else name
            rows.append(
                {"model": name, "params": params, **score(consistent(upscaler), pairs, degradation, dev, desc=name)}
            )
            continue
        keep_now = keep if kept_samples is not None else 0
        of_mean, of_samples, samples = score_samples(
            model.model, pairs, degradation, num_samples, temperature, dev, project=project, desc=name, keep=keep_now
        )
        if samples is not None:
            kept_samples[model.name] = samples
        rows.append({"model": f"{name}: mean of {num_samples}", "params": params, **of_mean})
        rows.append({"model": f"{name}: one sample", "params": params, **of_samples})
    return rows


def format_table(
    rows: list[dict],
    summary: bool = False,
    extra_columns: dict[str, Callable[[dict], str]] | None = None,
    missing: str = "-",
) -> str:
    """A plain-text table (also valid Markdown) with a column per metric of ``METRICS`` (with ``summary``, the
    short selection README and RESULTS.md show), the diversity of samples, and ``extra_columns`` (title -> cell)."""
    metrics = [m for m in METRICS if not summary or m.summary_digits is not None]
    titles = [(m.summary_title or m.title) if summary else m.title for m in metrics]
    extra = extra_columns or {}
    lines = [
        "| " + " | ".join(["model", *titles, "diversity", *extra]) + " |",
        "|---|" + "---:|" * (len(metrics) + 1 + len(extra)),
    ]
    for r in rows:
        cells = [f"{r[m.key]:.{m.summary_digits if summary else m.digits}f}" for m in metrics]
        cells.append(f"{r['diversity']:.4f}" if "diversity" in r else missing)
        cells += [cell(r) for cell in extra.values()]
        lines.append("| " + " | ".join([r["model"], *cells]) + " |")
    return "\n".join(lines)
