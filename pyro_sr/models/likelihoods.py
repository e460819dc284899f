"""Pixel likelihoods p(HR | decoder output): the distributions a VAE's ``hr`` site observes, and the small heads
that turn the decoder's output into them.

Each distribution is over whole images (event_dim 3: channel, row, column), so the plate over images is the only
batch dimension and ``log_prob`` is one number per image. Three are offered (``LIKELIHOODS``), chosen by a VAE's
config and so stored in its checkpoint:

- ``normal``: independent Normals around the decoder's location with one learned scale per channel (the first
  pyro-sr VAEs). Every pixel pays the same price, flat or textured.
- ``normal-pixel``: the decoder also predicts each pixel's scale, so flat regions are sure and edges are not.
- ``dmol``: a discretised mixture of logistics over the 256 levels of 8-bit pixels (Salimans et al., 2017,
  PixelCNN++; as in VDVAE): per pixel, K components share a mixture weight across R, G and B; within a
  component G's location moves linearly with the R value and B's with R and G (the coupling), and each level k
  gets the logistic's mass on [k - 1/2, k + 1/2] / 255, with the two edge levels taking all the mass below 0.5/255
  and above 254.5/255, so the pmf sums to exactly 1 over the 256 levels.

The two Normals are densities on [0, 1]: their bits/dim is scored on dequantised images. The mixture is a pmf on
the 8-bit values (``discrete``), so its bits/dim is exact, with no dequantisation.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from pyro_sr.models.blocks import full_precision

LIKELIHOODS = ("normal", "normal-pixel", "dmol")
DEFAULT_MIXTURES = 5  # per pixel; VDVAE uses 10 (unconditional CIFAR-10), 5 steps the HVAE 1.25x faster on CPU
LEVELS = 255  # an 8-bit pixel x in [0, 1] is one of k / LEVELS, k = 0..255
# A soft floor on the logistic scale at VDVAE's e^-7 on its [-1, 1] pixels (0.12 of a level, which still gives a
# level 97% of the mass): log s = floor + softplus(raw - floor), so the gradient never vanishes as a clamp's does
# (a clamp, at either end, froze every scale that crossed it in a trial run: at a cap of e^3 every pixel's
# distribution was flat and stayed so).
MIN_LOG_SCALE = -7.0 - math.log(2.0)
PIXEL_SCALE_FLOOR = 1e-3  # a quarter of a level: a per-pixel Normal scale cannot shrink to a point


def check_likelihood(name: str, mixtures: int = DEFAULT_MIXTURES) -> None:
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {LIKELIHOODS}")
    if mixtures < 1:
        raise ValueError(f"the mixture needs at least one component, got {mixtures}")


def per_channel_normal(loc: torch.Tensor, log_scale: torch.Tensor) -> dist.Independent:
    """Independent Normals around ``loc`` (N, C, H, W) with one scale per channel, ``exp(log_scale)`` (C,)."""
    scale = log_scale.exp().view(1, -1, 1, 1).expand_as(loc)
    return dist.Normal(loc, scale).to_event(3)


def _log_bin_mass(lower: torch.Tensor, upper: torch.Tensor, log_width: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(upper) - sigmoid(lower)) for upper - lower = exp(``log_width``) > 0, without cancellation in
    either tail: sigmoid(b) - sigmoid(a) = sigmoid(b) sigmoid(-a) (1 - exp(a - b)). The width is passed, not taken
    as upper - lower: far from a component's location both are large and their fp32 difference can be 0, whose
    log is -inf, and a -inf even in the branch torch.where does not take turns the gradient into NaN. For a width
    below 1e-4 (a very wide logistic), log(1 - e^-w) is log w to within w / 2."""
    width = log_width.exp()
    small = width < 1e-4
    log_one_minus = torch.where(small, log_width, torch.log(-torch.expm1(-width.clamp(min=1e-4))))
    return F.logsigmoid(upper) + F.logsigmoid(-lower) + log_one_minus


