"""Pixel likelihoods p(HR | decoder output): the distributions a VAE's ``hr`` site observes.

Each is a Pyro distribution over whole images (event_dim 3: channel, row, column), so the plate over images
is the only batch dimension and ``log_prob`` is one number per image.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch


def per_channel_normal(loc: torch.Tensor, log_scale: torch.Tensor) -> dist.Independent:
    """Independent Normals around ``loc`` (N, C, H, W) with one scale per channel, ``exp(log_scale)`` (C,)."""
    scale = log_scale.exp().view(1, -1, 1, 1).expand_as(loc)
    return dist.Normal(loc, scale).to_event(3)
