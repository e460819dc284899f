"""Regenerate docs/RESULTS.md and its figures from the bundled models (and optionally the paper-configured VAE's
run folder) on the 1,000 lossless CIFAR-10 test images: the paper's Table 1 beside ours, the conditional bits/dim,
and the figures that match the paper's (samples, training curves, uncertainty, close-ups, 32x32 -> 128x128).

    python scripts/make_results.py --data-dir ../shared/data/cifar10 --paper-vae runs/cvae-paper-e2 --threads 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyro
import torch

from pyro_sr.common import atomic_write, write_json
from pyro_sr.data.datasets import PairedImages, load_cifar10, load_pairs
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.evaluate import evaluate_models, format_table
from pyro_sr.evaluation.likelihood import IW_SAMPLES, format_likelihood_table, likelihood_rows
from pyro_sr.predict.figures import baseline_columns, pyplot, sample_columns, save_comparison_grid, save_figure
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES as NUM_SAMPLES
from pyro_sr.predict.sampling import sample_super_resolutions
from pyro_sr.weights.loading import list_models, load_model

PAPER_TABLE_1 = {"CNN": 0.0095, "conditional VAE": 0.0121}
CLOSE_UPS = {"cat": 0, "ship": 1, "horse": 13}  # the first cat, ship and horse of the official test set


def training_summary(name: str) -> dict:
    """Epochs, training time and commands from a bundled model's metadata, through the runs it started from
    (``fit cnn --init``), first run first."""
    stages, meta = [], load_model(name).meta
    while meta:
        stages.insert(0, meta)
        meta = meta.get("init")
    hours = sum(r.get("seconds", 0.0) for m in stages for r in m.get("history") or []) / 3600
    return {
        "epochs": " + ".join(str(m.get("epochs")) for m in stages),
        "hours": hours,
        "command": "` then `".join(m.get("command", "") for m in stages),
    }


def table_rows(rows: list[dict], bits: dict[str, dict]) -> list[str]:
    """RESULTS.md's short table: the summary metrics, the diversity and, for all but single samples, bits/dim."""

    def bits_cell(r: dict) -> str:
        b = bits.get(r["model"].split(":")[0].replace(" + projection", "")) if "one sample" not in r["model"] else None
        return f"{b['bits_per_dim']:.3f} ± {b['standard_error']:.3f}" if b else ""

    return format_table(rows, summary=True, extra_columns={"bits/dim": bits_cell}, missing="").splitlines()


def baseline(lr: torch.Tensor, input_label: str = "LR") -> dict[str, torch.Tensor]:
    """The first columns of every figure: the input (nearest), bicubic and the bundled CNN."""
    return baseline_columns(lr, 4, ("CNN", load_model("cnn").model.predict), input_label)


def sample_figure(pairs: PairedImages, vaes: dict[str, torch.nn.Module], path: Path, count: int = 8) -> None:
    """LR | bicubic | CNN | each VAE's mean | 4 samples of the last VAE | its std | HR (the paper's Fig. 3)."""
    lr, hr = next(pairs.batches(count))
    columns = baseline(lr)
    samples = None
    for name, vae in vaes.items():
        samples = sample_super_resolutions(vae, lr, NUM_SAMPLES)
        columns[f"{name} mean"] = samples.mean(0)
    if samples is not None:
        columns.update(sample_columns(samples, name, mean=False))
    columns["HR"] = hr
    save_comparison_grid(columns, path)


def curves_figure(names: list[str], path: Path) -> None:
    """Validation ELBO, KL and log-likelihood per epoch of the bundled VAEs (the paper's Fig. 5)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name in names:
        history = load_model(name).meta.get("history") or []
        epochs = [r["epoch"] for r in history]
        for ax, key in zip(axes, ("val_elbo", "val_kl", "val_log_lik"), strict=True):
            ax.plot(epochs, [r.get(key) for r in history], "o-", markersize=3, label=name)
    for ax, title in zip(axes, ("validation ELBO", "validation KL", "validation log-likelihood"), strict=True):
        ax.set(title=f"{title} (nats/image)", xlabel="epoch")
        ax.legend()
    save_figure(fig, path)


def close_up_figure(hr_all: torch.Tensor, vaes: dict[str, torch.nn.Module], path: Path) -> None:
    """A cat, a ship and a horse, large: LR | bicubic | CNN | each VAE's mean and two samples | HR."""
    hr = hr_all[list(CLOSE_UPS.values())].float() / 255
    lr = Degradation()(hr)
    columns = baseline(lr)
    for name, vae in vaes.items():
        samples = sample_super_resolutions(vae, lr, NUM_SAMPLES)
        columns[f"{name} mean"] = samples.mean(0)
        columns.update({f"{name} sample {k}": samples[k] for k in range(2)})
    columns["HR"] = hr
    save_comparison_grid(columns, path)


