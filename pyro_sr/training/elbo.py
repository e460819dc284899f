"""The ELBO estimators a VAE is fitted with: Pyro's ``Trace_ELBO``, or its analytic-KL ``TraceMeanField_ELBO``."""

from __future__ import annotations

import pyro.poutine as poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_model_guide_match

ELBOS = ("trace", "meanfield")


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

    def _differentiable_loss_particle(self, model_trace, guide_trace):
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
    return AnalyticKLELBO() if name == "meanfield" else Trace_ELBO()
