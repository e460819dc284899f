"""The diagnostic figures: training curves, per-group KL and the variational fit (calibration: ``evaluation``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyro_sr.diagnostics.fit import VariationalFit
from pyro_sr.evaluation.importance import MIN_DRAWS_FOR_K, PARETO_K_BAD
from pyro_sr.predict.figures import pyplot, save_figure


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (over fewer values at the start), a readable line over noisy per-step values."""
    values = np.asarray(values, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - max(window, 1), 0)
    return (csum[end] - csum[start]) / (end - start)


def plot_training_curves(history: list[dict], steps: list[dict], path: Path) -> None:
    """ELBO, KL and expected log-likelihood per epoch (train slice vs validation, nats per image), and, where there
    is a per-step log (a run folder's; bundled weights keep only the per-epoch history), the per-step objective
    with a smoothed line and the KL factor β."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4 if steps else 3, figsize=(16 if steps else 13.5, 3.6))
    epochs = [r["epoch"] for r in history]
    panels = (("elbo", "ELBO"), ("kl", "KL"), ("log_lik", "expected log-likelihood"))
    for ax, (key, title) in zip(axes[:3], panels, strict=True):
        for prefix, style in (("train", "o-"), ("val", "s--")):
            values = [r.get(f"{prefix}_{key}") for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=prefix, markersize=3)
        ax.set(title=f"{title} (nats/image, β = 1)", xlabel="epoch")
        ax.legend()
    if steps:
        ax = axes[3]
        x = np.array([s["step"] for s in steps])
        elbo = -np.array([s["loss"] for s in steps])
        ax.plot(x, elbo, color="0.8", linewidth=0.5, label="per step")
        ax.plot(x, smooth(elbo, 200), color="C0", label="smoothed (200 steps)")
        low, high = np.percentile(elbo, [2, 100])
        if high > low:  # a run of one step (or one loss) leaves matplotlib's own limits
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        twin = ax.twinx()
        twin.plot(x, [s["beta"] for s in steps], color="C3", label="β")
        twin.set_ylabel("β", color="C3")
        twin.set_ylim(0, max(1.05, max(s["beta"] for s in steps) * 1.05))
        ax.legend(loc="lower right")
        ax.set(title="training objective: β-weighted ELBO per image", xlabel="step")
    save_figure(fig, path)


def plot_group_kl(history: list[dict], groups: list[str], path: Path) -> None:
    """Validation KL of each latent group over epochs (nats/image) and its share of the total at the end."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [r["epoch"] for r in history]
    for name in groups:
        left.plot(epochs, [r.get(f"val_kl_{name}", np.nan) for r in history], "o-", markersize=3, label=name)
    left.set(title="KL per latent group (validation)", xlabel="epoch", ylabel="nats/image", yscale="log")
    left.legend()
    final = [history[-1].get(f"val_kl_{name}", 0.0) for name in groups]
    total = sum(final) or 1.0
    right.bar(groups, [100 * v / total for v in final], color="C1")
    right.set(title="share of the final KL", ylabel="%")
    save_figure(fig, path)


def plot_variational_fit(fit: VariationalFit, path: Path) -> None:
    """Mean bound against K, the per-image ELBO–IWAE gap, and the histogram of Pareto k̂."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ks = sorted(fit.bounds)
    axes[0].plot(ks, [fit.bounds[k].mean() for k in ks], "o-")
    axes[0].set(title="importance-weighted bound", xlabel="K", ylabel="nats/image", xscale="log")
    gap = fit.bounds[ks[-1]] - fit.bounds[ks[0]]
    axes[1].hist(gap, bins=30, color="C2")
    axes[1].set(title=f"gap IWAE(K={ks[-1]}) − IWAE(K={ks[0]}) per image", xlabel="nats")
    if fit.has_k:
        khat = fit.pareto_k[np.isfinite(fit.pareto_k)]
        axes[2].hist(khat, bins=30, color="C0")
        axes[2].axvline(PARETO_K_BAD, color="C3", linestyle="--", label=f"k̂ = {PARETO_K_BAD}")
        axes[2].set(title=f"Pareto k̂ per image ({100 * fit.share_bad_k:.0f}% above {PARETO_K_BAD})", xlabel="k̂")
        axes[2].legend()
    else:
        axes[2].text(0.5, 0.5, f"k̂ needs K >= {MIN_DRAWS_FOR_K}", ha="center", va="center")
        axes[2].set_axis_off()
    save_figure(fig, path)