class DiscretizedLogisticMixture(TorchDistribution):
    """A discretised mixture of logistics over 8-bit RGB images (see the module docstring), values k / 255.

    Parameters per image (N), component (K), channel (3) and pixel (H, W): ``logits`` (N, K, H, W), ``locs``,
    ``log_scales`` (floored softly at ``MIN_LOG_SCALE``) and ``coeffs`` (N, K, 3, H, W); ``coeffs`` are
    (alpha, beta, gamma): G's location moves by alpha R, B's by beta R + gamma G."""

    arg_constraints = {
        "logits": constraints.real,
        "locs": constraints.real,
        "log_scales": constraints.real,
        "coeffs": constraints.real,
    }
    support = constraints.independent(constraints.unit_interval, 3)
    has_rsample = False
    discrete = True

    def __init__(self, logits, locs, log_scales, coeffs, temperature: float = 1.0, validate_args=None):
        if locs.dim() != 5 or locs.shape[2] != 3:
            raise ValueError(f"expected locs of shape (N, K, 3, H, W), got {tuple(locs.shape)}")
        self.logits, self.locs, self.coeffs = logits, locs, coeffs
        self.temperature = temperature  # of draws (see tempered_sample); log_prob is the untempered pmf
        self.raw_log_scales = log_scales  # what the head gave; the scales in use are floored softly
        self.log_scales = MIN_LOG_SCALE + F.softplus(log_scales - MIN_LOG_SCALE)
        super().__init__(locs.shape[:1], locs.shape[2:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        if tuple(batch_shape) == tuple(self.batch_shape):
            return self
        return super().expand(batch_shape, _instance)

    @staticmethod
    def to_levels(value: torch.Tensor) -> torch.Tensor:
        """The 8-bit level nearest each value, as k / 255."""
        return (value.clamp(0, 1) * LEVELS).round() / LEVELS

    def _coupled_locs(self, x: torch.Tensor) -> torch.Tensor:
        """Each component's location given the pixel's own R (and G) values x (..., N, 1, 3, H, W)."""
        alpha, beta, gamma = self.coeffs.unbind(-3)
        r, g = x[..., 0, :, :], x[..., 1, :, :]
        loc_r, loc_g, loc_b = self.locs.unbind(-3)
        loc_g, loc_b = loc_g + alpha * r, loc_b + beta * r + gamma * g
        return torch.stack([loc_r.expand_as(loc_g), loc_g, loc_b], -3)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self.to_levels(value).unsqueeze(-4)  # (..., N, 1, 3, H, W) against K components
        centred = x - self._coupled_locs(x)
        inv_scale = torch.exp(-self.log_scales)
        half_bin = inv_scale * (0.5 / LEVELS)
        upper, lower = inv_scale * centred + half_bin, inv_scale * centred - half_bin
        inside = _log_bin_mass(lower, upper, -self.log_scales - math.log(LEVELS))
        per_channel = torch.where(x <= 0, F.logsigmoid(upper), torch.where(x >= 1, F.logsigmoid(-lower), inside))
        per_component = per_channel.sum(-3) + torch.log_softmax(self.logits, -3)  # (..., N, K, H, W)
        return torch.logsumexp(per_component, -3).flatten(-2).sum(-1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.tempered_sample(self.temperature, sample_shape)

    @torch.no_grad()
    def tempered_sample(self, temperature: float, sample_shape=torch.Size()) -> torch.Tensor:
        """A draw with every logistic's scale multiplied by ``temperature`` (0: each pixel at its chosen
        component's coupled location), rounded to the 8-bit levels."""
        shape = torch.Size(sample_shape) + self.logits.shape
        gumbel = -torch.log(-torch.log(torch.rand(shape, device=self.logits.device).clamp(1e-10, 1 - 1e-7)))
        choice = (self.logits + gumbel).argmax(-3, keepdim=True)  # (..., N, 1, H, W)
        index = choice.unsqueeze(-3).expand(*shape[:-3], 1, 3, *shape[-2:])

        def chosen(param: torch.Tensor) -> torch.Tensor:
            return torch.gather(param.expand(*shape[:-3], *param.shape[-4:]), -4, index).squeeze(-4)

        loc, log_scale = chosen(self.locs), chosen(self.log_scales)
        alpha, beta, gamma = chosen(self.coeffs).unbind(-3)
        u = torch.rand(loc.shape, device=loc.device).clamp(1e-5, 1 - 1e-5)
        noise = temperature * log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        r = self.to_levels(loc[..., 0, :, :] + noise[..., 0, :, :])
        g = self.to_levels(loc[..., 1, :, :] + alpha * r + noise[..., 1, :, :])
        b = self.to_levels(loc[..., 2, :, :] + beta * r + gamma * g + noise[..., 2, :, :])
        return torch.stack([r, g, b], -3)

    @property
    def mean(self) -> torch.Tensor:
        """The mixture's mean with the coupling carried through (E[G | k] = loc_G + alpha E[R | k], ...), in [0, 1];
        the discretisation and the edge bins are left out (they move it by well under a level where the pixel is
        not pinned at 0 or 1)."""
        weights = torch.softmax(self.logits, -3)
        loc_r, loc_g, loc_b = self.locs.unbind(-3)
        alpha, beta, gamma = self.coeffs.unbind(-3)
        mean_g = loc_g + alpha * loc_r
        means = torch.stack([loc_r, mean_g, loc_b + beta * loc_r + gamma * mean_g], -3)
        return (weights.unsqueeze(-3) * means).sum(-4).clamp(0, 1)


class PixelLikelihood(nn.Module):
    """A likelihood head: ``head(loc, features) -> distribution`` over the HR image, given the decoder's location
    ``loc`` (N, 3, H, W) and its last hidden features (N, C, H, W) on the HR grid."""

    discrete = False

    def tempered(self, fn: TorchDistribution, temperature: float) -> TorchDistribution:
        """``fn`` whose draws have their pixel noise scaled by ``temperature`` (0: the location itself)."""
        if temperature == 0:
            return dist.Delta(fn.base_dist.loc, event_dim=3)
        return dist.Normal(fn.base_dist.loc, fn.base_dist.scale * temperature).to_event(3)


class PerChannelNormal(PixelLikelihood):
    """``normal``: one scale per channel, learned, or fixed when ``fixed_scale`` is given (the paper's 0.01)."""

    def __init__(self, fixed_scale: float | None = None):
        super().__init__()
        if fixed_scale is None:
            self.log_scale = nn.Parameter(torch.full((3,), -3.0))
        else:
            self.register_buffer("log_scale", torch.full((3,), float(fixed_scale)).log())

    def forward(self, loc: torch.Tensor, features: torch.Tensor) -> dist.Independent:
        return per_channel_normal(loc, self.log_scale)

    @staticmethod
    def accept_legacy_key(vae: nn.Module) -> None:
        """Let ``vae`` load checkpoints from before the likelihood heads, which kept this head's scale as the
        VAE's own ``log_hr_scale``."""

        def rename(module, state_dict, prefix, *args) -> None:
            if prefix + "log_hr_scale" in state_dict:
                state_dict[prefix + "likelihood.log_scale"] = state_dict.pop(prefix + "log_hr_scale")

        vae.register_load_state_dict_pre_hook(rename)


class PerPixelNormal(PixelLikelihood):
    """``normal-pixel``: the decoder's features give each pixel and channel its own scale."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale_head = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.scale_head.weight)
        nn.init.constant_(self.scale_head.bias, math.log(math.expm1(0.05)))  # softplus^-1: every scale 0.05

    def forward(self, loc: torch.Tensor, features: torch.Tensor) -> dist.Independent:
        scale = F.softplus(full_precision(self.scale_head, features)) + PIXEL_SCALE_FLOOR
        return dist.Normal(loc, scale).to_event(3)


class LogisticMixture(PixelLikelihood):
    """``dmol``: one conv from the decoder's features to the mixture's parameters; each component's location is
    the decoder's ``loc`` plus its own offset, so the mixture starts around the decoder's location."""

    discrete = True

    def __init__(self, channels: int, mixtures: int = DEFAULT_MIXTURES):
        super().__init__()
        self.mixtures = mixtures
        self.to_params = nn.Conv2d(channels, 10 * mixtures, 3, padding=1)
        with torch.no_grad():  # small random offsets break the components' symmetry; scales start at 0.05
            self.to_params.weight.mul_(0.1)
            self.to_params.bias.zero_()
            self.to_params.bias[4 * mixtures : 7 * mixtures] = math.log(0.05)

    def forward(self, loc: torch.Tensor, features: torch.Tensor) -> DiscretizedLogisticMixture:
        k = self.mixtures
        n, _, h, w = loc.shape
        params = full_precision(self.to_params, features)
        logits = params[:, :k]
        offsets, log_scales, raw_coeffs = params[:, k:].view(n, 3, k, 3, h, w).unbind(1)
        return DiscretizedLogisticMixture(logits, loc.unsqueeze(1) + offsets, log_scales, torch.tanh(raw_coeffs))

    def tempered(self, fn, temperature):
        return DiscretizedLogisticMixture(fn.logits, fn.locs, fn.raw_log_scales, fn.coeffs, temperature)


def build_likelihood(
    name: str, channels: int, mixtures: int = DEFAULT_MIXTURES, fixed_scale: float | None = None
) -> PixelLikelihood:
    """The head of likelihood ``name`` reading decoder features of ``channels`` channels."""
    check_likelihood(name, mixtures)
    if fixed_scale is not None and name != "normal":
        raise ValueError(f"a fixed likelihood scale needs the 'normal' likelihood, not {name!r}")
    if name == "normal":
        return PerChannelNormal(fixed_scale)
    if name == "normal-pixel":
        return PerPixelNormal(channels)
    return LogisticMixture(channels, mixtures)
