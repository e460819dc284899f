"""The function LR -> SR that prediction runs for a loaded model, chosen by what the model can do."""

from __future__ import annotations

import torch

from pyro_sr.models.contract import ProbabilisticSR, Upscaler
from pyro_sr.predict.consistency import project_to_lr
from pyro_sr.predict.noise import LatentNoise
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, Sampling, Temperature, sample_super_resolutions
from pyro_sr.predict.self_ensemble import degradation_symmetries, self_ensemble
from pyro_sr.predict.tiling import DEFAULT_TILE, TILE_MARGIN, super_resolve
from pyro_sr.weights.loading import LoadedModel


class NoiseFieldSampler:
    """LR -> K samples (K, N, 3, H, W) of a VAE with image-shaped latents, whose latent noise is one draw over the
    whole LR image (``LatentNoise``, fixed by ``seed``): ``window(rows, cols)`` samples the part of the image
    under those LR rows and columns with its crop of that noise, which is what tiling asks for, so that a tiled
    sample equals the whole-image pass ``sampler(lr)``."""

    def __init__(self, vae: ProbabilisticSR, num_samples: int, sampling: Sampling, seed: int):
        self.vae, self.num_samples, self.sampling, self.seed = vae, num_samples, sampling, seed

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> Upscaler:
        def sample(lr: torch.Tensor) -> torch.Tensor:
            noise = LatentNoise(self.vae.latent_grids, self.num_samples, len(lr), self.seed).crop(rows, cols)
            return sample_super_resolutions(self.vae, lr, self.num_samples, noise=noise, **self.sampling.options)

        return sample

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        return self.window((0, lr.shape[-2]), (0, lr.shape[-1]))(lr)


def tile_margin(loaded: LoadedModel) -> int:
    """The LR context each tile gets: the model's receptive radius where it says one (exact tiling)."""
    radius = getattr(loaded.model, "receptive_radius", None)
    return TILE_MARGIN if radius is None else radius


def sampling_for(
    loaded: LoadedModel, temperature: Temperature | None = None, pixel_temperature: float | str | None = None
) -> Sampling:
    """How ``loaded`` is sampled: its checkpoint's sampling (``Sampling.of``) with what the user gave instead."""
    return Sampling.of(loaded.meta).given(temperature, pixel_temperature)


def upscaler_for(
    loaded: LoadedModel,
    num_samples: int | None = None,
    temperature: Temperature | None = None,
    ensemble: bool = False,
    pixel_temperature: float | str | None = None,
) -> Upscaler:
    """LR -> SR for a deterministic model, or LR -> K samples (K, N, 3, H, W) for a probabilistic one (K = 16
    unless given; drawn as ``sampling_for`` says), their latent noise one whole-image draw (seeded from torch's
    generator) where the latents are images, so tiles sample exactly. ``ensemble`` averages a deterministic model
    over the exact symmetries of its degradation."""
    if loaded.probabilistic:
        if ensemble:
            raise ValueError(f"model {loaded.name!r} is probabilistic; --self-ensemble applies to deterministic CNNs")
        count = DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
        sampling = sampling_for(loaded, temperature, pixel_temperature)
        if getattr(loaded.model, "latent_grids", None) is not None:
            seed = int(torch.randint(2**62, ()))
            return NoiseFieldSampler(loaded.model, count, sampling, seed)
        return lambda lr: sample_super_resolutions(loaded.model, lr, count, **sampling.options)
    if num_samples not in (None, 1):
        raise ValueError(f"model {loaded.name!r} is deterministic; --num-samples needs a probabilistic model")
    predict = loaded.model.predict
    return self_ensemble(predict, degradation_symmetries(loaded.degradation)) if ensemble else predict


def predict_tiled(
    loaded: LoadedModel, upscaler: Upscaler, lr: torch.Tensor, tile: int = DEFAULT_TILE, lr_consistent: bool = False
) -> torch.Tensor:
    """``super_resolve`` at the model's scale and, with ``lr_consistent``, every output projected onto the images
    whose degradation is the LR input (``project_to_lr``), clamped to [0, 1]."""
    sr = super_resolve(upscaler, lr, loaded.scale, tile, tile_margin(loaded))
    return project_to_lr(sr, lr, loaded.degradation).clamp(0, 1) if lr_consistent else sr
