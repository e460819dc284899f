"""Scoring interpolation baselines and trained models on one set of (LR, HR) pairs."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from pyro_sr.common import progress, resolve_device
from pyro_sr.data.datasets import PairedImages, to_float
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.calibration import Calibration, CalibrationMetrics
from pyro_sr.evaluation.realism import RealismMetrics
from pyro_sr.metrics import METRICS, SRMetrics
from pyro_sr.models.blocks import bicubic_upscale, nearest_upscale
from pyro_sr.models.contract import ProbabilisticSR, Upscaler
from pyro_sr.models.judge import JUDGE_IMAGE_SIZE
from pyro_sr.predict.consistency import lr_consistent, project_to_lr
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, Temperature, posterior_mean, sample_super_resolutions
from pyro_sr.predict.self_ensemble import degradation_symmetries, self_ensemble
from pyro_sr.predict.upscalers import sampling_for
from pyro_sr.weights.judge import load_judge
from pyro_sr.weights.loading import load_models


def labelled_batches(pairs: PairedImages, batch_size: int, device: torch.device | str = "cpu"):
    """(LR, HR, labels or None) batches of ``pairs`` in order."""
    for idx in pairs.batch_indices(batch_size):
        labels = pairs.labels[idx] if pairs.labels is not None else None
        yield pairs.lr[idx].to(device), to_float(pairs.hr[idx].to(device)), labels


def realism_for(pairs: PairedImages, device: torch.device, batch_size: int = 500) -> RealismMetrics | None:
    """Realism scores against ``pairs``' HR images from the bundled judge, or None where it cannot judge them:
    without CIFAR-10 labels, or at another size than CIFAR-10's 32x32."""
    if pairs.labels is None or tuple(pairs.hr.shape[-2:]) != JUDGE_IMAGE_SIZE:
        return None
    realism = RealismMetrics(load_judge(device=device).judge)
    for _, hr, _ in labelled_batches(pairs, batch_size, device):
        realism.update_real(hr)
    return realism


def _realism_result(realism: RealismMetrics | None) -> dict[str, float]:
    if realism is None:
        return {}
    result = realism.result()
    realism.reset()
    return result


@torch.no_grad()
def score(
    upscaler: Upscaler,
    pairs: PairedImages,
    degradation: Degradation,
    device: torch.device | str = "cpu",
    batch_size: int = 250,
    desc: str = "",
    realism: RealismMetrics | None = None,
) -> dict[str, float]:
    """Metrics of ``upscaler`` (LR batch -> SR batch) over all of ``pairs``, with the judge's realism scores when
    ``realism`` (holding the HR features of ``pairs``) is given; ``desc`` labels the progress bar."""
    metrics = SRMetrics(degradation)
    batches = labelled_batches(pairs, batch_size, device)
    for lr, hr, labels in progress(batches, pairs.num_batches(batch_size), desc):
        sr = upscaler(lr)
        metrics.update(sr, hr, lr)
        if realism is not None:
            realism.update(sr, labels)
    return {**metrics.result(), **_realism_result(realism)}


SCORED_AT_ONCE = 512  # single samples per metrics update: fewer, larger calls, in bounded memory


@dataclass
class SampleScores:
    """What ``score_samples`` measures of a VAE: the rows of the mean and of single samples, the calibration of
    the samples and, when asked for, the samples and the scored mean of the first images."""

    of_mean: dict[str, float]
    of_samples: dict[str, float]
    calibration: Calibration | None
    kept: torch.Tensor | None
    kept_mean: torch.Tensor | None = None


