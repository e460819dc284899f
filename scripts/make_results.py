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
from pyro_sr.evaluation.calibration import BAND_TEXT, Calibration, format_calibration_table, plot_calibration
from pyro_sr.evaluation.evaluate import evaluate_models, format_table, realism_for, score_samples
from pyro_sr.evaluation.likelihood import IW_SAMPLES, format_likelihood_table, likelihood_rows
from pyro_sr.predict.figures import baseline_columns, pyplot, sample_columns, save_comparison_grid, save_figure
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES as NUM_SAMPLES
from pyro_sr.predict.sampling import sample_super_resolutions
from pyro_sr.predict.upscalers import sampling_for
from pyro_sr.weights.loading import LoadedModel, lineage_history, list_models, load_model, training_summary

PAPER_TABLE_1 = {"CNN": 0.0095, "conditional VAE": 0.0121}
MEAN_SAMPLES = 64  # latent draws behind a VAE's mean row (the posterior mean of likelihood means)
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)  # of the perception-distortion figure
# Unconditional CIFAR-10 test bits/dim as published (discrete likelihoods of 8-bit images): a different quantity
# from our conditional -log2 p(HR | LR), which is given the LR image.
LITERATURE_BITS = {
    "VDVAE (Child, 2021)": 2.87,
    "NVAE (Vahdat & Kautz, 2020)": 2.91,
    "PixelCNN++ (Salimans et al., 2017)": 2.92,
}
CLOSE_UPS = {"cat": 0, "ship": 1, "horse": 13}  # the first cat, ship and horse of the official test set


def table_rows(rows: list[dict], bits: dict[str, dict]) -> list[str]:
    """RESULTS.md's short table: the summary metrics, the sample std, the judge's scores and, for all but single
    samples, bits/dim (a VAE's from its ELBO)."""

    def bits_cell(r: dict) -> str:
        b = bits.get(r["model"].split(":")[0].replace(" + projection", "")) if "one sample" not in r["model"] else None
        return f"{b['bits_per_dim']:.3f} ± {b['standard_error']:.3f}" if b else ""

    return format_table(rows, summary=True, extra_columns={"bits/dim": bits_cell}, missing="").splitlines()


def baseline(lr: torch.Tensor, input_label: str = "LR") -> dict[str, torch.Tensor]:
    """The first columns of every figure: the input (nearest), bicubic and the bundled CNN."""
    return baseline_columns(lr, 4, ("CNN", load_model("cnn").model.predict), input_label)


