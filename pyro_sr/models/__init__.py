"""Models: the CNN baselines (plain nn.Modules), the VAEs (Pyro model/guide pairs), their pixel likelihoods, the
contract every super-resolver declares and the registry of model kinds."""

from pyro_sr.models.blocks import bicubic_upscale, nearest_upscale
from pyro_sr.models.cnn import CNN_ARCHS, CNNConfig, ResidualSR, SeedCNN, build_cnn
from pyro_sr.models.contract import DeterministicSR, ProbabilisticSR, Upscaler, VariationalSR
from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.models.registry import MODEL_KINDS, ModelKind, build_model, kind_of, model_kind, register

__all__ = [
    "CNN_ARCHS",
    "CVAE_PRESETS",
    "CNNConfig",
    "CVAEConfig",
    "ConditionalVAE",
    "DeterministicSR",
    "HVAEConfig",
    "HierarchicalVAE",
    "MODEL_KINDS",
    "ModelKind",
    "ProbabilisticSR",
    "ResidualSR",
    "SeedCNN",
    "Upscaler",
    "VariationalSR",
    "bicubic_upscale",
    "build_cnn",
    "build_model",
    "kind_of",
    "model_kind",
    "nearest_upscale",
    "register",
]
