"""Deterministic CNN super-resolvers: the paper's SRCNN-style ``seed`` network and our residual ``resnet``."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from pyro_sr.data.degradation import check_scale
from pyro_sr.models.blocks import BicubicUpsample, ResidualBlock, SubPixelUpsampler, conv3x3

CNN_ARCHS = ("seed", "resnet")


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of a CNN super-resolver; stored in every checkpoint so the model can be rebuilt."""

    arch: str = "resnet"
    scale: int = 4
    channels: int = 64
    blocks: int = 10

    def __post_init__(self) -> None:
        if self.arch not in CNN_ARCHS:
            raise ValueError(f"unknown CNN architecture {self.arch!r}; choose from {CNN_ARCHS}")
        check_scale(self.scale)
        if self.channels < 1 or self.blocks < 0:
            raise ValueError(
                f"a CNN needs at least 1 channel and 0 or more blocks, got {self.channels} and {self.blocks}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class CNNSuperResolver(nn.Module):
    """A deterministic super-resolver (``models.contract.DeterministicSR``): ``predict`` is the forward pass."""

    config: CNNConfig

    def predict(self, lr: torch.Tensor) -> torch.Tensor:
        return self(lr)


class SeedCNN(CNNSuperResolver):
    """The paper's network: conv3x3 3->64, then x2 bicubic stages, then 5x5 convs 64->128->64->3, ReLU after each.

    For 4x this is exactly: conv3x3 3->64, ReLU, up2, ReLU, conv5x5 64->64, ReLU, up2, ReLU,
    conv5x5 64->128, ReLU, conv5x5 128->64, ReLU, conv5x5 64->3, ReLU. Other scales change the number of
    (up2, ReLU, conv5x5 64->64, ReLU) stages.
    """

    def __init__(self, config: CNNConfig = CNNConfig(arch="seed")):
        super().__init__()
        self.config = config
        stages = int(math.log2(config.scale))
        layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
        for stage in range(stages):
            layers += [BicubicUpsample(2), nn.ReLU()]
            if stage < stages - 1:
                layers += [nn.Conv2d(64, 64, 5, padding=2), nn.ReLU()]
        layers += [
            nn.Conv2d(64, 128, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(128, 64, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(64, 3, 5, padding=2),
            nn.ReLU(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr)

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context an output pixel depends on, rounded up (see ``models.contract``): the LR conv, a
        bicubic step and a 5x5 conv per 2x stage, three 5x5 convs on the HR grid."""
        return 1 + 4 * int(math.log2(self.config.scale)) + 6


class ResidualSR(CNNSuperResolver):
    """Our CNN: residual blocks at low resolution, sub-pixel upsampling, and a global bicubic skip.

    Almost all compute is spent on the LR grid (8x8 for CIFAR 4x), which is what makes it trainable on a CPU;
    the network predicts the residual over bicubic interpolation, and is fully convolutional.
    """

    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.head = conv3x3(3, c)
        self.body = nn.Sequential(*[ResidualBlock(c, config.blocks) for _ in range(config.blocks)], conv3x3(c, c))
        self.upsample = SubPixelUpsampler(c, config.scale)
        self.tail = conv3x3(c, 3)
        self.skip = BicubicUpsample(config.scale)

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context an output pixel depends on, rounded up (see ``models.contract``): head, two convs
        per residual block, the body's last conv, one conv per 2x stage and the tail (bicubic skip: 2)."""
        return 1 + 2 * self.config.blocks + 1 + int(math.log2(self.config.scale)) + 1

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr - 0.5)
        x = x + self.body(x)
        return self.skip(lr) + self.tail(self.upsample(x))


def load_deepened(model: ResidualSR, weights: dict[str, torch.Tensor]) -> None:
    """Load a trained ``ResidualSR`` with fewer residual blocks into ``model`` so that both compute the same
    function: the trained blocks keep their order, spread evenly through the deeper body, and each new block
    starts as the identity (its last conv zeroed, its first conv keeping ``model``'s initialisation so that it
    learns once the last conv moves). A warm restart can then add capacity without discarding the compute that
    trained the shallower network."""
    trained = sum(1 for key in weights if re.fullmatch(r"body\.\d+\.conv1\.weight", key))
    blocks = model.config.blocks
    if trained > blocks:
        raise ValueError(f"cannot deepen a network of {trained} residual blocks into one of {blocks}")
    slots = [round(i * blocks / trained) for i in range(trained)]
    moved = {**{i: slot for i, slot in enumerate(slots)}, trained: blocks}  # body[trained] is the closing conv

    def new_key(key: str) -> str:
        match = re.fullmatch(r"body\.(\d+)\.(.+)", key)
        return f"body.{moved[int(match[1])]}.{match[2]}" if match else key

    state = model.state_dict()
    unknown = sorted({new_key(key) for key in weights} - state.keys())
    if unknown:
        raise ValueError(f"weights do not fit a deeper {model.config.arch} network (unexpected {unknown[0]})")
    state.update({new_key(key): value for key, value in weights.items()})
    for block in set(range(blocks)) - set(slots):
        state[f"body.{block}.conv2.weight"] = torch.zeros_like(state[f"body.{block}.conv2.weight"])
        state[f"body.{block}.conv2.bias"] = torch.zeros_like(state[f"body.{block}.conv2.bias"])
    model.load_state_dict(state)


def build_cnn(config: CNNConfig) -> CNNSuperResolver:
    """The CNN described by ``config``."""
    return SeedCNN(config) if config.arch == "seed" else ResidualSR(config)
