"""The handler that puts a KL weight (β, or an annealing factor) on latent sample sites."""

from __future__ import annotations

from pyro import poutine


def kl_weight(beta: float):
    """``poutine.scale(beta)`` for β > 0; at β = 0 ``poutine.mask(False)``, since Pyro refuses a zero scale:
    the latent's log-densities then drop out of the ELBO while its reparameterised sample still flows on."""
    if beta < 0:
        raise ValueError(f"the KL weight must be non-negative, got {beta}")
    return poutine.scale(scale=beta) if beta > 0 else poutine.mask(mask=False)
