"""Bundled weights, named by short names, that carry their metadata like torchvision's: architecture,
degradation, the training command and the metrics they scored."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyro_sr.data.degradation import Degradation
from pyro_sr.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pyro_sr.training.cnn import degradation_of, load_cnn

BUNDLED_MODELS = {"cnn": "cnn.pt", "seed-cnn": "seed-cnn.pt"}
DEFAULT_MODEL = "cnn"


@dataclass
class LoadedModel:
    """A model ready for inference, with what it was trained for."""

    name: str
    model: nn.Module
    degradation: Degradation
    meta: dict[str, Any]

    @property
    def scale(self) -> int:
        return self.degradation.scale


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("pyro_sr.weights") / BUNDLED_MODELS[name]))


def load_model(spec: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a bundled model by name, or a checkpoint file / run folder by path."""
    if str(spec) in BUNDLED_MODELS:
        path, name = bundled_path(str(spec)), str(spec)
        if not path.is_file():
            raise CheckpointError(f"bundled model {name!r} is not installed ({path} missing)")
    else:
        path = Path(spec)
        if not path.exists():
            choices = ", ".join(BUNDLED_MODELS)
            raise CheckpointError(f"no checkpoint at {path} and no bundled model of that name (bundled: {choices})")
        name = path.parent.name if path.name == "checkpoint.pt" else path.stem if path.is_file() else path.name
    checkpoint = load_checkpoint(path)
    return LoadedModel(name, load_cnn(checkpoint, device), degradation_of(checkpoint), checkpoint.get("meta", {}))


def export_weights(checkpoint_path: str | Path, out_path: str | Path, metrics: dict[str, Any] | None = None) -> None:
    """Write inference-only weights (no optimizer or RNG state) with metadata and the measured metrics."""
    checkpoint = load_checkpoint(checkpoint_path)
    meta = dict(checkpoint.get("meta", {}))
    meta.update(
        epochs=checkpoint.get("epoch"),
        train_config=checkpoint.get("train_config"),
        history=checkpoint.get("history"),
        metrics=metrics or {},
    )
    payload = {"kind": checkpoint["kind"], "model_config": checkpoint["model_config"], "meta": meta}
    payload["model"] = checkpoint["model"]
    save_checkpoint(payload, out_path)
