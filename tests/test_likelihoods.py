"""Pixel likelihoods: one distribution over whole images, event_dim 3."""

import math

import torch

from pyro_sr.models.likelihoods import per_channel_normal


def test_per_channel_normal_is_one_log_density_per_image():
    loc = torch.rand(2, 3, 4, 5)
    log_scale = torch.tensor([-1.0, -2.0, -3.0])
    fn = per_channel_normal(loc, log_scale)
    assert fn.batch_shape == (2,) and fn.event_shape == (3, 4, 5)
    x = torch.rand(2, 3, 4, 5)
    sigma = log_scale.exp().view(1, 3, 1, 1)
    slow = (-0.5 * ((x - loc) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    assert torch.allclose(fn.log_prob(x), slow, atol=1e-4)
    draws = per_channel_normal(torch.zeros(1, 3, 64, 64), log_scale).sample((20,))
    assert torch.allclose(draws.std(dim=(0, 1, 3, 4)), log_scale.exp(), rtol=0.05)
