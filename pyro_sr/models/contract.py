"""What a super-resolver declares, so that prediction, evaluation and diagnostics ask a model what it can do
instead of what it is called.

- :class:`DeterministicSR`: one super-resolution per LR image, ``predict(lr)``. The CNNs.
- :class:`ProbabilisticSR`: a Pyro program ``model(lr, hr=None, beta=1.0, temperature=1.0)`` of p(HR | LR) under
  the plate ``images``, whose sites are

  - the latent sample sites named in ``latent_sites`` (each inside ``poutine.scale`` by its KL weight ``beta``),
    drawn from the LR-conditioned prior, its scale multiplied by ``temperature`` (one for all sites, or, where
    the model takes it, one per site);
  - ``sr`` (deterministic, event_dim 3): the location of the pixel likelihood given the latents (its mean), in
    [0, 1] up to overshoot. It is what a *sample* of the super-resolver is: ``predict.sampling`` returns it;
  - ``hr`` (event_dim 3): the pixel likelihood itself, observed when ``hr`` is given.

  Anything with such a ``model`` can be sampled with ``pyro.infer.Predictive``.
- :class:`VariationalSR`: a ``ProbabilisticSR`` with a ``guide(lr, hr, beta=1.0, temperature=1.0)`` over the
  same latent sites: what SVI training, the ELBO and IWAE bounds and the posterior diagnostics need.
  Optionally ``precomputed(lr) -> dict`` of tensors that depend on the LR image alone and on no trained weight
  (the HVAE's frozen base prediction, ``{"base": ...}``); the training loop and ``predict.sampling`` compute it
  once per image and pass it to ``model`` and ``guide`` as keyword arguments, which without them compute it
  themselves.

Convolutional models also say ``receptive_radius``: how many LR pixels around an output pixel's own LR pixel it
depends on (an upper bound; None where every output sees the whole image). Tiled prediction uses it as its margin,
so a tiled output equals a whole-image pass. A probabilistic one whose latents are images says ``latent_grids``:
each latent site's (channels, factor of its grid over the LR grid), so that tiled sampling can give every tile its
crop of one whole-image draw of the latents' noise (``predict.noise``).

A probabilistic super-resolver whose ``hr`` site is a pmf on the 8-bit values (the discretised logistic mixture)
says so with ``discrete_likelihood = True``: its bits/dim are then exact, not on dequantised images.

Every model also carries ``config``: a frozen dataclass with ``scale`` and ``to_dict()``, stored in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

Upscaler = Callable[[torch.Tensor], torch.Tensor]  # LR batch -> SR batch (or K samples of it, (K, N, 3, H, W))


def has_discrete_likelihood(model: Any) -> bool:
    """Whether ``model``'s pixel likelihood is a pmf on the 8-bit values (scored exactly, not dequantised)."""
    return bool(getattr(model, "discrete_likelihood", False))


@runtime_checkable
class DeterministicSR(Protocol):
    """One super-resolution per LR image."""

    config: Any

    def predict(self, lr: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, 3, scale h, scale w)."""
        ...


@runtime_checkable
class ProbabilisticSR(Protocol):
    """A Pyro model of p(HR | LR) with the sites described in the module docstring."""

    config: Any
    latent_sites: tuple[str, ...]

    def model(
        self, lr: torch.Tensor, hr: torch.Tensor | None = None, beta: Any = 1.0, temperature: float = 1.0
    ) -> torch.Tensor: ...


@runtime_checkable
class VariationalSR(ProbabilisticSR, Protocol):
    """A probabilistic super-resolver with an amortised guide q(latents | HR, LR) over the same latent sites."""

    def guide(self, lr: torch.Tensor, hr: torch.Tensor, beta: Any = 1.0, temperature: float = 1.0) -> Any: ...
