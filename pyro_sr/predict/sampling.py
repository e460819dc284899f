"""Drawing super-resolutions from a VAE's p(HR | LR) with ``pyro.infer.Predictive``, in bounded memory."""

from __future__ import annotations

import torch
from pyro.infer import Predictive

from pyro_sr.models.contract import ProbabilisticSR

DEFAULT_NUM_SAMPLES = 16  # samples per image wherever the user does not say


@torch.no_grad()
def sample_super_resolutions(
    vae: ProbabilisticSR, lr: torch.Tensor, num_samples: int, temperature: float = 1.0, chunk: int = 512
) -> torch.Tensor:
    """K super-resolutions of each LR image, (K, N, 3, H, W) in [0, 1].

    Each is the decoder mean (site ``sr``) for a latent drawn from the prior, optionally with its scale multiplied
    by ``temperature`` (0: the latents at their prior means); the pixel noise of the likelihood is left out, as
    usual for image samples. The K copies of the batch are run ``chunk`` images at a time through one Predictive
    call that returns only ``sr``; what the VAE can precompute from the LR image (``precomputed``, the HVAE's base
    CNN: a third of its sampling time) is computed once per image, not once per sample.
    """
    if num_samples < 1:
        raise ValueError(f"the number of samples must be >= 1, got {num_samples}")
    if not temperature >= 0:
        raise ValueError(f"the temperature must be >= 0, got {temperature}")
    predictive = Predictive(vae.model, num_samples=1, return_sites=("sr",))
    precomputed = getattr(vae, "precomputed", None)
    inputs = {"lr": lr, **(precomputed(lr) if precomputed is not None else {})}
    # sample k of image n sits at k * N + n
    repeated = {name: value.repeat(num_samples, *[1] * (value.dim() - 1)) for name, value in inputs.items()}

    def part(start: int) -> torch.Tensor:
        inputs = {name: value[start : start + chunk] for name, value in repeated.items()}
        return predictive(hr=None, beta=1.0, temperature=temperature, **inputs)["sr"][0]

    parts = [part(start) for start in range(0, len(lr) * num_samples, chunk)]
    return torch.cat(parts).clamp(0, 1).view(num_samples, *lr.shape[:1], *parts[0].shape[1:])


def summarize_samples(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and standard deviation across samples (dimension 0)."""
    std = samples.std(0, unbiased=False) if len(samples) > 1 else torch.zeros_like(samples[0])
    return samples.mean(0), std
