"""The ELBO estimators a VAE is fitted with: Pyro's ``Trace_ELBO``, or its analytic-KL ``TraceMeanField_ELBO``.

Both keep each latent site's KL of their last particle (``site_kl``: nats per image, unweighted, averaged over the
batch, detached), what free bits decide from; with the analytic KL it is the KL itself, with ``Trace_ELBO`` its
one-draw estimate log q(z) - log p(z).
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.distributions.kl import kl_divergence
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match

ELBOS = ("trace", "meanfield")


def _latent_pairs(model_trace, guide_trace):
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and name in guide_trace.nodes:
            yield name, site, guide_trace.nodes[name]


def _unscaled_log_prob(site) -> torch.Tensor:
    if "unscaled_log_prob" in site:  # computed by the trace already
        return site["unscaled_log_prob"]
    return site["fn"].log_prob(site["value"])


class RecordingTraceELBO(Trace_ELBO):
    """``Trace_ELBO`` that keeps each latent site's one-draw KL estimate (``site_kl``)."""

    site_kl: dict[str, torch.Tensor] = {}

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        self.site_kl = {}
        for name, model_site, guide_site in _latent_pairs(model_trace, guide_trace):
            log_q, log_p = (_unscaled_log_prob(site) for site in (guide_site, model_site))
            self.site_kl[name] = (log_q - log_p).detach().float().mean()
        return super()._differentiable_loss_particle(model_trace, guide_trace)


class AnalyticKLELBO(TraceMeanField_ELBO):
    """``TraceMeanField_ELBO`` without the log-densities it does not read.

    Pyro computes every site's log-density in both traces before the loss, but with an analytic KL the loss reads
    only the observed sites' (for the hierarchical VAE the latent ones were 15% of a training step). They are
    computed when a latent site turns out to have no analytic KL, so the estimate is Pyro's in every case."""

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(
            *args, **kwargs
        )
        if is_validation_enabled():
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
            _check_mean_field_requirement(model_trace, guide_trace)
        model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
        model_trace.compute_log_prob(lambda name, site: site["is_observed"])
        return model_trace, guide_trace

    site_kl: dict[str, torch.Tensor] = {}

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        self.site_kl = {}
        for name, model_site, guide_site in _latent_pairs(model_trace, guide_trace):
            try:
                self.site_kl[name] = kl_divergence(guide_site["fn"], model_site["fn"]).detach().float().mean()
            except NotImplementedError:
                pass  # no analytic KL: the loss below falls back on sampling for it too
        try:
            return super()._differentiable_loss_particle(model_trace, guide_trace)
        except KeyError:  # a latent site without an analytic KL reads its log-densities after all
            model_trace.compute_log_prob()
            guide_trace.compute_score_parts()
            return super()._differentiable_loss_particle(model_trace, guide_trace)


def make_elbo(name: str) -> Trace_ELBO:
    """``trace``: Trace_ELBO; ``meanfield``: the analytic-KL estimator (:class:`AnalyticKLELBO`)."""
    if name not in ELBOS:
        raise ValueError(f"unknown ELBO {name!r}; choose from {ELBOS}")
    return AnalyticKLELBO() if name == "meanfield" else RecordingTraceELBO()
