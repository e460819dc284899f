"""How well the variational posterior fits: the ELBO–IWAE gap, Pareto k̂ of the importance weights per image
(``pyro_sr.evaluation.importance``), and active latent units per group."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pyro_sr.common import progress
from pyro_sr.data.datasets import PairedImages
from pyro_sr.evaluation.importance import PARETO_K_BAD, pareto_k
from pyro_sr.evaluation.likelihood import iwae_bound, vae_log_weights
from pyro_sr.models.contract import VariationalSR, has_discrete_likelihood
from pyro_sr.models.traces import paired_traces, sample_sites

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Cov_x(E_q[z_u]) above this makes unit u active
UNIT_KL_FLOOR = 0.01  # nats per image: a unit below it carries (almost) no information about the HR image


@dataclass
class VariationalFit:
    """Per-image log weights with the bounds and k̂ they give."""

    log_weights: np.ndarray  # (images, K), nats
    bounds: dict[int, np.ndarray]  # K -> per-image IWAE bound with the first K draws (K = 1: the ELBO)
    pareto_k: np.ndarray  # (images,)
    discrete: bool = False  # scored on the 8-bit values (a discrete likelihood), not on dequantised images

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
    """Draw max(ks) importance weights per image on the HR images (their 8-bit values for a discrete likelihood,
    else dequantised); bounds for each K use the first K
    draws, so they are nested and the ELBO–IWAE gap is measured on the same draws."""
    if not ks or min(ks) < 1:
        raise ValueError(f"importance sample sizes must be >= 1, got {ks}")
    log_weights = vae_log_weights(vae, pairs, max(ks), device, batch_size, seed)
    bounds = {k: iwae_bound(log_weights[:, :k]).numpy() for k in sorted(set(ks))}
    discrete = has_discrete_likelihood(vae)
    return VariationalFit(log_weights.numpy(), bounds, pareto_k(log_weights.numpy()), discrete)


@dataclass
class ActiveUnits:
    """Per latent group: active units (against the prior), units that carry KL, all units, the mean KL (nats per
    image) and, for a latent map (channels, height, width), the mean KL of each channel: a group can be far from
    collapsed while most of its channels carry nothing."""

    active: dict[str, int]
    informative: dict[str, int]
    units: dict[str, int]
    kl: dict[str, float]
    channel_kl: dict[str, list[float]] = field(default_factory=dict)

    def used_channels(self, name: str, share: float = 0.01) -> int:
        """The channels of group ``name``'s latent map that carry at least ``share`` of the group's KL (and more
        than 0.01 nats): none in a collapsed group."""
        threshold = max(share * self.kl[name], UNIT_KL_FLOOR)
        return sum(kl >= threshold for kl in self.channel_kl[name])

    def collapsed(self, kl_floor: float = 0.1) -> list[str]:
        """Groups with no active unit or a KL below ``kl_floor`` nats: the model ignores them."""
        return [name for name in self.units if self.active[name] == 0 or self.kl[name] < kl_floor]


def _normal_moments(fn) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and standard deviation of a latent site's distribution, flattened per image."""
    return fn.mean.double().flatten(1), fn.stddev.double().flatten(1)


@torch.no_grad()
def active_units(vae: VariationalSR, pairs: PairedImages, device: torch.device | str = "cpu", batch_size: int = 250):
    """Per latent site, from one guide pass per batch: the units whose posterior mean moves away from the prior's
    by an amount that varies across images (Var_x((E_q[z_u] - E_p[z_u]) / sd_p[z_u]) > 0.01, Burda et al.'s
    criterion taken relative to the prior), the units whose mean KL exceeds 0.01 nats, and the site's mean KL.

    Relative to the prior, because the prior is conditioned on the LR image: a group whose posterior equals its
    prior has E_q[z] = E_p[z | LR], which varies with the image, so Var_x(E_q[z]) alone counts it as active."""
    shift_sums: dict[str, torch.Tensor] = {}
    shift_squares: dict[str, torch.Tensor] = {}
    unit_kls: dict[str, torch.Tensor] = {}
    event_shapes: dict[str, torch.Size] = {}
    for lr, hr in progress(pairs.batches(batch_size, device=device), pairs.num_batches(batch_size), "active units"):
        guide_trace, model_trace = paired_traces(vae, lr, hr)
        for name, site in sample_sites(guide_trace):
            mean_q, sd_q = _normal_moments(site["fn"])
            mean_p, sd_p = _normal_moments(model_trace.nodes[name]["fn"])
            shift = (mean_q - mean_p) / sd_p
            kl = torch.log(sd_p / sd_q) + (sd_q**2 + (mean_q - mean_p) ** 2) / (2 * sd_p**2) - 0.5
            shift_sums[name] = shift_sums.get(name, 0) + shift.sum(0)
            shift_squares[name] = shift_squares.get(name, 0) + (shift**2).sum(0)
            unit_kls[name] = unit_kls.get(name, 0) + kl.sum(0)
            event_shapes[name] = site["fn"].event_shape
    n = len(pairs)
    variance = {name: shift_squares[name] / n - (shift_sums[name] / n) ** 2 for name in shift_sums}
    return ActiveUnits(
        active={name: int((v > ACTIVE_UNIT_THRESHOLD).sum()) for name, v in variance.items()},
        informative={name: int((kl / n > UNIT_KL_FLOOR).sum()) for name, kl in unit_kls.items()},
        units={name: v.numel() for name, v in variance.items()},
        kl={name: float(kl.sum()) / n for name, kl in unit_kls.items()},
        channel_kl={
            name: (kl.reshape(event_shapes[name][0], -1).sum(1) / n).tolist()
            for name, kl in unit_kls.items()
            if len(event_shapes[name]) == 3
        },
    )
