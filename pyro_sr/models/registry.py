"""The kinds of model a checkpoint can hold: a name, its configuration dataclass and how to build it.

A new kind of super-resolver registers here and implements a protocol of ``models.contract``; nothing else
dispatches on the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.models.cvae import ConditionalVAE, CVAEConfig
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig


@dataclass(frozen=True)
class ModelKind:
    """``build(config_class(**stored_config))`` rebuilds a model; ``legacy_names`` are older checkpoints' names."""

    name: str
    config_class: type
    build: Callable[[Any], nn.Module]
    legacy_names: tuple[str, ...] = ()


MODEL_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> None:
    MODEL_KINDS[kind.name] = kind


register(ModelKind("cnn", CNNConfig, build_cnn))
register(ModelKind("vae", CVAEConfig, ConditionalVAE, legacy_names=("cvae",)))
register(ModelKind("hvae", HVAEConfig, HierarchicalVAE))


def model_kind(name: str) -> ModelKind:
    """The registered kind of that name (or legacy name); a clear error for anything else."""
    for kind in MODEL_KINDS.values():
        if name == kind.name or name in kind.legacy_names:
            return kind
    raise ValueError(f"unknown model kind {name!r}; expected one of {tuple(MODEL_KINDS)}")


def build_model(kind: str, config: dict) -> nn.Module:
    """The model of a checkpoint's ``kind`` from its stored configuration."""
    entry = model_kind(kind)
    return entry.build(entry.config_class(**config))


def kind_of(model: nn.Module) -> str:
    """The registered name of a model, from its configuration's class."""
    for kind in MODEL_KINDS.values():
        if isinstance(model.config, kind.config_class):
            return kind.name
    raise ValueError(f"{type(model).__name__} is not a registered model kind")
