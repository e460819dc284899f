"""Hierarchical (ladder) VAE super-resolver conditioned on the LR image, as a Pyro model/guide pair.

    p(HR | LR) = ∫ p(HR | z_1..z_L, LR) ∏_l p(z_l | z_<l, LR) dz,   fitted against ∏_l q(z_l | z_<l, HR, LR).

A top-down path starts from features of the LR image on its own grid and doubles its resolution log2(scale) times
(8x8 -> 16x16 -> 32x32 for CIFAR-10 at 4x). At each resolution it meets ``groups_per_scale[r]`` groups of spatial
latents: a group's prior comes from the top-down state, its posterior from that state together with bottom-up
features of the HR image at the same resolution (ladder / bidirectional inference, as in NVAE and VDVAE), written
relative to the prior (posterior loc = prior loc + shift, scale = prior scale x factor). The sample is added back
into the state, so later groups and the output see it. The output is a residual over a deterministic base
prediction, the location of a pixel likelihood (``HVAEConfig.likelihood``: a head of ``models.likelihoods`` that
reads the final state too). The base is bicubic upsampling of the LR image,
or a frozen, already trained CNN (``HVAEConfig.base``): the latents then only have to describe what the CNN's
MMSE prediction leaves open (predict-and-refine), so the mean of the samples starts from the CNN's quality.
Everything is convolutional, so any image whose side is divisible by the scale works, and 2x / 4x / 8x differ
only in the number of resolutions.

Model and guide share the sites ``z1`` ... ``zL`` (coarse to fine) and ``hr`` under the plate ``images``. Each
latent site sits in its own ``kl_weight`` (``poutine.scale``) in model and guide, so each group's KL can be
weighted or annealed separately (``beta`` may be one factor or one per group). The guide runs the same top-down
path as the model (it needs the prior of each group); in a training step the model, replayed against the
guide's latents, reuses that walk instead of computing the path again (``_top_down``), while both stay
separate, self-contained Pyro programs that run on their own. Because model and guide walk the groups in
the same order, no latent's parents in the model are its descendants in the guide, which is the condition under
which ``TraceMeanField_ELBO``'s analytic per-group KL (given the sampled parents) is a valid ELBO estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_sr.data.degradation import check_scale
from pyro_sr.models.blocks import (
    LREncoder,
    ResidualBlock,
    bicubic_upscale,
    conv3x3,
    frozen,
    full_precision,
    split_loc_scale,
    tempered_prior,
)
from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.models.kl_weight import kl_weight
from pyro_sr.models.likelihoods import DEFAULT_MIXTURES, PerChannelNormal, build_likelihood, check_likelihood
from pyro_sr.models.registration import register

UPSAMPLE_MODES = ("shuffle", "bilinear")


@dataclass(frozen=True)
class HVAEConfig:
    """Architecture of a hierarchical VAE; stored in checkpoints so the model can be rebuilt."""

    scale: int = 4
    channels: int = 64  # width on the LR grid; halved at each 2x step, but not below min_channels
    min_channels: int = 16
    lr_blocks: int = 6  # residual blocks of the LR encoder
    latent_channels: int = 8  # per group
    groups_per_scale: tuple[int, ...] | None = None  # LR grid first, HR grid last; None: 2 on the LR grid, then 1
    blocks_per_group: int = 1  # residual blocks of the top-down state after each group
    output_blocks: int = 0  # residual blocks on the HR grid before the output heads, which also see the base
    base: dict | None = None  # CNNConfig (as a dict) of the frozen CNN the output refines; None: bicubic
    likelihood: str = "normal"  # normal | normal-pixel | dmol: see pyro_sr.models.likelihoods
    mixtures: int = DEFAULT_MIXTURES  # dmol: logistic components per pixel
    upsample: str = "shuffle"  # how the top-down state doubles its grid: see Upsample2x

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_likelihood(self.likelihood, self.mixtures)
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample {self.upsample!r}; choose one of {', '.join(UPSAMPLE_MODES)}")
        resolutions = int(math.log2(self.scale)) + 1
        groups = (2,) + (1,) * (resolutions - 1) if self.groups_per_scale is None else tuple(self.groups_per_scale)
        object.__setattr__(self, "groups_per_scale", groups)
        if len(self.groups_per_scale) != resolutions:
            raise ValueError(
                f"groups_per_scale needs one entry per resolution ({resolutions} for x{self.scale}), "
                f"got {list(self.groups_per_scale)}"
            )
        if min(self.groups_per_scale) < 0 or sum(self.groups_per_scale) < 1:
            raise ValueError(
                f"groups_per_scale must be non-negative with at least one group, got {list(self.groups_per_scale)}"
            )
        if min(self.channels, self.min_channels, self.latent_channels, self.lr_blocks, self.blocks_per_group) < 1:
            raise ValueError("channels, latent channels and block counts must be >= 1")
        if self.output_blocks < 0:
            raise ValueError(f"output_blocks must be >= 0, got {self.output_blocks}")
        if self.base is not None and CNNConfig(**self.base).scale != self.scale:
            raise ValueError(f"the base CNN upscales x{self.base['scale']}, the VAE x{self.scale}")

    @property
    def num_groups(self) -> int:
        return sum(self.groups_per_scale)

    def width(self, resolution: int) -> int:
        """Channels of the top-down state at resolution index ``resolution`` (0 = LR grid)."""
        return max(self.channels >> resolution, self.min_channels)

    def to_dict(self) -> dict:
        return asdict(self)


class LatentGroup(nn.Module):
    """One group of spatial latents: prior and posterior heads, the injection of the sample into the state,
    and the residual blocks that follow."""

    def __init__(self, channels: int, latent_channels: int, depth: int, blocks: int):
        super().__init__()
        self.prior_head = conv3x3(channels, 2 * latent_channels)
        self.posterior_head = nn.Sequential(
            conv3x3(2 * channels, channels), nn.ReLU(), conv3x3(channels, 2 * latent_channels)
        )
        self.inject = conv3x3(latent_channels, channels)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, depth) for _ in range(blocks)])
        for head in (self.prior_head, self.posterior_head[-1]):  # start at prior N(0, ~1) and posterior = prior
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.inject.weight.mul_(1.0 / math.sqrt(depth))

    def prior(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale = split_loc_scale(self.prior_head(state))
        return loc, scale + 0.3  # softplus(0) + 0.3 ≈ 1 at initialisation

    def posterior(
        self, state: torch.Tensor, features: torch.Tensor, prior_loc: torch.Tensor, prior_scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.posterior_head(torch.cat([state, features], 1)).float().chunk(2, dim=1)
        return prior_loc + shift, prior_scale * torch.exp(raw.clamp(-8.0, 4.0))

    def update(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(state + self.inject(z))


class OutputStage(nn.Module):
    """Residual blocks on the HR grid between the last latent group and the output heads, which read the base
    prediction too. Without them the heads see a state that the last 2x step made from a coarser grid by one conv
    and a pixel shuffle, so a pixel's likelihood (its scale above all) cannot follow the HR edges of the
    prediction it refines. The base enters through a conv that starts at zero, so a trained VAE grown by this
    stage (:func:`load_grown`) starts from the same function."""

    def __init__(self, channels: int, blocks: int, depth: int):
        super().__init__()
        self.read_base = conv3x3(3, channels)
        nn.init.zeros_(self.read_base.weight)
        nn.init.zeros_(self.read_base.bias)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, depth) for _ in range(blocks)])

    def forward(self, state: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return self.blocks(state + self.read_base(base - 0.5))


class Upsample2x(nn.Sequential):
    """Doubles the resolution of the top-down state and sets its new width. ``shuffle``: conv -> PixelShuffle(2),
    so the four pixels of each 2x2 block come from four separate kernels, and a latent on the coarse grid moves
    them on a 2-pixel grid. ``bilinear``: bilinear resize -> conv on the fine grid (resize-convolution), which
    has no such grid."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "shuffle"):
        if mode == "shuffle":
            super().__init__(conv3x3(in_channels, 4 * out_channels), nn.PixelShuffle(2))
        else:
            super().__init__(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), conv3x3(in_channels, out_channels)
            )