def upscale_32_figure(hr_all: torch.Tensor, vaes: dict[str, torch.nn.Module], path: Path) -> None:
    """A 32x32 test image taken as the *input*, upscaled 4x to 128x128 (no ground truth exists)."""
    image = hr_all[list(CLOSE_UPS.values())].float() / 255
    columns = baseline(image, input_label="input 32x32")
    for name, vae in vaes.items():
        samples = sample_super_resolutions(vae, image, 4)
        columns[f"{name} sample 0"] = samples[0]
        columns[f"{name} sample 1"] = samples[1]
    save_comparison_grid(columns, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with cifar10_{train,test}.npz")
    parser.add_argument("--paper-vae", type=Path, help="run folder of `pyro-sr fit vae --preset paper` (optional)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--limit", type=int, help="only the first N test images (a quick preview, not for docs/)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.set_rng_seed(0)
    degradation = Degradation()
    test = load_pairs("cifar10", "test", degradation, args.data_dir)
    test = test.first(args.limit)
    val = load_pairs("cifar10", "val", degradation, args.data_dir)
    bundled = list_models()
    vae_names = [n for n in ("vae", "hvae") if n in bundled]
    models = [n for n in bundled if n not in vae_names] + ([str(args.paper_vae)] if args.paper_vae else []) + vae_names
    rows = evaluate_models(models, test, degradation, num_samples=NUM_SAMPLES)
    projected = evaluate_models(models, test, degradation, num_samples=NUM_SAMPLES, project=True)
    likelihood = likelihood_rows(models, test, val, degradation, IW_SAMPLES)
    bits = {r["model"]: r for r in likelihood if r["k"] in (1, IW_SAMPLES) and r["method"] != "ELBO"}
    report = {
        "images": len(test),
        "degradation": vars(degradation),
        "results": rows,
        "projected": projected,
        "bits_per_dim": likelihood,
    }
    write_json(args.out / "results.json", report)

    figures = args.out / "figures"
    vaes = {name.upper(): load_model(name).model for name in vae_names}
    hr_all = load_cifar10("test", args.data_dir)
    with torch.no_grad():
        sample_figure(test, vaes, figures / "fig3_samples.png")
        close_up_figure(hr_all, vaes, figures / "fig7_close_ups.png")
        upscale_32_figure(hr_all, vaes, figures / "fig8_32_to_128.png")
    if vae_names:
        curves_figure(vae_names, figures / "fig5_training_curves.png")

    lines = [
        "# Results",
        "",
        "Generated by `python scripts/make_results.py --data-dir ../shared/data/cifar10 --paper-vae "
        "runs/cvae-paper-e2 --threads 2`; do not edit by hand. The 1,000 lossless CIFAR-10 test images, 4x, the "
        "paper's degradation, RGB in [0, 1], no border crop. VAEs: the mean of 16 samples and single samples; "
        f"bits/dim: -log2 p(HR | LR) per HR dimension on dequantised images, IWAE with K = {IW_SAMPLES} for VAEs, "
        "a Normal around the prediction (scale fitted on validation) for the others, ± one standard error across "
        "images. All numbers are also in `docs/results.json`; training commands and curves are in "
        "[training.md](training.md).",
        "",
        "## The paper's Table 1 (reported) beside ours",
        "",
        "| paper | test MSE |",
        "|---|---:|",
        *[f"| {name} | {mse} |" for name, mse in PAPER_TABLE_1.items()],
        "",
        *table_rows(rows, bits),
        "",
        "## With exact LR consistency (`--lr-consistent`)",
        "",
        "Every output projected onto the images whose degradation is the LR input (least-norm correction).",
        "",
        *table_rows(projected, {}),
        "",
        "## Conditional bits/dim",
        "",
        *format_likelihood_table(likelihood).splitlines(),
        "",
        "## Training",
        "",
        "| model | epochs | training time | command |",
        "|---|---:|---:|---|",
        *[
            f"| {name} | {s['epochs']} | {s['hours']:.2f} h | `{s['command']}` |"
            for name, s in ((n, training_summary(n)) for n in bundled)
        ],
        "",
        "Hardware: the bundled weights were trained on a 2-core CPU; the hvae training time excludes that of the "
        "cnn it refines. GPU runs: training.md.",
        "",
        "## Figures",
        "",
        "Test images (the paper's Fig. 3): LR | bicubic | CNN | VAE and HVAE means | 4 HVAE samples | HVAE std | HR",
        "",
        "![samples](figures/fig3_samples.png)",
        "",
        "Validation ELBO, KL and log-likelihood over training (the paper's Fig. 5):",
        "",
        "![curves](figures/fig5_training_curves.png)",
        "",
        "The first cat, ship and horse of the test set (the paper's Figs. 6-7):",
        "",
        "![close-ups](figures/fig7_close_ups.png)",
        "",
        "32x32 test images taken as inputs and upscaled to 128x128 (the paper's Fig. 8; there is no ground truth):",
        "",
        "![32 to 128](figures/fig8_32_to_128.png)",
        "",
    ]
    atomic_write(args.out / "RESULTS.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print(f"wrote {args.out / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