def draws(loaded: LoadedModel, lr: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Samples drawn as the model's own sampling says (the calibrated temperature of a bundled VAE)."""
    return sample_super_resolutions(loaded.model, lr, num_samples, **sampling_for(loaded).options)


def sampling_rows(vaes: dict[str, LoadedModel]) -> list[str]:
    """A Markdown table of how each VAE is sampled, and where its temperature came from."""
    lines = ["| model | latent temperature | a sample is | fitted on |", "|---|---:|---|---|"]
    for name, vae in vaes.items():
        sampling = sampling_for(vae)
        fit = sampling.calibration
        fitted = f"{fit['images']:,} {fit['data']} {fit['split']} images, K = {fit['num_samples']}" if fit else "-"
        lines.append(f"| {name.lower()} | {sampling.temperature_text('g')} | {sampling.sample_kind} | {fitted} |")
    return lines


def sample_figure(pairs: PairedImages, vaes: dict[str, LoadedModel], path: Path, count: int = 8) -> None:
    """LR | bicubic | CNN | each VAE's mean | 4 samples of the last VAE | its std | HR (the paper's Fig. 3)."""
    lr, hr = next(pairs.batches(count))
    columns = baseline(lr)
    samples = None
    for name, vae in vaes.items():
        samples = draws(vae, lr, NUM_SAMPLES)
        columns[f"{name} mean"] = samples.mean(0)
    if samples is not None:
        columns.update(sample_columns(samples, name, mean=False))
    columns["HR"] = hr
    save_comparison_grid(columns, path)


def perception_distortion(
    vaes: dict[str, LoadedModel], pairs: PairedImages, degradation: Degradation
) -> dict[str, list[dict]]:
    """For each VAE and latent temperature: PSNR and the judge's scores of one sample per image (of the kind the
    model's own sampling draws: the likelihood's mean, or a draw of it)."""
    realism = realism_for(pairs, torch.device("cpu"))
    points = {}
    for name, vae in vaes.items():
        points[name] = []
        pixel = sampling_for(vae).pixel_temperature
        for t in TEMPERATURES:
            scores = score_samples(
                vae.model, pairs, degradation, 1, t, desc=f"{name} T={t}", realism=realism, pixel_temperature=pixel
            )
            row = scores.of_samples
            points[name].append({"temperature": t, **row})
    return points


def points_images(points: dict[str, list[dict]]) -> str:
    return f"{next(iter(points.values()))[0]['images']:,}"


def perception_distortion_figure(points: dict[str, list[dict]], rows: list[dict], path: Path) -> None:
    """Single-sample PSNR against classifier-KID at each temperature, with the deterministic models, the VAE
    means and HR marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, series in points.items():
        kid, psnr = [p["classifier_kid"] for p in series], [p["psnr"] for p in series]
        ax.plot(
            kid,
            psnr,
            "o-",
            label=f"{name}: one sample, T = {series[0]['temperature']:g} to {series[-1]['temperature']:g}",
        )
        for p in series:
            ax.annotate(
                f"{p['temperature']:g}",
                (p["classifier_kid"], p["psnr"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    marked = [r for r in rows if "one sample" not in r["model"] and "psnr" in r and "classifier_kid" in r]
    for r in marked:
        ax.plot(r["classifier_kid"], r["psnr"], "s" if "mean of" in r["model"] else "D", color="0.3")
        ax.annotate(
            r["model"], (r["classifier_kid"], r["psnr"]), fontsize=7, xytext=(4, -9), textcoords="offset points"
        )
    hr = next((r for r in rows if r["model"].startswith("HR")), None)
    if hr is not None:
        ax.axvline(
            hr["classifier_kid"],
            color="C3",
            linestyle="--",
            linewidth=1,
            label=f"HR against itself (KID {hr['classifier_kid']:.3f}; PSNR is infinite)",
        )
    ax.set(
        title=f"perception-distortion: {points_images(points)} CIFAR-10 test images",
        xlabel="classifier-KID against the HR images (the bundled judge's features; lower looks more real)",
        ylabel="PSNR (dB, higher is closer to HR)",
    )
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)


def curves_figure(names: list[str], path: Path) -> None:
    """Validation ELBO, KL and log-likelihood per epoch of the bundled VAEs (the paper's Fig. 5), a grown model's
    through the run it grew from."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name in names:
        history = lineage_history(load_model(name).meta)
        epochs = [r["epoch"] for r in history]
        for ax, key in zip(axes, ("val_elbo", "val_kl", "val_log_lik"), strict=True):
            ax.plot(epochs, [r.get(key) for r in history], "o-", markersize=3, label=name)
    for ax, title in zip(axes, ("validation ELBO", "validation KL", "validation log-likelihood"), strict=True):
        ax.set(title=f"{title} (nats/image)", xlabel="epoch")
        ax.legend()
    save_figure(fig, path)


def close_up_figure(hr_all: torch.Tensor, vaes: dict[str, LoadedModel], path: Path) -> None:
    """A cat, a ship and a horse, large: LR | bicubic | CNN | each VAE's mean and two samples | HR."""
    hr = hr_all[list(CLOSE_UPS.values())].float() / 255
    lr = Degradation()(hr)
    columns = baseline(lr)
    for name, vae in vaes.items():
        samples = draws(vae, lr, NUM_SAMPLES)
        columns[f"{name} mean"] = samples.mean(0)
        columns.update({f"{name} sample {k}": samples[k] for k in range(2)})
    columns["HR"] = hr
    save_comparison_grid(columns, path)


def upscale_32_figure(hr_all: torch.Tensor, vaes: dict[str, LoadedModel], path: Path) -> None:
    """A 32x32 test image taken as the *input*, upscaled 4x to 128x128 (no ground truth exists)."""
    image = hr_all[list(CLOSE_UPS.values())].float() / 255
    columns = baseline(image, input_label="input 32x32")
    for name, vae in vaes.items():
        samples = draws(vae, image, 4)
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
    calibrations: dict[str, Calibration] = {}
    rows = evaluate_models(
        models, test, degradation, num_samples=NUM_SAMPLES, calibrations=calibrations, mean_samples=MEAN_SAMPLES
    )
    projected = evaluate_models(
        models, test, degradation, num_samples=NUM_SAMPLES, project=True, realism=False, mean_samples=MEAN_SAMPLES
    )
    likelihood = likelihood_rows(models, test, val, degradation, IW_SAMPLES)
    bits = {r["model"]: r for r in likelihood if r["method"] != "ELBO"}
    elbo = {r["model"]: r for r in likelihood if r["method"] == "ELBO"}
    vaes = {name.upper(): load_model(name) for name in vae_names}
    with torch.no_grad():
        points = perception_distortion(dict(zip(vae_names, vaes.values(), strict=True)), test, degradation)
    report = {
        "images": len(test),
        "degradation": vars(degradation),
        "results": rows,
        "projected": projected,
        "bits_per_dim": likelihood,
        "calibration": {name: cal.to_dict() for name, cal in calibrations.items()},
        "perception_distortion": points,
    }
    write_json(args.out / "results.json", report)

    figures = args.out / "figures"
    perception_distortion_figure(points, rows, figures / "perception_distortion.png")
    plot_calibration(calibrations, figures / "calibration.png")
    hr_all = load_cifar10("test", args.data_dir)
    with torch.no_grad():
        sample_figure(test, vaes, figures / "fig3_samples.png")
        close_up_figure(hr_all, vaes, figures / "fig7_close_ups.png")
        upscale_32_figure(hr_all, vaes, figures / "fig8_32_to_128.png")
    if vae_names:
        curves_figure(vae_names, figures / "fig5_training_curves.png")

    hr_row = next(r for r in rows if r["model"].startswith("HR"))
    lines = [
        "# Results",
        "",
        "Generated by `python scripts/make_results.py --data-dir ../shared/data/cifar10 --paper-vae "
        "runs/cvae-paper-e2 --threads 2`; do not edit by hand. The 1,000 lossless CIFAR-10 test images, 4x, the "
        "paper's degradation, RGB in [0, 1], no border crop. VAEs: the mean (the posterior mean "
        f"from {MEAN_SAMPLES} latent draws, each giving the pixel likelihood's mean: the expectation of a sample, "
        f"without pixel noise) and single samples ({NUM_SAMPLES} per image, each scored on its own). Sample std: "
        "the root of the mean unbiased per-pixel variance across samples, which does not depend on K (it "
        "replaces `diversity`, the mean per-pixel std with the 1/K variance, which did: 0.0646 at K = 16 and "
        "0.0539 at K = 4 for the hvae). Classifier accuracy, classifier-KID and classifier-FID come from the "
        "bundled CIFAR-10 judge (below). bits/dim: "
        "-log2 p(HR | LR) per HR dimension, exact on the 8-bit values for a VAE with the discretised logistic "
        "mixture and on dequantised images for the others (the bits/dim table says which), from the ELBO for VAEs "
        "(a bound: the true value "
        "is lower), from a Normal around the prediction (scale fitted on validation) for the others; ± one "
        "standard error across images. All numbers are also in `docs/results.json`; training commands and curves "
        "are in [training.md](training.md).",
        "",
        "## The paper's Table 1 (reported) beside ours",
        "",
        "| paper | test MSE |",
        "|---|---:|",
        *[f"| {name} | {mse} |" for name, mse in PAPER_TABLE_1.items()],
        "",
        *table_rows(rows, elbo | {k: v for k, v in bits.items() if k not in elbo}),
        "",
        "## Realism: the bundled judge",
        "",
        f"The judge is a 0.5M-parameter CIFAR-10 classifier trained here (`pyro-sr fit judge`, training.md); it "
        f"names the class of {hr_row['classifier_accuracy']:.1%} of the HR test images (with its test-time flip), "
        "which is the ceiling of every SR row's classifier accuracy. Classifier-KID and classifier-FID are KID and "
        "FID (torchmetrics' estimators) between the judge's 128 penultimate features of the SR outputs and of "
        "the HR images: lower is closer to real images. They are **not** Inception KID/FID and compare with no "
        "published FID; the judge knows CIFAR-10's ten classes at 32x32 and nothing else, so it judges no other "
        f"data (a photo folder). The HR row scores the HR images against themselves: KID "
        f"{hr_row['classifier_kid']:.4f} and FID {hr_row['classifier_fid']:.2f} are the estimators' floor on "
        "1,000 images. Single-sample rows score 16,000 outputs against the 1,000 HR images; KID's subsets hold "
        "1,000 images either way.",
        "",
        "## Perception and distortion",
        "",
        "One sample per test image at temperatures "
        + ", ".join(f"{t:g}" for t in TEMPERATURES)
        + " (the prior's scale; 0 sets every latent to its prior mean; the kind of sample of each model's own "
        "sampling, below), against the VAE means (squares), the "
        "deterministic models (diamonds) and HR (dashed: KID of HR against itself; its PSNR is infinite). High "
        "and to the right: close to HR pixel by pixel but unlike real images (the means); a sample that looks "
        "real sits far left, where some PSNR must be given up.",
        "",
        "![perception-distortion](figures/perception_distortion.png)",
        "",
        "| model | temperature | PSNR | classifier accuracy | classifier-KID | classifier-FID |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {name} | {p['temperature']:g} | {p['psnr']:.2f} | {p['classifier_accuracy']:.3f} | "
            f"{p['classifier_kid']:.3f} | {p['classifier_fid']:.2f} |"
            for name, series in points.items()
            for p in series
        ],
        "",
        "## Calibration",
        "",
        f"Per pixel, over all {len(test)} test images, {NUM_SAMPLES} samples per image, drawn as each model's "
        "own sampling says (below), against a perfectly calibrated "
        f"{NUM_SAMPLES}-draw sampler. Spread-skill ratio: MSE(mean of K) / ((1 + 1/K) · mean unbiased variance); "
        "1 is calibrated, above 1 the samples are too sure of themselves (under-dispersed). Interval i runs from "
        "the i-th smallest to the i-th largest draw; a calibrated sampler's truth falls inside it with "
        "probability (K + 1 - 2i)/(K + 1). Quintiles: pixels binned by the variance of 8 of the draws, the ratio "
        "taken from the other 8 (binning and scoring on the same draws makes even a calibrated sampler look too "
        "sure in its lowest bins). By spatial frequency: the same ratio in each band of the images' 2-D Fourier "
        f"transform ({BAND_TEXT}). `pyro-sr diagnose` adds the predictive draws with pixel noise.",
        "",
        *format_calibration_table(calibrations).splitlines(),
        "",
        "How each VAE is sampled (its weights' own sampling, used by every command and table here unless told "
        "otherwise). A temperature fitted by `pyro-sr calibrate` is the one at which the spread-skill ratio of "
        "K draws per image is 1 on the images named; the ratio above is that of the test images.",
        "",
        *sampling_rows(vaes),
        "",
        "![calibration](figures/calibration.png)",
        "",
        "## With exact LR consistency (`--lr-consistent`)",
        "",
        "Every output projected onto the images whose degradation is the LR input (least-norm correction).",
        "",
        *table_rows(projected, {}),
        "",
        "## Conditional bits/dim",
        "",
        f"All on the {len(test):,} test images, conditional on the LR image: -log2 p(HR | LR) per HR dimension. "
        "A VAE whose likelihood is the discretised logistic mixture is scored exactly on the 8-bit values; the "
        "others on dequantised images ((x + u)/256), for which a density's figure bounds the discrete one (column "
        "'scored on'). For VAEs the ELBO comes first: it is the bound training maximises (here the mean of "
        f"the {IW_SAMPLES} one-draw ELBOs per image). The IWAE bound with K = {IW_SAMPLES} importance samples is "
        "computed on the same draws; it is tighter, but how much tighter than the true value is not known: where "
        "the effective sample size (ESS) of the K weights is near 1 and one weight holds most of the mass, the "
        "importance sampler has seen one useful draw, and the small ELBO -> IWAE gain says nothing about the "
        "remaining gap. Pareto k̂ above 0.7 marks an image whose importance-weighted estimate is unreliable; above "
        '1 its value means no more than "very bad" and is shown as "> 1". The CNN and bicubic rows are exact '
        "densities of a simple Normal around a point prediction.",
        "",
        *format_likelihood_table(likelihood).splitlines(),
        "",
        "For scale only, not for comparison: published CIFAR-10 test figures are "
        + ", ".join(f"{name} {b}" for name, b in LITERATURE_BITS.items())
        + " bits/dim. Those are unconditional (the model is given nothing) and discrete, with a discretised "
        "mixture of logistics; ours are conditional on the 8x8 LR image, which already fixes much of the 32x32 "
        "image, and discrete only where the 'scored on' column says so. Being given the LR image should make our "
        "numbers *lower* than an unconditional model's; a model with a Normal of three per-channel scales pays "
        "the same price on every pixel, flat or textured, which is why the VAEs moved to the logistic mixture.",
        "",
        "## Training",
        "",
        "| model | epochs | training time | command |",
        "|---|---:|---:|---|",
        *[
            f"| {name} | {s.epochs} | {s.hours:.2f} h | `{'` then `'.join(s.commands)}` |"
            for name, s in ((n, training_summary(load_model(n).meta)) for n in bundled)
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