class Downsample2x(nn.Sequential):
    """Strided conv + residual block: halves the resolution of the bottom-up HR features."""

    def __init__(self, in_channels: int, out_channels: int, depth: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.ReLU(), ResidualBlock(out_channels, depth)
        )


@dataclass
class _Walk:
    """One top-down walk of the guide: for each group the state it met, its prior (loc, scale), the latent drawn
    and the state after it; ``end`` is the final state. Kept with what it depends on, to be reused only when
    all of that is unchanged."""

    lr: torch.Tensor
    lr_version: int
    grad: bool
    weights_version: tuple[int, ...]
    start: torch.Tensor
    steps: list[tuple[torch.Tensor, ...]] = field(default_factory=list)
    end: torch.Tensor | None = None


class HierarchicalVAE(nn.Module):
    """Ladder VAE over groups of spatial latents, LR-conditioned; see the module docstring."""

    def __init__(self, config: HVAEConfig = HVAEConfig()):
        super().__init__()
        self.config = config
        resolutions = len(config.groups_per_scale)
        widths = [config.width(r) for r in range(resolutions)]
        depth = config.num_groups * config.blocks_per_group + config.lr_blocks + config.output_blocks
        self.lr_encoder = LREncoder(widths[0], config.lr_blocks)
        self.groups = nn.ModuleList(
            nn.ModuleList(
                LatentGroup(widths[r], config.latent_channels, depth, config.blocks_per_group)
                for _ in range(config.groups_per_scale[r])
            )
            for r in range(resolutions)
        )
        self.upsample = nn.ModuleList(
            Upsample2x(widths[r], widths[r + 1], config.upsample) for r in range(resolutions - 1)
        )
        self.output_stage = None if config.output_blocks == 0 else OutputStage(widths[-1], config.output_blocks, depth)
        self.output = conv3x3(widths[-1], 3)
        with torch.no_grad():
            self.output.weight.mul_(0.1)
        # Bottom-up path of the guide: HR residual over the base prediction and that prediction, HR grid down.
        self.hr_encoder = nn.Sequential(conv3x3(6, widths[-1]), nn.ReLU(), ResidualBlock(widths[-1], depth))
        self.downsample = nn.ModuleList(Downsample2x(widths[r + 1], widths[r], depth) for r in range(resolutions - 1))
        self.likelihood = build_likelihood(config.likelihood, widths[-1], config.mixtures)
        PerChannelNormal.accept_legacy_key(self)
        self.base_cnn = None if config.base is None else frozen(build_cnn(CNNConfig(**config.base)))
        self._base_cache: tuple[torch.Tensor, int, torch.Tensor] | None = None  # (LR batch, its version, output)
        self._walk: _Walk | None = None  # the guide's last top-down walk, for the model replaying it
        self._trainable: list[nn.Parameter] | None = None  # self.parameters(), whose module walk costs 1% of a step

    def load_state_dict(self, *args, **kwargs):
        self._base_cache = self._walk = self._trainable = None  # new weights: the kept outputs are stale
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        # .to() / .double(): the kept outputs are on the old device or dtype (and the parameters may be new objects)
        self._base_cache = self._walk = self._trainable = None
        return super()._apply(fn, *args, **kwargs)

    @classmethod
    def refining(cls, cnn: nn.Module, config: HVAEConfig = HVAEConfig()) -> HierarchicalVAE:
        """A new VAE whose output refines the prediction of the trained ``cnn`` (kept frozen)."""
        vae = cls(replace(config, base=cnn.config.to_dict()))
        vae.base_cnn.load_state_dict(cnn.state_dict())
        return vae

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context a sample's pixel depends on through the model (prior path), rounded up: the base,
        or the LR encoder, each group's prior head, injection and blocks, each 2x step, the output stage (whose
        first conv also reads the base) and the output heads, every layer counted as a whole LR pixel whatever its
        grid (see ``models.contract``; a bilinear 2x step is two layers: its resize reads a neighbour too)."""
        c = self.config
        steps = (len(c.groups_per_scale) - 1) * (2 if c.upsample == "bilinear" else 1)
        path = 1 + 2 * c.lr_blocks + c.num_groups * (2 + 2 * c.blocks_per_group) + steps
        base = 2 if self.base_cnn is None else self.base_cnn.receptive_radius
        if c.output_blocks:
            path = max(path, base) + 1 + 2 * c.output_blocks
        return max(path + 2, base)

    @property
    def latent_grids(self) -> dict[str, tuple[int, int]]:
        """Each latent site's channels and its grid's factor over the LR grid (``models.contract``)."""
        factors = [2**r for r, n in enumerate(self.config.groups_per_scale) for _ in range(n)]
        return {name: (self.config.latent_channels, f) for name, f in zip(self.latent_sites, factors, strict=True)}

    @property
    def discrete_likelihood(self) -> bool:
        return self.likelihood.discrete

    @property
    def latent_sites(self) -> tuple[str, ...]:
        """``z1`` ... ``zL``, coarse to fine."""
        return tuple(f"z{i + 1}" for i in range(self.config.num_groups))

    def _check(self, lr: torch.Tensor, hr: torch.Tensor | None) -> None:
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected an LR batch of shape (N, 3, h, w), got {tuple(lr.shape)}")
        expected = (len(lr), 3, *(self.config.scale * s for s in lr.shape[-2:]))
        if hr is not None and tuple(hr.shape) != expected:
            raise ValueError(f"expected an HR batch of shape {expected} (x{self.config.scale}), got {tuple(hr.shape)}")

    def _per_group(self, value: float | Sequence[float], what: str) -> list[float]:
        if isinstance(value, int | float):
            return [float(value)] * self.config.num_groups
        values = [float(v) for v in value]
        if len(values) != self.config.num_groups:
            raise ValueError(f"expected one {what} per latent group ({self.config.num_groups}), got {len(values)}")
        return values

    def base(self, lr: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic prediction that the latents refine: bicubic, or the frozen base CNN's output (in fp32,
        also under autocast); ``given``: that prediction, computed by the caller (see :meth:`precomputed`).

        Otherwise the CNN's output for the last LR batch is kept: ``paired_traces`` and the diagnostics run the
        guide and then the model on the same batch, and the CNN forward is a large share of that."""
        if given is not None:
            return given
        if self.base_cnn is None:
            return bicubic_upscale(lr, self.config.scale)
        cached = self._base_cache
        if cached is not None and cached[0] is lr and cached[1] == lr._version:
            return cached[2]
        with torch.no_grad():
            prediction = full_precision(self.base_cnn, lr)
        self._base_cache = (lr, lr._version, prediction)
        return prediction

    def precomputed(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """What model and guide take besides the LR image that depends on it alone, through no trainable weight:
        the frozen base CNN's prediction (``base``). The training loop computes it once per image, not per step."""
        return {} if self.base_cnn is None else {"base": self.base(lr)}

    def bottom_up(self, lr: torch.Tensor, hr: torch.Tensor, base: torch.Tensor | None = None) -> list[torch.Tensor]:
        """HR features at each resolution of the top-down path, LR grid first."""
        upsampled = self.base(lr, base)
        features = [self.hr_encoder(torch.cat([hr - upsampled, upsampled - 0.5], 1))]
        for down in reversed(self.downsample):
            features.append(down(features[-1]))
        return features[::-1]

    def _weights_version(self) -> tuple[int, ...]:
        if self._trainable is None:
            self._trainable = list(self.parameters())
        return tuple(p._version for p in self._trainable)

    def _reusable_walk(self, lr: torch.Tensor) -> _Walk | None:
        """The guide's walk of this very LR batch with these very weights (taken: it serves one model run)."""
        walk, self._walk = self._walk, None
        if walk is None or walk.lr is not lr or walk.lr_version != lr._version:
            return None
        if walk.grad != torch.is_grad_enabled() or walk.weights_version != self._weights_version():
            return None
        return walk

    def _top_down(self, lr, hr_features, betas, temperatures):
        """Walk the groups coarse to fine, sampling each ``z_l`` from the posterior (guide: ``hr_features``
        given) or the prior (model); returns the final state on the HR grid.

        The guide keeps its walk. When the model then runs on the same LR batch and its latents are the guide's
        own tensors (an SVI step or ``paired_traces``: the model replayed against the guide's trace), each group's
        prior and the state after it are the same functions of the same inputs, so the model takes them from
        the walk instead of computing the path a second time; autograd sees the same graph either way. On the
        first latent that differs (a prior sample), the model computes on from there."""
        guide = hr_features is not None
        walk = None if guide else self._reusable_walk(lr)
        state = walk.start if walk is not None else self.lr_encoder(lr - 0.5)
        record = _Walk(lr, lr._version, torch.is_grad_enabled(), self._weights_version(), state) if guide else None
        index = 0
        for r, groups in enumerate(self.groups):
            if r > 0 and walk is None:
                state = self.upsample[r - 1](state)
            for group in groups:
                if walk is not None:
                    state, loc, scale, guide_z, state_after = walk.steps[index]
                else:
                    loc, scale = group.prior(state)
                if not guide:
                    fn = tempered_prior(loc, scale, temperatures[index])
                else:
                    fn = dist.Normal(*group.posterior(state, hr_features[r], loc, scale))
                with kl_weight(betas[index]):
                    z = pyro.sample(f"z{index + 1}", fn.to_event(3))
                state_before = state
                if walk is not None and z is guide_z:
                    state = state_after
                else:
                    walk = None
                    state = group.update(state, z)
                if record is not None:
                    record.steps.append((state_before, loc, scale, z, state))
                index += 1
        if record is not None:
            record.end = state
            self._walk = record
        return walk.end if walk is not None else state

    def model(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor | None = None,
        beta: float | Sequence[float] = 1.0,
        temperature: float | Sequence[float] = 1.0,
        base: torch.Tensor | None = None,
    ):
        self._check(lr, hr)
        register("hvae", self)  # the trainable parameters: the frozen base CNN's weights are buffers
        betas = self._per_group(beta, "KL weight")
        temperatures = self._per_group(temperature, "temperature")  # of each group's prior (sampling)
        with pyro.plate("images", lr.shape[0]):
            state = self._top_down(lr, None, betas, temperatures)
            prediction = self.base(lr, base)
            if self.output_stage is not None:
                state = self.output_stage(state, prediction)
            loc = prediction + full_precision(self.output, state)
            likelihood = self.likelihood(loc, state)
            pyro.deterministic("sr", likelihood.mean, event_dim=3)
            # p(HR | z_1..z_L, LR)
            return pyro.sample("hr", likelihood, obs=hr)

    def guide(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor,
        beta: float | Sequence[float] = 1.0,
        temperature: float | Sequence[float] = 1.0,
        base: torch.Tensor | None = None,
    ):
        self._check(lr, hr)
        register("hvae", self)  # the trainable parameters: the frozen base CNN's weights are buffers
        betas = self._per_group(beta, "KL weight")
        with pyro.plate("images", lr.shape[0]):
            self._top_down(lr, self.bottom_up(lr, hr, base), betas, None)


def load_grown(vae: HierarchicalVAE, weights: dict[str, torch.Tensor]) -> None:
    """Load a trained HVAE of the same architecture but fewer ``output_blocks``, fewer ``channels``, fewer latent
    groups at some resolutions (``groups_per_scale``), or with pixel-shuffle 2x steps where ``vae`` resizes
    (``upsample``), into ``vae``, so that a warm restart adds capacity or changes the 2x steps without discarding
    the compute that trained the smaller VAE. New output blocks keep the function the same: each starts as the
    identity (its last conv zeroed, its first keeping ``vae``'s initialisation so that it learns once the last conv
    moves) and a new stage's base reader keeps its zero initialisation. New latent groups keep it too: each comes
    after the trained groups of its resolution, its prior and posterior heads keep their zero initialisation
    (posterior = prior, KL 0), and its injection and the last conv of its blocks are zeroed, so its latent changes
    nothing until the injection moves. New channels keep it as well (see :func:`_widened`). A shuffle step becomes
    a resize step only approximately: its conv takes the mean of the four sub-pixel kernels, which is the shuffle
    step with the four pixels of each block tied, read through a bilinear resize instead."""
    weights = _widened(vae, _resized_upsampling(vae, weights))
    state = vae.state_dict()
    unknown = sorted(weights.keys() - state.keys())
    if unknown:
        raise ValueError(f"weights do not fit this HVAE's architecture (unexpected {unknown[0]})")
    for key, value in weights.items():
        if value.shape != state[key].shape:
            raise ValueError(f"weights do not fit this HVAE's architecture ({key}: {tuple(value.shape)})")
    missing = state.keys() - weights.keys()
    new_parts = ("output_stage.", *_new_groups(vae, weights))
    if any(not key.startswith(new_parts) for key in missing):
        raise ValueError(f"weights do not fit this HVAE's architecture (missing {sorted(missing)[0]})")
    for key in missing:
        if ".conv2." in key or ".inject." in key:  # a new group's heads start at zero (LatentGroup)
            state[key] = torch.zeros_like(state[key])
    state.update(weights)
    vae.load_state_dict(state)


def _new_groups(vae: HierarchicalVAE, weights: dict[str, torch.Tensor]) -> list[str]:
    """The key prefixes (``groups.<r>.<i>.``) of ``vae``'s latent groups that ``weights`` has none of: at each
    resolution, those after the groups ``weights`` holds there."""
    prefixes = []
    for r, groups in enumerate(vae.groups):
        trained = sum(any(key.startswith(f"groups.{r}.{i}.") for key in weights) for i in range(len(groups)))
        prefixes += [f"groups.{r}.{i}." for i in range(trained, len(groups))]
    return prefixes


def _resized_upsampling(vae: HierarchicalVAE, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with each pixel-shuffle conv (``upsample.<r>.0``) made the conv of ``vae``'s resize step
    (``upsample.<r>.1``): the mean of its four sub-pixel kernels (PixelShuffle reads channel 4c + k as output
    channel c at sub-pixel k)."""
    if vae.config.upsample == "shuffle":
        return weights
    converted = dict(weights)
    for r in range(len(vae.upsample)):
        for part in ("weight", "bias"):
            value = converted.pop(f"upsample.{r}.0.{part}", None)
            if value is not None:
                converted[f"upsample.{r}.1.{part}"] = value.unflatten(0, (-1, 4)).mean(1)
    return converted


# convs whose input is the top-down state and the bottom-up features side by side (LatentGroup.posterior)
_CONCATENATED_INPUTS = ".posterior_head.0.weight"


def _widened(vae: HierarchicalVAE, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` of a narrower HVAE placed in ``vae``'s wider tensors, so that every trained channel computes
    what it did: a trained channel keeps its weights and reads nothing from the new channels (those weights are
    zero), while the new channels keep ``vae``'s random initialisation, reading every channel. Nothing trained
    reads a new channel at first, but the gradient of the zeroed weights is not zero, so the new channels join in
    as they train (zeroing the other side too would leave them at a saddle, with no gradient at all). A channel
    keeps its index: the trained ones are the first of each width (a pixel-shuffle conv's too, whose channel c
    is its outputs 4c..4c+3). Only the tensors of the same HVAE at the width of ``weights`` are widened; any
    other shape is left for ``load_grown`` to refuse."""
    trained_width = weights.get("lr_encoder.0.weight", torch.empty(0)).shape[0]
    if trained_width in (0, vae.config.width(0)):
        return weights
    with torch.device("meta"):  # shapes only
        narrow = HierarchicalVAE(replace(vae.config, channels=trained_width)).state_dict()
    state = vae.state_dict()
    widened = dict(weights)
    for key, value in weights.items():
        target = state.get(key)
        if (
            target is None
            or key not in narrow
            or value.shape != narrow[key].shape
            or target.shape == value.shape
            or any(t < v for t, v in zip(target.shape, value.shape, strict=True))
        ):
            continue  # unchanged by the width, or a shape that load_grown refuses
        wide = target.clone()
        rows = value.shape[0]
        if value.dim() == 1:
            wide[:rows] = value
        elif key.endswith(_CONCATENATED_INPUTS):  # [state, features]: each half widened on its own
            old, new = value.shape[1] // 2, target.shape[1] // 2
            wide[:rows] = 0
            wide[:rows, :old] = value[:, :old]
            wide[:rows, new : new + old] = value[:, old:]
        else:
            wide[:rows] = 0
            wide[:rows, : value.shape[1]] = value
        widened[key] = wide
    return widened
