"""Conditional VAE super-resolver as a Pyro model/guide pair.

    p(HR | LR) = ∫ p(HR | z, LR) p(z | LR) dz,   fitted with the ELBO against q(z | HR, LR).

The model and the guide share the site names ``z`` (latent) and ``hr`` (observed), both under the plate
``images``; the latent site sits inside ``poutine.scale(scale=beta)`` (``kl_weight``) in model *and* guide, so
β-weighting and KL annealing scale exactly log p(z | LR) − log q(z | HR, LR). With ``hr=None`` the model samples a
super-resolution, so ``pyro.infer.Predictive(model, ...)`` draws from p(HR | LR); the pixel likelihood's mean (a
head of ``models.likelihoods`` on the decoder) is recorded as the deterministic site ``sr``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from pyro_sr.data.degradation import check_scale
from pyro_sr.models.blocks import (
    LREncoder,
    ResidualBlock,
    SubPixelUpsampler,
    bicubic_upscale,
    conv3x3,
    full_precision,
    split_loc_scale,
    tempered_prior,
)
from pyro_sr.models.kl_weight import kl_weight
from pyro_sr.models.likelihoods import DEFAULT_MIXTURES, PerChannelNormal, build_likelihood, check_likelihood
from pyro_sr.models.registration import register

PRIORS = ("spatial", "linear")


@dataclass(frozen=True)
class CVAEConfig:
    """Architecture of a conditional VAE; stored in checkpoints so the model can be rebuilt."""

    scale: int = 4
    prior: str = "spatial"  # spatial: latents on the LR grid (any image size); linear: the paper's vector latent
    latent_channels: int = 4  # spatial: latent channels per LR pixel
    latent_dim: int = 192  # linear: size of the latent vector (the paper: 192)
    lr_size: int = 8  # linear: the LR side the linear layers expect (8 for CIFAR-10 at 4x)
    channels: int = 64
    blocks: int = 6
    decoder_sees_lr: bool = True  # False: the paper's decoder, HR from z alone
    likelihood_scale: float | None = None  # normal: None learns the per-channel sigma; a number fixes it (paper: 0.01)
    likelihood: str = "normal"  # normal | normal-pixel | dmol: see pyro_sr.models.likelihoods
    mixtures: int = DEFAULT_MIXTURES  # dmol: logistic components per pixel

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; choose from {PRIORS}")
        check_scale(self.scale)
        check_likelihood(self.likelihood, self.mixtures)
        if self.likelihood_scale is not None and not self.likelihood_scale > 0:
            raise ValueError(f"likelihood scale must be positive, got {self.likelihood_scale}")
        if self.likelihood_scale is not None and self.likelihood != "normal":
            raise ValueError(f"a fixed likelihood scale needs the 'normal' likelihood, not {self.likelihood!r}")

    def to_dict(self) -> dict:
        return asdict(self)


CVAE_PRESETS = {
    # The paper's VAE: flattened LR -> one linear layer -> 192-d prior; decoder from z alone; sigma 0.01.
    "paper": CVAEConfig(prior="linear", latent_dim=192, decoder_sees_lr=False, likelihood_scale=0.01),
    "default": CVAEConfig(),
}


class ConditionalVAE(nn.Module):
    """p(z | LR), q(z | HR, LR) and p(HR | z, LR) with the pixel likelihood of ``config.likelihood``; see the module
    docstring."""

    def __init__(self, config: CVAEConfig = CVAEConfig()):
        super().__init__()
        self.config = config
        c, s = config.channels, config.scale
        self.lr_encoder = LREncoder(c, config.blocks)
        # The guide sees the HR residual over bicubic, folded onto the LR grid by PixelUnshuffle, and the LR image;
        # it has its own small network so the model's LR encoder runs once per step.
        guide_in = 3 * s * s + 3
        if config.prior == "spatial":
            self.prior_net = conv3x3(c, 2 * config.latent_channels)
            self.posterior_net = nn.Sequential(
                conv3x3(guide_in, c),
                nn.ReLU(),
                ResidualBlock(c, 2),
                ResidualBlock(c, 2),
                conv3x3(c, 2 * config.latent_channels),
            )
            self.latent_in = conv3x3(config.latent_channels, c)
        else:
            pixels = config.lr_size * config.lr_size
            self.prior_net = nn.Linear(3 * pixels, 2 * config.latent_dim)
            self.posterior_net = nn.Sequential(
                conv3x3(guide_in, c),
                nn.ReLU(),
                ResidualBlock(c, 2),
                ResidualBlock(c, 2),
                nn.Flatten(),
                nn.Linear(c * pixels, 2 * config.latent_dim),
            )
            self.latent_in = nn.Linear(config.latent_dim, c * pixels)
        decoder_in = 2 * c if config.decoder_sees_lr else c
        self.decoder = nn.Sequential(
            conv3x3(decoder_in, c),
            *[ResidualBlock(c, config.blocks) for _ in range(config.blocks)],
            SubPixelUpsampler(c, s),
            conv3x3(c, 3),
        )
        self.likelihood = build_likelihood(config.likelihood, c, config.mixtures, config.likelihood_scale)
        PerChannelNormal.accept_legacy_key(self)

    latent_sites = ("z",)

    @property
    def latent_event_dim(self) -> int:
        return 3 if self.config.prior == "spatial" else 1

    def _check(self, lr: torch.Tensor) -> None:
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected an LR batch of shape (N, 3, h, w), got {tuple(lr.shape)}")
        size = self.config.lr_size
        if self.config.prior == "linear" and lr.shape[-2:] != (size, size):
            raise ValueError(f"the linear-prior VAE takes {size}x{size} LR images, got {tuple(lr.shape[-2:])}")

    def prior(self, lr: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """loc and scale of p(z | LR)."""
        if self.config.prior == "spatial":
            return split_loc_scale(self.prior_net(features), 1)
        return split_loc_scale(self.prior_net((lr - 0.5).flatten(1)), 1)

    def posterior(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """loc and scale of q(z | HR, LR)."""
        residual = F.pixel_unshuffle(hr - self.upsample(lr), self.config.scale)
        return split_loc_scale(self.posterior_net(torch.cat([residual, lr - 0.5], 1)), 1)

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return bicubic_upscale(lr, self.config.scale)

    @property
    def receptive_radius(self) -> int | None:
        """LR pixels of context a sample's pixel depends on through the model, rounded up (``models.contract``):
        the LR encoder and prior conv, the latent's conv, the decoder's convs, its 2x stages and the likelihood
        head. None for the linear prior, whose every latent sees the whole image."""
        if self.config.prior != "spatial":
            return None
        return 4 * self.config.blocks + 6 + int(math.log2(self.config.scale))

    @property
    def latent_grids(self) -> dict[str, tuple[int, int]] | None:
        """``z`` on the LR grid (``models.contract``); None for the linear prior's vector latent."""
        return {"z": (self.config.latent_channels, 1)} if self.config.prior == "spatial" else None

    @property
    def discrete_likelihood(self) -> bool:
        return self.likelihood.discrete

    def decode(self, z: torch.Tensor, lr: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's location of p(HR | z, LR) and its last hidden features on the HR grid (for the head)."""
        latent = self.latent_in(z)
        if self.config.prior == "linear":
            latent = latent.view(len(z), self.config.channels, *lr.shape[-2:])
        hidden = self.decoder[:-1](torch.cat([latent, features], 1) if self.config.decoder_sees_lr else latent)
        out = full_precision(self.decoder[-1], hidden)  # fp32 under autocast: the likelihood's location
        return (self.upsample(lr) + out if self.config.decoder_sees_lr else out + 0.5), hidden

    def model(self, lr: torch.Tensor, hr: torch.Tensor | None = None, beta: float = 1.0, temperature: float = 1.0):
        self._check(lr)
        register("cvae", self)
        with pyro.plate("images", lr.shape[0]):
            features = self.lr_encoder(lr - 0.5)
            loc, scale = self.prior(lr, features)
            with kl_weight(beta):
                # p(z | LR)
                z = pyro.sample("z", tempered_prior(loc, scale, temperature).to_event(self.latent_event_dim))
            likelihood = self.likelihood(*self.decode(z, lr, features))
            pyro.deterministic("sr", likelihood.mean, event_dim=3)
            # p(HR | z, LR)
            return pyro.sample("hr", likelihood, obs=hr)

    def guide(self, lr: torch.Tensor, hr: torch.Tensor, beta: float = 1.0, temperature: float = 1.0):
        self._check(lr)
        register("cvae", self)
        with pyro.plate("images", lr.shape[0]):
            loc, scale = self.posterior(lr, hr)
            with kl_weight(beta):
                # q(z | HR, LR)
                return pyro.sample("z", dist.Normal(loc, scale).to_event(self.latent_event_dim))
