"""A model in one row: what it is, how it was trained and sampled, and what it scored when it was bundled; what
``pyro-sr models`` prints about the bundled models, or about any model named like every command names one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyro_sr.models.contract import VariationalSR
from pyro_sr.predict.sampling import Sampling
from pyro_sr.weights.loading import list_models, load_model, training_summary


@dataclass(frozen=True)
class ModelCard:
    """One model's row. ``psnr`` is the deterministic output's or a VAE's posterior mean's, ``sample_psnr`` one
    sample's, both on the CIFAR-10 test images ``bundle_weights.py`` scored (``None`` where it did not)."""

    name: str
    kind: str
    parameters: int
    degradation: str
    epochs: str
    hours: float
    sampling: str
    psnr: float | None
    sample_psnr: float | None
    test_images: int | None


def model_card(spec: str | Path) -> ModelCard:
    """The card of a bundled model, checkpoint file or run folder (its training through the runs it grew from)."""
    loaded = load_model(spec)
    meta = loaded.meta
    training = training_summary(meta)
    metrics = meta.get("metrics") or {}
    mean, one = metrics.get("posterior_mean_of_16", metrics), metrics.get("one_sample", {})
    sampling = Sampling.of(meta)
    d = loaded.degradation
    return ModelCard(
        name=loaded.name,
        kind=loaded.kind,
        parameters=sum(p.numel() for p in loaded.model.parameters()),
        degradation=f"x{d.scale} {d.kind}" + (f" sigma {d.sigma:g}" if d.kind == "gaussian" else ""),
        epochs=training.epochs,
        hours=training.hours,
        sampling=(
            f"latent temperature {sampling.temperature_text()}, {sampling.sample_kind}"
            + (" (calibrated)" if sampling.calibration else "")
            if isinstance(loaded.model, VariationalSR)
            else "-"
        ),
        psnr=mean.get("psnr"),
        sample_psnr=one.get("psnr"),
        test_images=metrics.get("cifar10_test_images"),
    )


def model_cards(specs: list[str | Path] | None = None) -> list[ModelCard]:
    """Cards of the named models (all loaded before any is shown, so a bad name fails fast), or of the bundled
    ones."""
    return [model_card(spec) for spec in (specs or list_models())]


def format_cards(cards: list[ModelCard]) -> str:
    """A plain-text table, one model a row, then what the PSNR columns are."""
    header = ("model", "kind", "parameters", "degradation", "epochs", "hours", "PSNR", "one sample", "a sample is")
    rows = [
        (
            c.name,
            c.kind,
            f"{c.parameters:,}",
            c.degradation,
            c.epochs,
            f"{c.hours:.2f}",
            "-" if c.psnr is None else f"{c.psnr:.2f}",
            "-" if c.sample_psnr is None else f"{c.sample_psnr:.2f}",
            c.sampling,
        )
        for c in cards
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    scored = sorted({c.test_images for c in cards if c.test_images})
    if scored:
        lines += [
            "",
            f"PSNR (dB, from the data set's MSE) on the first {', '.join(map(str, scored))} CIFAR-10 test images, "
            "as scored when the weights were bundled: the output, or a VAE's posterior mean from 16 latent draws; "
            "'one sample' scores single samples. Parameters: those the model trained (a VAE's frozen base CNN is "
            "not counted). Full results: docs/RESULTS.md.",
        ]
    return "\n".join(lines)
