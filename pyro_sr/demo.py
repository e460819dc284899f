"""``pyro-sr demo``: the bundled models on the bundled CIFAR-10 test sample, with no download."""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import torch

from pyro_sr.data.datasets import PairedImages, load_bundled_sample
from pyro_sr.data.degradation import Degradation
from pyro_sr.data.images import atomic_write
from pyro_sr.evaluation.evaluate import evaluate_models, format_table
from pyro_sr.evaluation.figures import save_comparison_grid
from pyro_sr.inference.sampling import sample_super_resolutions, summarize_samples
from pyro_sr.inference.upscale import std_map
from pyro_sr.models.cnn import bicubic_upscale, nearest_upscale
from pyro_sr.pretrained import BUNDLED_MODELS, DEFAULT_MODEL, bundled_path, load_model
from pyro_sr.training.device import resolve_device

GRID_IMAGES = 8
NUM_SAMPLES = 16
SAMPLE_COLUMNS = {"vae": ("VAE", 2), "hvae": ("HVAE", 4)}  # bundled VAE -> its label and samples in the grid


def run_demo(out_dir: str | Path, device: str = "auto") -> str:
    """Write ``demo_grid.png`` (LR | bicubic | CNN | for each bundled VAE: its mean, samples and std | HR)
    and ``metrics.json``; return the metrics table."""
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    pyro.set_rng_seed(0)  # the VAEs' samples, so the demo's numbers are the same on every run
    degradation = Degradation()
    pairs = PairedImages.from_hr(load_bundled_sample(), degradation)
    names = [name for name in BUNDLED_MODELS if bundled_path(name).is_file()]
    rows = evaluate_models(names, pairs, degradation, device=str(dev), num_samples=NUM_SAMPLES)
    lr, hr = next(pairs.batches(GRID_IMAGES, device=dev))
    best = load_model(DEFAULT_MODEL, dev)
    with torch.no_grad():
        columns = {
            "LR (8x8)": nearest_upscale(lr, 4),
            "bicubic": bicubic_upscale(lr, 4),
            f"our CNN ({best.name})": best.model(lr),
        }
        for name in (n for n in SAMPLE_COLUMNS if n in names):
            label, shown = SAMPLE_COLUMNS[name]
            samples = sample_super_resolutions(load_model(name, dev).model, lr, NUM_SAMPLES)
            mean, std = summarize_samples(samples)
            columns[f"{label} mean of {NUM_SAMPLES}"] = mean
            columns.update({f"{label} sample {k}": samples[k] for k in range(shown)})
            columns[f"{label} std"] = torch.stack([std_map(s) for s in std])
        columns["HR (32x32)"] = hr
    save_comparison_grid(columns, out_dir / "demo_grid.png")
    table = format_table(rows)
    report = {
        "data": "bundled sample: first 64 CIFAR-10 test images",
        "degradation": vars(degradation),
        "results": rows,
    }
    atomic_write(out_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    return f"{table}\n\nwrote {out_dir / 'demo_grid.png'} and {out_dir / 'metrics.json'}"
