"""Posterior predictive checks: draws of HR from p(HR | LR) (decoder mean plus the likelihood's pixel noise) and
the calibration of their per-pixel central intervals against the true HR image."""

from __future__ import annotations

import numpy as np
import torch
from pyro.infer import Predictive

from pyro_sr.models.contract import ProbabilisticSR

CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@torch.no_grad()
def predictive_draws(vae: ProbabilisticSR, lr: torch.Tensor, num_samples: int) -> dict[str, torch.Tensor]:
    """K draws per LR image of ``sr`` (the decoder mean, what ``sample`` shows) and ``hr`` (with pixel noise,
    what the model claims about the true image), each (K, N, 3, H, W)."""
    return Predictive(vae.model, num_samples=num_samples, return_sites=("sr", "hr"))(lr)


def interval_coverage(
    draws: torch.Tensor, truth: torch.Tensor, levels: tuple[float, ...] = CALIBRATION_LEVELS
) -> np.ndarray:
    """Share of true pixels inside the central ``level`` interval of the per-pixel predictive draws (K, ...),
    for each level: a calibrated model covers a share equal to the level."""
    if not all(0 < level < 1 for level in levels):
        raise ValueError(f"interval levels must be in (0, 1), got {levels}")
    coverage = []
    for level in levels:
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=draws.dtype, device=draws.device)
        low, high = torch.quantile(draws.flatten(1), q, dim=0)
        inside = (truth.flatten() >= low) & (truth.flatten() <= high)
        coverage.append(float(inside.double().mean()))
    return np.array(coverage)
