"""The realism judge: a small CIFAR-10 classifier that ships with the package, so that super-resolutions can be
scored offline, by how often it names their true class and by distances between its penultimate features
(classifier-KID/FID), with no Inception weights to download. It has seen CIFAR-10's ten classes at 32x32 and
nothing else: it is no judge of other data (a photo folder), and its KID/FID are not Inception's.

The network is a plain VGG-like stack in the manner of the fast CIFAR-10 training recipes: a stem convolution,
then stages of (convolution, 2x max-pool, batch norm, GELU, convolution, batch norm, GELU), a global max-pool and
a linear head without bias. It normalises its input itself, so it takes RGB in [0, 1] like every other model here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per channel over the training images, the usual constants
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
JUDGE_IMAGE_SIZE = (32, 32)  # what it was trained on: the only size it judges


@dataclass(frozen=True)
class JudgeConfig:
    """The classifier's widths: the stem's and then each stage's (each stage halves the resolution)."""

    widths: tuple[int, ...] = (32, 128, 128)
    num_classes: int = len(CIFAR10_CLASSES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1 or self.num_classes < 2:
            raise ValueError(f"the judge needs positive widths and >= 2 classes, got {self.widths}, {self.num_classes}")

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @property
    def feature_dim(self) -> int:
        """Length of the penultimate feature vector that classifier-KID/FID compare."""
        return self.widths[-1]


def _conv_bn(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.GELU()]


class _Stage(nn.Module):
    """Convolution, 2x max-pool, BN, GELU, then convolution, BN, GELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.rest = nn.Sequential(nn.BatchNorm2d(out_channels), nn.GELU(), *_conv_bn(out_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.pool(self.conv(x)))


class CIFARJudge(nn.Module):
    """CIFAR-10 classifier of RGB images in [0, 1], (N, 3, 32, 32); see the module docstring."""

    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        self.config = config
        widths = config.widths
        self.stem = nn.Sequential(*_conv_bn(3, widths[0]))
        self.stages = nn.Sequential(*(_Stage(a, b) for a, b in zip((widths[0], *widths[:-1]), widths, strict=True)))
        self.head = nn.Linear(widths[-1], config.num_classes, bias=False)
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features, (N, ``config.feature_dim``): the global max-pool of the last stage."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"the judge takes RGB batches (N, 3, H, W), got {tuple(images.shape)}")
        x = self.stages(self.stem((images - self.mean) / self.std))
        return x.amax(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, (N, num_classes)."""
        return self.head(self.features(images))

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted classes, (N,): the logits of each image and of its mirror image, summed (the test-time
        flip every score of the judge uses, its stored accuracy included)."""
        return (self(images).float() + self(images.flip(3)).float()).argmax(1)
