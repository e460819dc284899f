"""``pyro-sr diagnose``: one report folder per fitted VAE, with the numbers a careful user checks before trusting
the fit: training curves, per-group KL and active units, the ELBO–IWAE gap, Pareto k̂ per image, posterior
predictive samples, and the calibration of samples and predictive draws over hundreds of images. Figures are
PNGs, the summary is Markdown, and every number is also in an ArviZ ``InferenceData`` netCDF file
(``diagnostics.nc``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_sr.common import CheckpointError, atomic_write
from pyro_sr.data.datasets import PairedImages, to_float
from pyro_sr.diagnostics.fit import ActiveUnits, VariationalFit, active_units, variational_fit
from pyro_sr.diagnostics.plots import plot_group_kl, plot_training_curves, plot_variational_fit
from pyro_sr.diagnostics.predictive import predictive_draws
from pyro_sr.evaluation.calibration import (
    BAND_TEXT,
    Calibration,
    CalibrationMetrics,
    format_calibration_table,
    plot_calibration,
)
from pyro_sr.evaluation.importance import (
    MIN_DRAWS_FOR_K,
    PARETO_K_BAD,
    PARETO_K_CAP,
    effective_sample_size,
    format_pareto_k,
    import_arviz,
    largest_weight_share,
)
from pyro_sr.evaluation.likelihood import bits_per_dim
from pyro_sr.models.blocks import nearest_upscale
from pyro_sr.models.contract import VariationalSR
from pyro_sr.predict.figures import sample_columns, save_comparison_grid
from pyro_sr.predict.sampling import Sampling
from pyro_sr.weights.loading import BUNDLED_MODELS, continue_records, lineage_history, load_model

LN2 = math.log(2.0)


@dataclass(frozen=True)
class DiagnoseConfig:
    """What ``diagnose`` computes, and on how much data."""

    images: int = 200  # test images for the variational fit, the active units and the calibration
    ks: tuple[int, ...] = (1, 8, 64)  # importance sample sizes; the largest is drawn, the others are nested
    ppc_images: int = 4  # images shown in the predictive figure
    ppc_samples: int = 100  # draws per shown image
    calibration_samples: int = 16  # draws per image for the calibration
    seed: int = 0

    def __post_init__(self) -> None:
        if self.images < 2 or self.ppc_images < 1 or self.ppc_samples < 2 or not self.ks or min(self.ks) < 1:
            raise ValueError("diagnose needs >= 2 images, >= 1 PPC image, >= 2 PPC samples and K >= 1")
        if self.calibration_samples < 2:
            raise ValueError("the calibration needs at least 2 draws per image")


def read_run_logs(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """The per-epoch log and the per-step log of a run folder (empty when missing)."""

    def read(name: str) -> list[dict]:
        path = run_dir / name
        if not path.is_file():
            return []
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path} is not a JSON-lines log ({err})") from None

    return read("log.jsonl"), read("steps.jsonl")


def _inference_data(steps, fit: VariationalFit, draws, lr, hr, dims: int, calibrations: dict[str, Calibration]):
    import xarray as xr

    az = import_arviz()

    image_dims = ["image", "channel", "y", "x"]
    idata = az.from_dict(
        posterior_predictive={"hr": draws["hr"][None].cpu().numpy(), "sr": draws["sr"][None].cpu().numpy()},
        observed_data={"hr": hr.cpu().numpy()},
        constant_data={"lr": lr.cpu().numpy()},
        sample_stats={
            "elbo": np.array([[-s["loss"] for s in steps]]),  # the β-weighted objective per image, per SVI step
            "beta": np.array([[s["beta"] for s in steps]]),
        }
        if steps
        else None,
        dims={"hr": image_dims, "sr": image_dims, "lr": ["image", "channel", "lr_y", "lr_x"]},
    )
    variables = {
        "log_weight": (("test_image", "iw_draw"), fit.log_weights),
        "pareto_k": (("test_image",), fit.pareto_k),
        **{f"iwae_k{k}": (("test_image",), bound) for k, bound in fit.bounds.items()},
    }
    scored_on = "the 8-bit values" if fit.discrete else "dequantised images, (x + u) / 256"
    weights = xr.Dataset(variables, attrs={"units": "nats", "hr_dims": dims, "scored_on": scored_on})
    cal = next(iter(calibrations.values()))
    calibration = xr.Dataset(
        {
            **{f"{kind}_rank_share": (("rank",), c.rank_shares) for kind, c in calibrations.items()},
            **{f"{kind}_spread_skill": c.spread_skill for kind, c in calibrations.items()},
            **{f"{kind}_band_spread_skill": (("band",), c.band_spread_skill) for kind, c in calibrations.items()},
        },
        coords={"band": cal.band_frequencies},
        attrs={
            "images": cal.images,
            "draws_per_image": cal.num_samples,
            "rank": "draws below the true pixel",
            "band": "lower edge of the radial spatial frequency band, cycles per pixel",
        },
    )
    idata.add_groups({"importance_weights": weights, "calibration": calibration})
    return idata


def _cell(record: dict, key: str, digits: int) -> str:
    return f"{record[key]:.{digits}f}" if key in record else "–"


def _summary(
    run_dir: str | Path,
    checkpoint: str,
    history,
    fit: VariationalFit,
    units: ActiveUnits,
    calibrations: dict[str, Calibration],
    dims: int,
    figures: list[str],
    sampling: Sampling = Sampling(),
    inherited_epochs: int = 0,
) -> str:
    lines = [f"# Diagnostics of `{run_dir}`", "", f"Checkpoint: `{checkpoint}`.", ""]
    if history:
        last = history[-1]
        lines += [
            "## Training",
            "",
            "| epoch | step | β | train ELBO | val ELBO | val KL | val log-lik | val PSNR |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in history:
            cells = [
                _cell(r, "train_elbo", 1),
                _cell(r, "val_elbo", 1),
                _cell(r, "val_kl", 1),
                _cell(r, "val_log_lik", 1),
                _cell(r, "val_psnr", 2),
            ]
            lines.append(f"| {r['epoch']} | {r['step']} | {r['beta']:.3f} | " + " | ".join(cells) + " |")
        if inherited_epochs:
            lines += [
                "",
                f"Epochs 1-{inherited_epochs} are those of the run(s) this model was started from (`fit --init`), "
                "as its metadata records them.",
            ]
        if "train_elbo" in last and "val_elbo" in last:
            gap = last["train_elbo"] - last["val_elbo"]
            lines += [
                "",
                f"Train minus validation ELBO at the end: {gap:.1f} nats/image ({gap / dims / LN2:.4f} bits/dim).",
            ]
        lines.append("")
    total_kl = sum(units.kl.values()) or 1.0
    lines += [
        "## Latent groups",
        "",
        "| group | KL (nats/image) | share of KL | active units (vs the prior) | units with KL > 0.01 | units "
        "| channels with 1% of the group's KL | KL per channel (nats/image) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in units.units:
        channels = units.channel_kl.get(name)
        used = f"{units.used_channels(name)} of {len(channels)}" if channels else "-"
        per_channel = ", ".join(f"{kl:.1f}" for kl in channels) if channels else "-"
        lines.append(
            f"| {name} | {units.kl[name]:.2f} | {100 * units.kl[name] / total_kl:.1f}% | "
            f"{units.active[name]} | {units.informative[name]} | {units.units[name]} | {used} | {per_channel} |"
        )
    lines += [
        "",
        "A unit is active when its posterior mean moves away from the prior mean by an amount that varies across "
        "images: Var_x((E_q[z] − E_p[z]) / sd_p) > 0.01. (Reports before this one counted Var_x(E_q[z]) > 0.01, "
        "which with a prior conditioned on the LR image counts a collapsed group as active.) A latent map's "
        "channels are counted like the groups: a channel with less than 1% of its group's KL carries (almost) "
        "nothing, however much the group as a whole carries.",
    ]
    collapsed = units.collapsed()
    lines += [
        "",
        f"**Warning: collapsed group(s) {', '.join(collapsed)}** (no active unit or KL below 0.1 nats): "
        "the model ignores them."
        if collapsed
        else "No latent group has collapsed.",
        "",
    ]
    ks = sorted(fit.bounds)
    lines += [
        "## Variational fit",
        "",
        f"On {len(fit.pareto_k)} test images, {'exact on the 8-bit values' if fit.discrete else 'dequantised'}; "
        "nats per image.",
        "",
        "| K | bound (nats/image) | bits/dim |",
        "|---:|---:|---:|",
    ]
    for k in ks:
        bound = float(fit.bounds[k].mean())
        lines.append(f"| {k} | {bound:.2f} | {bits_per_dim(torch.tensor(bound), dims, fit.discrete):.4f} |")
    gap = fit.bounds[ks[-1]] - fit.bounds[ks[0]]
    weights = torch.from_numpy(fit.log_weights)
    ess, share = effective_sample_size(weights).numpy(), largest_weight_share(weights).numpy()
    lines += [
        "",
        f"Gap IWAE(K={ks[-1]}) − IWAE(K={ks[0]}): mean {gap.mean():.2f}, median {np.median(gap):.2f} nats/image.",
        f"Effective sample size of the K = {ks[-1]} weights: mean {ess.mean():.2f}, median {np.median(ess):.2f}; "
        f"the largest weight holds {share.mean():.1%} of the mass on average. Near 1 of {ks[-1]}, the IWAE bound "
        "has seen one useful draw, and its small gain over the ELBO says nothing about the remaining gap.",
        f"Pareto k̂ per image: median {format_pareto_k(float(np.median(fit.pareto_k)))}; "
        f"{100 * fit.share_bad_k:.1f}% of images above {PARETO_K_BAD} (there the importance weights, and the "
        f"posterior approximation, are unreliable), {100 * float((fit.pareto_k > PARETO_K_CAP).mean()):.1f}% above "
        f'{PARETO_K_CAP:g}, where k̂ means no more than "very bad".'
        if fit.has_k
        else f"Pareto k̂ was not computed: it needs K >= {MIN_DRAWS_FOR_K} draws.",
        "",
        *calibration_section(calibrations, sampling),
        "## Figures",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
        "All numbers are in `diagnostics.nc` (`arviz.from_netcdf`): the per-step ELBO and β as `sample_stats`, "
        "posterior-predictive draws and the observed HR images, and the per-image log importance weights, IWAE "
        "bounds and k̂ in the `importance_weights` group, the rank histograms and spread-skill ratios (overall and "
        "by frequency band) of the calibration in the `calibration` group.",
    ]
    return "\n".join(lines) + "\n"


CALIBRATED = {
    "samples": "`sr` at temperature 1 (the likelihood's mean)",
    "predictive": "`hr` at temperature 1 (the fitted model's predictive, with pixel noise)",
}


def calibration_section(calibrations: dict[str, Calibration], sampling: Sampling = Sampling()) -> list[str]:
    """The summary's calibration section: each kind of draw against a calibrated sampler with as many draws. The
    draws are the fitted model's, at temperature 1; ``sampling`` (the weights' own) is named because that is
    what ``sample`` and ``upscale`` draw instead."""
    cal = next(iter(calibrations.values()))
    own = f"latent temperature {sampling.temperature_text()}, {sampling.sample_kind}"
    fitted = "; fitted by `pyro-sr calibrate`" if sampling.calibration else ""
    return [
        "## Calibration",
        "",
        f"Over {cal.images} images, {cal.num_samples} draws per image, per pixel, against a perfectly calibrated "
        f"{cal.num_samples}-draw sampler (not against nominal levels, which it misses too). Spread-skill ratio: "
        "MSE(mean of K) / ((1 + 1/K) · mean unbiased variance); 1 is calibrated, above 1 the draws are too sure "
        "(under-dispersed). Interval i runs from the i-th smallest to the i-th largest draw. Quintiles: pixels "
        "binned by the variance of half the draws, the ratio taken from the other half. By spatial frequency: the "
        f"same ratio in each band of the images' 2-D Fourier transform ({BAND_TEXT}). Both rows are the fitted "
        f"model at temperature 1, the model the ELBO scores; `sample` and `upscale` draw as the weights say ({own}"
        f"{fitted}), and `pyro-sr evaluate` reports the calibration of those draws.",
        "",
        format_calibration_table({CALIBRATED[kind]: c for kind, c in calibrations.items()}),
        "",
    ]


@torch.no_grad()
def calibrate(
    vae: VariationalSR, pairs: PairedImages, num_samples: int, device, batch_size: int = 50
) -> dict[str, Calibration]:
    """The calibration of the samples (site ``sr``) and of the predictive draws (``hr``, with pixel noise)."""
    metrics = {kind: CalibrationMetrics() for kind in CALIBRATED}
    for lr, hr in pairs.batches(batch_size, device=device):
        draws = predictive_draws(vae, lr, num_samples)
        metrics["samples"].update(draws["sr"].clamp(0, 1), hr)
        metrics["predictive"].update(draws["hr"], hr)
    return {kind: m.result() for kind, m in metrics.items()}


def is_bundled_name(model: str | Path) -> bool:
    """A model named like a bundled one is the bundled one unless a file or folder of that name exists."""
    return str(model) in BUNDLED_MODELS and not Path(model).exists()


def run_folder_of(model: str | Path) -> Path | None:
    """The run folder whose logs describe ``model``: the folder itself, or the folder of a checkpoint file;
    None for bundled weights."""
    if is_bundled_name(model):
        return None
    return Path(model) if Path(model).is_dir() else Path(model).parent


def default_report_dir(model: str | Path) -> Path:
    """``RUN_DIR/diagnostics`` for a run or its checkpoint, ``NAME-diagnostics`` for bundled weights."""
    run_dir = run_folder_of(model)
    return Path(f"{model}-diagnostics") if run_dir is None else run_dir / "diagnostics"


def diagnose(
    model: str | Path,
    pairs: PairedImages,
    out_dir: str | Path | None = None,
    config: DiagnoseConfig = DiagnoseConfig(),
    device: str | torch.device = "cpu",
) -> Path:
    """Write the report (into ``default_report_dir(model)`` unless ``out_dir`` is given) for a model with a
    guide, named like every model (bundled name, checkpoint file or run folder), on ``pairs``; returns the path
    of ``summary.md``. A run's per-epoch and per-step logs come from its folder; bundled weights carry only the
    per-epoch history in their metadata."""
    out_dir = Path(out_dir) if out_dir is not None else default_report_dir(model)
    run_dir = run_folder_of(model)
    # A run folder named like a bundled model is that run, not the bundled weights.
    checkpoint = run_dir / "checkpoint.pt" if run_dir is not None and Path(model).is_dir() else model
    loaded = load_model(checkpoint, device)
    if not isinstance(loaded.model, VariationalSR):
        raise ValueError(f"{model} has no guide (a {loaded.kind}); diagnose needs a model fitted with SVI")
    own_history, steps = (loaded.meta.get("history") or [], []) if run_dir is None else read_run_logs(run_dir)
    earlier = lineage_history(loaded.meta.get("init") or {})  # a grown model's training began in another run
    history, steps = earlier + continue_records(earlier, own_history), continue_records(earlier, steps)
    pairs = pairs.subset(torch.arange(min(config.images, len(pairs))))
    if len(pairs) < 2:
        raise ValueError("diagnose needs at least two images")
    pyro.set_rng_seed(config.seed)
    vae = loaded.model
    fit = variational_fit(vae, pairs, config.ks, device, seed=config.seed)
    units = active_units(vae, pairs, device)
    shown = pairs.subset(torch.arange(min(config.ppc_images, len(pairs))))
    lr, hr = shown.lr.to(device), to_float(shown.hr).to(device)
    draws = predictive_draws(vae, lr, config.ppc_samples)
    calibrations = calibrate(vae, pairs, config.calibration_samples, device)
    dims = hr[0].numel()

    figures = []
    if history:
        plot_training_curves(history, steps, out_dir / "training_curves.png")
        figures.append("training_curves.png")
        if len(units.units) > 1:
            plot_group_kl(history, list(units.units), out_dir / "group_kl.png")
            figures.append("group_kl.png")
    plot_variational_fit(fit, out_dir / "variational_fit.png")
    plot_calibration({CALIBRATED[kind]: cal for kind, cal in calibrations.items()}, out_dir / "calibration.png")
    samples = draws["sr"].clamp(0, 1)
    columns = {"LR": nearest_upscale(lr, loaded.scale), **sample_columns(samples, mean=False)}
    columns.update({f"with pixel noise {k}": draws["hr"][k] for k in range(min(2, config.ppc_samples))})
    columns.update({f"mean of {config.ppc_samples}": samples.mean(0), "HR": hr})
    save_comparison_grid(columns, out_dir / "predictive.png")
    figures += ["variational_fit.png", "calibration.png", "predictive.png"]

    idata = _inference_data(steps, fit, draws, lr, hr, dims, calibrations)
    atomic_write(out_dir / "diagnostics.nc", lambda tmp: idata.to_netcdf(str(tmp)))
    summary = _summary(
        run_dir or model,
        str(checkpoint),
        history,
        fit,
        units,
        calibrations,
        dims,
        figures,
        Sampling.of(loaded.meta),
        inherited_epochs=earlier[-1]["epoch"] if earlier else 0,
    )
    atomic_write(out_dir / "summary.md", lambda tmp: Path(tmp).write_text(summary))
    return out_dir / "summary.md"
