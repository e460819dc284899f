"""The ELBO estimators a VAE is fitted with: Pyro's ``Trace_ELBO``, or its analytic-KL ``TraceMeanField_ELBO``.

Both keep each latent site's KL of their last particle (``site_kl``: nats per image, unweighted, averaged over the
batch, detached), which the training log reports; with the analytic KL it is the KL itself, with ``Trace_ELBO`` its
one-draw estimate log q(z) - log p(z).

The analytic-KL estimator also does free bits (Kingma et al., 2016, "Improved variational inference with inverse
autoregressive flow", section on free bits): each latent group's KL term becomes max(its batch-mean KL, λ) per
image, so a group whose KL is below λ costs nothing and gets no gradient towards its prior, and the decoder
learns to read it instead of the group collapsing. The max is taken in the same step as the KL, inside the loss:
deciding it from the previous step's KL instead (a KL weight of 0 for a group below the floor) let a freed
group's posterior run far from its prior in the one step it was free, and the first runs with it diverged.
The β-weighting (``poutine.scale``) multiplies the term as before.
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from pyro.distributions.kl import kl_divergence
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import is_validation_enabled, torch_item
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
    """``TraceMeanField_ELBO`` without the log-densities it does not read, and with free bits (``free_bits``: λ in
    nats per image and latent group; 0: none).

    Pyro computes every site's log-density in both traces before the loss, but with an analytic KL the loss reads
    only the observed sites' (for the hierarchical VAE the latent ones were 15% of a training step). A latent site
    without an analytic KL gets its log-densities and the sampled estimate, as in Pyro."""

    site_kl: dict[str, torch.Tensor] = {}

    def __init__(self, free_bits: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if free_bits < 0:
            raise ValueError(f"free bits must be >= 0, got {free_bits}")
        self.free_bits = free_bits

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

    def _kl_term(self, kl: torch.Tensor) -> torch.Tensor:
        """Per image: the KL, or λ (a constant) while the batch-mean KL is below λ."""
        if not self.free_bits:
            return kl
        return torch.where(kl.mean() < self.free_bits, torch.full_like(kl, self.free_bits), kl)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        self.site_kl = {}
        elbo = 0.0
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample":
                continue
            if model_site["is_observed"]:
                elbo = elbo + model_site["log_prob_sum"]
                continue
            guide_site = guide_trace.nodes[name]
            try:
                kl = kl_divergence(guide_site["fn"], model_site["fn"])
            except NotImplementedError:  # sampled: log p(z) - log q(z) at the guide's draw
                model_trace.compute_log_prob(lambda site, _, wanted=name: site == wanted)
                guide_trace.compute_score_parts()
                elbo = elbo + model_site["log_prob_sum"] - guide_site["score_parts"].entropy_term.sum()
                continue
            self.site_kl[name] = kl.detach().float().mean()
            elbo = elbo - scale_and_mask(self._kl_term(kl), guide_site["scale"], guide_site["mask"]).sum()
        for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites: their entropy
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                guide_trace.compute_score_parts()
                elbo = elbo - guide_site["score_parts"].entropy_term.sum()
        return -torch_item(elbo), -elbo


def make_elbo(name: str, free_bits: float = 0.0) -> Trace_ELBO:
    """``trace``: Trace_ELBO; ``meanfield``: the analytic-KL estimator (:class:`AnalyticKLELBO`), which alone
    takes ``free_bits``."""
    if name not in ELBOS:
        raise ValueError(f"unknown ELBO {name!r}; choose from {ELBOS}")
    if name == "meanfield":
        return AnalyticKLELBO(free_bits)
    if free_bits:
        raise ValueError("free bits need the analytic KL: --elbo meanfield")
    return RecordingTraceELBO()
