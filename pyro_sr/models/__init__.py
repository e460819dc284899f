"""Models: the CNN baselines (plain nn.Modules), the VAEs (Pyro model/guide pairs) and shared blocks."""

from torch import nn

from pyro_sr.models.cnn import CNN_ARCHS, CNNConfig, ResidualSR, SeedCNN, bicubic_upscale, build_cnn, nearest_upscale
from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

MODEL_KINDS = ("cnn", "cvae", "hvae")


def build_model(kind: str, config: dict) -> nn.Module:
    """The model of a checkpoint's ``kind`` from its stored configuration."""
    if kind == "cnn":
        return build_cnn(CNNConfig(**config))
    if kind == "cvae":
        return ConditionalVAE(CVAEConfig(**config))
    if kind == "hvae":
        return HierarchicalVAE(HVAEConfig(**config))
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")


__all__ = [
    "CNN_ARCHS",
    "CVAE_PRESETS",
    "CNNConfig",
    "CVAEConfig",
    "ConditionalVAE",
    "HVAEConfig",
    "HierarchicalVAE",
    "MODEL_KINDS",
    "ResidualSR",
    "SeedCNN",
    "bicubic_upscale",
    "build_cnn",
    "build_model",
    "nearest_upscale",
]
