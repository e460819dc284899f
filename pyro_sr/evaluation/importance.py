"""How far to trust an importance-weighted bound: per image, the effective sample size of the K weights, the share
of the largest, and Pareto k̂ (PSIS, Yao et al. 2018), the shape of a generalised Pareto distribution fitted to
the largest weights p(hr, z) / q(z | hr, lr), z ~ q.

Each is computed per image, over that image's K draws: each image has its own posterior, so pooling weights across
images would mix unrelated distributions. Above k̂ = 0.7 the importance-weighted estimates of that image are
unreliable and q misses parts of the posterior; above 1 the weights' mean is not even finite, so a larger k̂ says
no more than "very bad" and tables show it as "> 1".
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

PARETO_K_BAD = 0.7
PARETO_K_CAP = 1.0  # above it the value is no longer a meaningful number
MIN_DRAWS_FOR_K = 20  # fewer draws leave no tail to fit


def import_arviz():
    """ArviZ without its import-time notice about the coming 1.0 refactor (we pin < 1.0), which would otherwise
    print on every ``pyro-sr diagnose``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor", category=FutureWarning)
        import arviz

    return arviz


def pareto_k(log_weights: np.ndarray) -> np.ndarray:
    """PSIS k̂ of each row of (N, K) log importance weights (ArviZ's ``psislw``, one fit per row); NaN when
    K < 20."""
    az = import_arviz()

    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.ndim != 2:
        raise ValueError(f"expected (images, draws) log weights, got shape {log_weights.shape}")
    if log_weights.shape[1] < MIN_DRAWS_FOR_K:
        return np.full(len(log_weights), np.nan)
    _, khat = az.psislw(log_weights)
    return np.asarray(khat, dtype=np.float64).reshape(len(log_weights))


def effective_sample_size(log_weights: torch.Tensor) -> torch.Tensor:
    """(Σ w)² / Σ w² per row of (N, K) log weights: K for equal weights, 1 when one weight holds all the mass."""
    return torch.exp(2 * torch.logsumexp(log_weights, 1) - torch.logsumexp(2 * log_weights, 1))


def largest_weight_share(log_weights: torch.Tensor) -> torch.Tensor:
    """max w / Σ w per row of (N, K) log weights."""
    return torch.exp(log_weights.max(1).values - torch.logsumexp(log_weights, 1))


def format_pareto_k(value: float) -> str:
    """k̂ for a table: two decimals up to the cap, "> 1" above it, "-" where it was not computed."""
    if not np.isfinite(value):
        return "-"
    return f"> {PARETO_K_CAP:g}" if value > PARETO_K_CAP else f"{value:.2f}"


def weight_diagnostics(log_weights: torch.Tensor) -> dict[str, float]:
    """Summaries over images of (N, K) log weights: mean and median ESS, the mean share of the largest weight,
    the median k̂ (capped at 1, NaN below 20 draws) and the shares of images with k̂ above 0.7 and above 1."""
    ess = effective_sample_size(log_weights.double())
    khat = pareto_k(log_weights.double().cpu().numpy())
    has_k = bool(np.isfinite(khat).any())
    return {
        "ess_mean": float(ess.mean()),
        "ess_median": float(ess.median()),
        "largest_weight_share": float(largest_weight_share(log_weights.double()).mean()),
        "pareto_k_median": float(min(np.median(khat), PARETO_K_CAP + 1e-9)) if has_k else float("nan"),
        "share_k_above_0_7": float((khat > PARETO_K_BAD).mean()) if has_k else float("nan"),
        "share_k_above_1": float((khat > PARETO_K_CAP).mean()) if has_k else float("nan"),
    }
