"""The guide's trace and the model's trace replayed on it: one ELBO sample, which training, the likelihood bounds
and the diagnostics all take apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample

from pyro_sr.models.contract import VariationalSR


def paired_traces(vae: VariationalSR, lr: torch.Tensor, hr: torch.Tensor, beta: Any = 1.0) -> tuple[Trace, Trace]:
    """z ~ q(z | hr, lr) from the guide, and the model's trace with those z (and ``hr`` observed)."""
    guide_trace = poutine.trace(vae.guide).get_trace(lr, hr, beta)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(lr, hr, beta)
    return guide_trace, model_trace


def sample_sites(trace: Trace, observed: bool = True) -> Iterator[tuple[str, dict]]:
    """(name, site) of the trace's sample sites, plates left out; latent ones only unless ``observed``."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) and (observed or not site["is_observed"]):
            yield name, site


def log_weight(guide_trace: Trace, model_trace: Trace) -> torch.Tensor:
    """log p(hr, z | lr) - log q(z | hr, lr) per image, unscaled (the KL weights do not enter)."""
    total = 0.0
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for _, site in sample_sites(trace):
            total = total + sign * site["fn"].log_prob(site["value"])
    return total
