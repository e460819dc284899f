"""How well the variational posterior fits: the ELBO–IWAE gap, Pareto k̂ of the importance weights per image,
and active latent units per group.

Pareto k̂ (PSIS, Yao et al. 2018) is the shape of a generalised Pareto distribution fitted to the largest
importance weights p(hr, z) / q(z | hr, lr), z ~ q. It is computed per image, over that image's K draws: each
image has its own posterior, so pooling weights across images would mix unrelated distributions. Above 0.7 the
importance-weighted estimates of that image are unreliable and q misses parts of the posterior.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from pyro_sr.common import progress
from pyro_sr.data.datasets import PairedImages
from pyro_sr.evaluation.likelihood import dequantized_batches, iwae_bound, log_importance_weights
from pyro_sr.models.contract import VariationalSR
from pyro_sr.models.traces import paired_traces, sample_sites

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Cov_x(E_q[z_u]) above this makes unit u active
PARETO_K_BAD = 0.7
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


@dataclass
class VariationalFit:
    """Per-image log weights with the bounds and k̂ they give."""

    log_weights: np.ndarray  # (images, K), nats
    bounds: dict[int, np.ndarray]  # K -> per-image IWAE bound with the first K draws (K = 1: the ELBO)
    pareto_k: np.ndarray  # (images,)

    @property
    def has_k(self) -> bool:
        return bool(np.isfinite(self.pareto_k).any())

    @property
    def share_bad_k(self) -> float:
        return float((self.pareto_k > PARETO_K_BAD).mean())


def variational_fit(
    vae: VariationalSR,
    pairs: PairedImages,
    ks: tuple[int, ...] = (1, 8, 64),
    device: torch.device | str = "cpu",
    batch_size: int = 25,
    seed: int = 0,
) -> VariationalFit:
    """Draw max(ks) importance weights per image on dequantised HR images; bounds for each K use the first K
    draws, so they are nested and the ELBO–IWAE gap is measured on the same draws."""
    if not ks or min(ks) < 1:
        raise ValueError(f"importance sample sizes must be >= 1, got {ks}")
    generator = torch.Generator().manual_seed(seed)
    batches = dequantized_batches(pairs, batch_size, generator, device)
    log_weights = torch.cat([log_importance_weights(vae, lr, y, max(ks)).cpu() for lr, y in batches]).double()
    bounds = {k: iwae_bound(log_weights[:, :k]).numpy() for k in sorted(set(ks))}
    return VariationalFit(log_weights.numpy(), bounds, pareto_k(log_weights.numpy()))


@dataclass
class ActiveUnits:
    """Per latent group: active units, all units, and the mean KL (nats per image)."""

    active: dict[str, int]
    units: dict[str, int]
    kl: dict[str, float]

    def collapsed(self, kl_floor: float = 0.1) -> list[str]:
        """Groups with no active unit or a KL below ``kl_floor`` nats: the model ignores them."""
        return [name for name in self.units if self.active[name] == 0 or self.kl[name] < kl_floor]


@torch.no_grad()
def active_units(vae: VariationalSR, pairs: PairedImages, device: torch.device | str = "cpu", batch_size: int = 250):
    """Count units whose posterior mean varies across images (variance > 0.01) per latent site, with each
    site's mean analytic KL, from one guide pass per batch."""
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    kls: dict[str, float] = {}
    for lr, hr in progress(pairs.batches(batch_size, device=device), pairs.num_batches(batch_size), "active units"):
        guide_trace, model_trace = paired_traces(vae, lr, hr)
        for name, site in sample_sites(guide_trace):
            mean = site["fn"].mean.double().flatten(1)
            sums[name] = sums.get(name, 0) + mean.sum(0)
            squares[name] = squares.get(name, 0) + (mean**2).sum(0)
            kl = torch.distributions.kl_divergence(site["fn"], model_trace.nodes[name]["fn"])
            kls[name] = kls.get(name, 0.0) + float(kl.sum())
    n = len(pairs)
    variance = {name: squares[name] / n - (sums[name] / n) ** 2 for name in sums}
    return ActiveUnits(
        active={name: int((v > ACTIVE_UNIT_THRESHOLD).sum()) for name, v in variance.items()},
        units={name: v.numel() for name, v in variance.items()},
        kl={name: kls[name] / n for name in kls},
    )
