"""Building blocks shared by the CNNs and the VAEs."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

MIN_SCALE = 1e-4


def split_loc_scale(params: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A Normal's loc and positive scale from a network output holding both (halves along ``dim``), in fp32
    whatever the network computed in: log-probabilities and KLs are always taken in fp32."""
    loc, raw = params.float().chunk(2, dim=dim)
    return loc, F.softplus(raw) + MIN_SCALE


def tempered_prior(loc: torch.Tensor, scale: torch.Tensor, temperature: float):
    """The prior Normal(loc, scale) with its scale multiplied by ``temperature``; at temperature 0 a point mass at
    the mean (every latent at its prior mean: the sampler's most typical path), which Normal cannot express."""
    if temperature < 0:
        raise ValueError(f"the temperature must be >= 0, got {temperature}")
    return dist.Normal(loc, scale * temperature) if temperature > 0 else dist.Delta(loc)


def full_precision(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in fp32 even under bf16 autocast: for the layers whose output a likelihood reads (the mean of
    the pixel likelihood, a frozen base prediction), where bf16's 8-bit mantissa would be an error of ~0.2%."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


def frozen(module: nn.Module) -> nn.Module:
    """``module`` with its parameters turned into buffers of the same names: a fixed function whose weights are
    still in ``state_dict`` and follow ``.to()``, but are nobody's parameters, so optimisers, ``pyro.module`` and
    gradient clipping never see them."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None:
                del sub._parameters[name]
                sub.register_buffer(name, param.detach().requires_grad_(False))
    return module


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling (no antialiasing, ``align_corners=False``): the baseline, and the skip of the networks."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def nearest_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Nearest-neighbour upsampling: how an LR image is shown beside its super-resolutions."""
    return F.interpolate(lr, scale_factor=scale, mode="nearest")


class BicubicUpsample(nn.Module):
    """``bicubic_upscale`` as a layer (no parameters)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_upscale(x, self.scale)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip; the last conv starts small (scaled by 1/sqrt(depth)), as in
    VDVAE/EDSR, so a deep stack begins close to the identity and trains stably without normalisation."""

    def __init__(self, channels: int, depth: int = 1):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        with torch.no_grad():
            self.conv2.weight.mul_(1.0 / math.sqrt(max(depth, 1)))
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class SubPixelUpsampler(nn.Sequential):
    """log2(scale) stages of conv -> PixelShuffle(2) -> ReLU (ESPCN-style sub-pixel upsampling)."""

    def __init__(self, channels: int, scale: int):
        stages = int(math.log2(scale))
        if 2**stages != scale:
            raise ValueError(f"scale must be a power of two, got {scale}")
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [conv3x3(channels, 4 * channels), nn.PixelShuffle(2), nn.ReLU()]
        super().__init__(*layers)


class LREncoder(nn.Sequential):
    """Features of the LR image on its own grid; the VAEs share them between prior, guide and decoder."""

    def __init__(self, channels: int, blocks: int):
        super().__init__(conv3x3(3, channels), *[ResidualBlock(channels, blocks) for _ in range(blocks)])
