"""``pyro.module`` for a VAE's model and guide, and the scope in which a training step that optimises the
network's parameters itself skips it.

Model and guide call ``pyro.module`` so that ``pyro.infer.SVI`` with a Pyro optimiser finds the weights in the
trace. :class:`~pyro_sr.training.step.ELBOStep` holds them in its own torch optimiser, so for it the registration
(a param-store lookup and a constraint transform per parameter, twice a step) is pure overhead: most of Pyro's
overhead over a hand-written HVAE step (scripts/benchmark_svi.py on 2 CPU threads: 6.4-8.0% with it, 0.3-9.6%
without, within the benchmark's noise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pyro
from torch import nn

_OPTIMISED_ELSEWHERE: ContextVar[bool] = ContextVar("optimised_elsewhere", default=False)


def register(name: str, module: nn.Module) -> None:
    """``pyro.module(name, module)``, unless inside :func:`optimised_elsewhere`."""
    if not _OPTIMISED_ELSEWHERE.get():
        pyro.module(name, module)


@contextmanager
def optimised_elsewhere() -> Iterator[None]:
    """Run model and guide without registering their parameters in Pyro's param store: the caller optimises
    ``module.parameters()`` itself (and then the trace has no ``param`` sites for SVI to find)."""
    token = _OPTIMISED_ELSEWHERE.set(True)
    try:
        yield
    finally:
        _OPTIMISED_ELSEWHERE.reset(token)