@torch.no_grad()
def score_samples(
    vae: ProbabilisticSR,
    pairs: PairedImages,
    degradation: Degradation,
    num_samples: int,
    temperature: Temperature = 1.0,
    device: torch.device | str = "cpu",
    batch_size: int = 100,
    project: bool = False,
    desc: str = "",
    keep: int = 0,
    realism: RealismMetrics | None = None,
    pixel_temperature: float | None = None,
    mean_samples: int | None = None,
) -> SampleScores:
    """Two rows of metrics for a VAE: the mean of ``num_samples`` samples, and single samples (each sample
    scored on its own), both with the sample std (``sample_std``: the root of the mean unbiased per-pixel variance
    across samples, which does not depend on K); the samples' calibration against the HR images (K >= 2); and,
    with ``keep``, the samples of the first ``keep`` images, (K, keep, 3, H, W), and the mean the mean row scored
    of them, (keep, 3, H, W), so that a figure of them needs no second draw. With ``project`` each sample is
    first projected onto its LR input; with ``realism`` both rows get the judge's scores; with
    ``pixel_temperature`` the samples are draws of the pixel likelihood (``sample_super_resolutions``).

    ``mean_samples`` makes the mean row an estimate of the posterior mean from that many latent draws of its own,
    each contributing the pixel likelihood's mean (``sr``): the same expectation as the mean of samples with pixel
    noise, without that noise's variance, so more draws buy a better point estimate at the cost of decoder passes
    alone."""
    if mean_samples is not None and mean_samples < 1:
        raise ValueError(f"the number of latent draws for the mean must be >= 1, got {mean_samples}")
    of_mean, of_samples, kept, kept_mean = SRMetrics(degradation), SRMetrics(degradation), [], []
    calibration = CalibrationMetrics() if num_samples > 1 else None
    realism_of_mean = copy.deepcopy(realism)  # the same HR features, its own SR outputs
    variance = 0.0
    batches = labelled_batches(pairs, batch_size, device)
    for lr, hr, labels in progress(batches, pairs.num_batches(batch_size), desc):
        samples = sample_super_resolutions(vae, lr, num_samples, temperature, pixel_temperature=pixel_temperature)
        if project:
            samples = project_to_lr(samples, lr, degradation).clamp(0, 1)
        mean = samples.mean(0) if mean_samples is None else posterior_mean(vae, lr, mean_samples, temperature)
        if project and mean_samples is not None:
            mean = project_to_lr(mean, lr, degradation).clamp(0, 1)
        of_mean.update(mean, hr, lr)
        single, hrs, lrs = samples.flatten(0, 1), hr.repeat(num_samples, 1, 1, 1), lr.repeat(num_samples, 1, 1, 1)
        for start in range(0, len(single), SCORED_AT_ONCE):
            end = start + SCORED_AT_ONCE
            of_samples.update(single[start:end], hrs[start:end], lrs[start:end])
            if realism is not None:
                realism.update(single[start:end], labels.repeat(num_samples)[start:end])
        if realism_of_mean is not None:
            realism_of_mean.update(mean, labels)
        if calibration is not None:
            calibration.update(samples, hr)
            variance += float(samples.var(0, correction=1).mean((1, 2, 3)).sum())
        wanted = keep - sum(part.shape[1] for part in kept)
        if wanted > 0:
            kept.append(samples[:, :wanted].clone())  # not a view that keeps the batch
            kept_mean.append(mean[:wanted].clone())
    extra = {"num_samples": num_samples, "temperature": temperature}
    if pixel_temperature is not None:
        extra["pixel_temperature"] = pixel_temperature
    if calibration is not None:
        extra["sample_std"] = (variance / len(pairs)) ** 0.5
    of_mean_extra = extra if mean_samples is None else {**extra, "mean_samples": mean_samples, "mean_of": "sr"}
    return SampleScores(
        {**of_mean.result(), **_realism_result(realism_of_mean), **of_mean_extra},
        {**of_samples.result(), **_realism_result(realism), **extra},
        calibration.result() if calibration is not None else None,
        torch.cat(kept, 1) if kept else None,
        torch.cat(kept_mean) if kept_mean else None,
    )


