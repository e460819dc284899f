"""Posterior predictive draws of HR from p(HR | LR): the decoder mean and the likelihood's pixel noise on it (their
calibration: ``pyro_sr.evaluation.calibration``)."""

from __future__ import annotations

import torch
from pyro.infer import Predictive

from pyro_sr.models.contract import ProbabilisticSR


@torch.no_grad()
def predictive_draws(vae: ProbabilisticSR, lr: torch.Tensor, num_samples: int) -> dict[str, torch.Tensor]:
    """K draws per LR image at temperature 1 of ``sr`` (the pixel likelihood's mean) and ``hr`` (with pixel
    noise, what the fitted model claims about the true image), each (K, N, 3, H, W)."""
    return Predictive(vae.model, num_samples=num_samples, return_sites=("sr", "hr"))(lr)
