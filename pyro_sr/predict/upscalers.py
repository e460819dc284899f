"""The function LR -> SR that prediction runs for a loaded model, chosen by what the model can do."""

from __future__ import annotations

import torch

from pyro_sr.models.contract import Upscaler
from pyro_sr.predict.consistency import project_to_lr
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, sample_super_resolutions
from pyro_sr.predict.self_ensemble import degradation_symmetries, self_ensemble
from pyro_sr.predict.tiling import DEFAULT_TILE, super_resolve
from pyro_sr.weights.loading import LoadedModel


def upscaler_for(
    loaded: LoadedModel, num_samples: int | None = None, temperature: float = 1.0, ensemble: bool = False
) -> Upscaler:
    """LR -> SR for a deterministic model, or LR -> K samples (K, N, 3, H, W) for a probabilistic one (K = 16
    unless given). ``ensemble`` averages a deterministic model over the exact symmetries of its degradation."""
    if loaded.probabilistic:
        if ensemble:
            raise ValueError(f"model {loaded.name!r} is probabilistic; --self-ensemble applies to deterministic CNNs")
        count = DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
        return lambda lr: sample_super_resolutions(loaded.model, lr, count, temperature)
    if num_samples not in (None, 1):
        raise ValueError(f"model {loaded.name!r} is deterministic; --num-samples needs a probabilistic model")
    predict = loaded.model.predict
    return self_ensemble(predict, degradation_symmetries(loaded.degradation)) if ensemble else predict


def predict_tiled(
    loaded: LoadedModel, upscaler: Upscaler, lr: torch.Tensor, tile: int = DEFAULT_TILE, lr_consistent: bool = False
) -> torch.Tensor:
    """``super_resolve`` at the model's scale and, with ``lr_consistent``, every output projected onto the images
    whose degradation is the LR input (``project_to_lr``), clamped to [0, 1]."""
    sr = super_resolve(upscaler, lr, loaded.scale, tile)
    return project_to_lr(sr, lr, loaded.degradation).clamp(0, 1) if lr_consistent else sr
