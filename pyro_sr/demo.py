"""``pyro-sr demo``: the bundled models on the bundled CIFAR-10 test sample, with no download."""

from __future__ import annotations

from pathlib import Path

import torch

from pyro_sr.common import resolve_device, seed_everything, write_json
from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.evaluate import evaluate_models, format_table
from pyro_sr.predict.figures import baseline_columns, save_comparison_grid, summary_columns
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, summarize_samples
from pyro_sr.weights.loading import DEFAULT_MODEL, list_models, load_model

GRID_IMAGES = 8
SAMPLE_COLUMNS = {"vae": ("VAE", 2), "hvae": ("HVAE", 4)}  # bundled VAE -> its label and samples in the grid


def run_demo(out_dir: str | Path, device: str = "auto") -> str:
    """Write ``demo_grid.png`` (LR | bicubic | CNN | for each bundled VAE: its posterior mean, samples and std |
    HR) and ``metrics.json``; return the metrics table. A VAE's mean is what ``SuperResolver.upscale`` returns:
    the likelihood's mean averaged over 16 latent draws. The grid shows the very samples and means the table
    scored."""
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    seed_everything(0)  # the VAEs' samples, so the demo's numbers are the same on every run
    degradation = Degradation()
    pairs = PairedImages.from_hr(load_bundled_sample(), degradation)
    names = list_models()
    samples: dict[str, torch.Tensor] = {}  # the table's own samples and means of the grid's images
    means: dict[str, torch.Tensor] = {}
    rows = evaluate_models(
        names,
        pairs,
        degradation,
        str(dev),
        DEFAULT_NUM_SAMPLES,
        kept_samples=samples,
        keep=GRID_IMAGES,
        kept_means=means,
        mean_samples=DEFAULT_NUM_SAMPLES,
    )
    lr, hr = next(pairs.batches(GRID_IMAGES, device=dev))
    best = load_model(DEFAULT_MODEL, dev)
    with torch.no_grad():
        columns = baseline_columns(lr, 4, (f"our CNN ({best.name})", best.model.predict), input_label="LR (8x8)")
        for name in (n for n in SAMPLE_COLUMNS if n in samples):
            label, shown = SAMPLE_COLUMNS[name]
            std = summarize_samples(samples[name])[1]
            columns.update(summary_columns(means[name], std, samples[name][:shown], DEFAULT_NUM_SAMPLES, label))
        columns["HR (32x32)"] = hr
    save_comparison_grid(columns, out_dir / "demo_grid.png")
    report = {
        "data": "bundled sample: first 64 CIFAR-10 test images",
        "degradation": vars(degradation),
        "results": rows,
    }
    write_json(out_dir / "metrics.json", report)
    return f"{format_table(rows)}\n\nwrote {out_dir / 'demo_grid.png'} and {out_dir / 'metrics.json'}"