def evaluate_models(
    checkpoints: Iterable[str | Path],
    pairs: PairedImages,
    degradation: Degradation,
    device: str = "cpu",
    num_samples: int = DEFAULT_NUM_SAMPLES,
    temperature: Temperature | None = None,
    project: bool = False,
    ensemble: bool = False,
    kept_samples: dict[str, torch.Tensor] | None = None,
    keep: int = 8,
    realism: bool = True,
    calibrations: dict[str, Calibration] | None = None,
    pixel_temperature: float | str | None = None,
    mean_samples: int | None = None,
    kept_means: dict[str, torch.Tensor] | None = None,
) -> list[dict]:
    """Rows for nearest, bicubic and each checkpoint (a path or a bundled name); a VAE gives two rows, the mean
    of ``num_samples`` samples and single samples, drawn as ``sampling_for`` says (the checkpoint's sampling,
    with ``temperature`` and ``pixel_temperature`` where given). With ``project`` every output is made LR-consistent
    (``project_to_lr``), with ``ensemble`` every CNN is self-ensembled (``self_ensemble``); the row names say
    so. With ``realism``, on labelled 32x32 images (CIFAR-10), every row gets the bundled judge's accuracy and
    classifier-KID/FID, and a first row gives those of the HR images themselves (the ceiling). Given a dict
    ``kept_samples``, each VAE's scored samples of the first ``keep`` images go into it under the model's name
    (the demo's grid shows them), and given a dict ``kept_means``, the mean row's images of them; given a dict
    ``calibrations``, each VAE's calibration goes into it.
    ``mean_samples``: the mean row is the posterior mean from that many latent draws of likelihood means
    (``score_samples``)."""
    dev = resolve_device(device)
    scale = degradation.scale
    loaded = load_models(checkpoints, dev, scale)
    judged = realism_for(pairs, dev) if realism else None

    def consistent(upscaler: Upscaler) -> Upscaler:
        return lr_consistent(upscaler, degradation) if project else upscaler

    def scored(name: str, upscaler: Upscaler) -> dict:
        return score(consistent(upscaler), pairs, degradation, dev, desc=name, realism=judged)

    suffix = " + projection" if project else ""
    symmetries = degradation_symmetries(degradation) if ensemble else []
    rows = []
    if judged is not None:
        rows.append({"model": "HR (the judge's ceiling)", **score_hr(pairs, judged, dev)})
    rows += [
        {"model": "nearest" + suffix, **scored("nearest", lambda x: nearest_upscale(x, scale))},
        {"model": "bicubic" + suffix, **scored("bicubic", lambda x: bicubic_upscale(x, scale))},
    ]
    for model in loaded:
        params = sum(p.numel() for p in model.model.parameters())
        name = model.name + suffix
        if not model.probabilistic:
            upscaler = self_ensemble(model.model.predict, symmetries) if ensemble else model.model.predict
            name = f"{model.name} + self-ensemble ({len(symmetries)}){suffix}" if ensemble else name
            rows.append({"model": name, "params": params, **scored(name, upscaler)})
            continue
        keep_now = keep if kept_samples is not None or kept_means is not None else 0
        sampling = sampling_for(model, temperature, pixel_temperature)
        scores = score_samples(
            model.model,
            pairs,
            degradation,
            num_samples,
            sampling.temperature,
            dev,
            project=project,
            desc=name,
            keep=keep_now,
            realism=judged,
            pixel_temperature=sampling.pixel_temperature,
            mean_samples=mean_samples,
        )
        if kept_samples is not None and scores.kept is not None:
            kept_samples[model.name] = scores.kept
        if kept_means is not None and scores.kept_mean is not None:
            kept_means[model.name] = scores.kept_mean
        if calibrations is not None and scores.calibration is not None:
            calibrations[name] = scores.calibration
        mean_row = f"mean of {num_samples}" if mean_samples is None else f"mean of {mean_samples} (likelihood means)"
        rows.append({"model": f"{name}: {mean_row}", "params": params, **scores.of_mean})
        rows.append({"model": f"{name}: one sample", "params": params, **scores.of_samples})
    return rows


def score_hr(pairs: PairedImages, realism: RealismMetrics, device: torch.device, batch_size: int = 500) -> dict:
    """The judge's scores of the HR images themselves: its accuracy is every SR output's ceiling, and KID and FID
    of the HR images against themselves show the estimators' floor on this many images."""
    for _, hr, labels in labelled_batches(pairs, batch_size, device):
        realism.update(hr, labels)
    return _realism_result(realism)


REALISM_COLUMNS = (  # (key, title, digits): the judge's scores, named so that nobody reads them as Inception's
    ("classifier_accuracy", "classifier accuracy", 3),
    ("classifier_kid", "classifier-KID", 3),
    ("classifier_fid", "classifier-FID", 2),
)


def format_table(
    rows: list[dict],
    summary: bool = False,
    extra_columns: dict[str, Callable[[dict], str]] | None = None,
    missing: str = "-",
) -> str:
    """A plain-text table (also valid Markdown) with a column per metric of ``METRICS`` (with ``summary``, the
    short selection README and RESULTS.md show), the sample std of VAEs, the judge's realism scores where any
    row has them, and ``extra_columns`` (title -> cell); a row without a value shows ``missing``."""
    metrics = [
        (m.key, (m.summary_title or m.title) if summary else m.title, m.summary_digits if summary else m.digits)
        for m in METRICS
        if not summary or m.summary_digits is not None
    ]
    columns = [*metrics, ("sample_std", "sample std", 4)]
    columns += [c for c in REALISM_COLUMNS if any(c[0] in r for r in rows)]
    extra = extra_columns or {}
    lines = [
        "| " + " | ".join(["model", *(title for _, title, _ in columns), *extra]) + " |",
        "|---|" + "---:|" * (len(columns) + len(extra)),
    ]
    for r in rows:
        cells = [f"{r[key]:.{digits}f}" if key in r else missing for key, _, digits in columns]
        cells += [cell(r) for cell in extra.values()]
        lines.append("| " + " | ".join([r["model"], *cells]) + " |")
    return "\n".join(lines)
