"""Drawing super-resolutions from a VAE's p(HR | LR) with ``pyro.infer.Predictive``, in bounded memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.infer.reparam import LocScaleReparam

from pyro_sr.models.contract import ProbabilisticSR

DEFAULT_NUM_SAMPLES = 16  # samples per image wherever the user does not say
Temperature = float | Sequence[float]  # one for every latent group, or one per group (coarse to fine)


MEAN = "mean"  # a pixel temperature that asks for the likelihood's mean where a model's default is a draw


@dataclass(frozen=True)
class Sampling:
    """What a sample of a VAE is: latents drawn at ``temperature`` (one for every group, or one per group) and the
    pixel likelihood's mean, or, with ``pixel_temperature``, a draw of the likelihood with its noise scaled by it.
    A checkpoint may carry its own (``meta["sampling"]``, written by ``pyro-sr calibrate``); the commands and the
    API use it wherever the user gives neither."""

    temperature: Temperature = 1.0
    pixel_temperature: float | None = None
    calibration: dict[str, Any] | None = None  # how the temperature was fitted, when it was

    def __post_init__(self) -> None:
        if isinstance(self.temperature, list):  # as read back from a checkpoint
            object.__setattr__(self, "temperature", tuple(self.temperature))

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Sampling:
        """The sampling a checkpoint's metadata asks for, or the model's own (temperature 1, the mean)."""
        return cls(**meta.get("sampling") or {})

    def to_dict(self) -> dict[str, Any]:
        spec = asdict(self)
        spec["temperature"] = list(self.temperature) if isinstance(self.temperature, tuple) else self.temperature
        return spec

    def temperature_text(self, spec: str = ".3g") -> str:
        """The latent temperature as reports show it (each number formatted by ``spec``): one number, or one per
        group (coarse to fine)."""
        t = self.temperature
        return " ".join(format(x, spec) for x in t) if isinstance(t, tuple) else format(t, spec)

    @property
    def sample_kind(self) -> str:
        """What one sample is, in words."""
        pixel = self.pixel_temperature
        return "the likelihood's mean" if pixel is None else f"a draw of the likelihood (pixel temperature {pixel:g})"

    @property
    def options(self) -> dict[str, Any]:
        """The keywords of ``sample_super_resolutions`` that draw such samples."""
        return {"temperature": self.temperature, "pixel_temperature": self.pixel_temperature}

    def given(self, temperature: Temperature | None = None, pixel_temperature: float | str | None = None) -> Sampling:
        """This sampling with what the user gave in its place: ``None`` keeps this one's, and a pixel temperature
        of ``MEAN`` asks for the likelihood's mean."""
        if pixel_temperature == MEAN:
            pixel = None
        elif pixel_temperature is None:
            pixel = self.pixel_temperature
        else:
            pixel = float(pixel_temperature)
        kept = temperature is None and pixel == self.pixel_temperature
        return Sampling(
            self.temperature if temperature is None else temperature, pixel, self.calibration if kept else None
        )


def site_temperatures(vae: ProbabilisticSR, temperature: Temperature) -> dict[str, float]:
    """The temperature of each latent site: ``temperature`` for all, or one per site in ``latent_sites`` order."""
    sites = vae.latent_sites
    if isinstance(temperature, int | float):
        temperatures = [float(temperature)] * len(sites)
    else:
        temperatures = [float(t) for t in temperature]
        if len(temperatures) != len(sites):
            raise ValueError(f"expected one temperature per latent group ({len(sites)}), got {len(temperatures)}")
    if not all(t >= 0 for t in temperatures):
        raise ValueError(f"the temperature must be >= 0, got {temperature}")
    return dict(zip(sites, temperatures, strict=True))


def _with_noise(model, noise: dict[str, torch.Tensor], temperatures: dict[str, float]):
    """``model`` with each latent site drawn as prior loc + temperature x prior scale x the given noise (Pyro's
    ``LocScaleReparam`` decentres the site, and the decentred site is conditioned on the noise); sites at
    temperature 0 sit at their prior mean and need none."""
    sites = [name for name in noise if temperatures[name] > 0]
    decentred = poutine.reparam(model, config={name: LocScaleReparam(centered=0.0) for name in sites})
    return poutine.condition(decentred, data={f"{name}_decentered": noise[name] for name in sites})


@torch.no_grad()
def sample_super_resolutions(
    vae: ProbabilisticSR,
    lr: torch.Tensor,
    num_samples: int,
    temperature: Temperature = 1.0,
    chunk: int = 512,
    noise: dict[str, torch.Tensor] | None = None,
    pixel_temperature: float | None = None,
) -> torch.Tensor:
    """K super-resolutions of each LR image, (K, N, 3, H, W) in [0, 1].

    Each is the location of the pixel likelihood (site ``sr``: the decoder's location, or the logistic mixture's
    mean) for latents drawn from the prior, optionally with their scale multiplied by ``temperature`` (one, or one
    per latent group; 0: the latents at their prior means); the pixel noise of the likelihood is left out
    (docs/training.md says why), unless ``pixel_temperature`` is given: then each sample is a draw of the
    likelihood (site ``hr``) with its noise scaled by it (the VAE's ``likelihood.tempered``). The pixel noise is
    independent across pixels given the latents, so a tiled draw is still a draw of the model.

    ``noise``: each latent site's standard-normal noise, (K * N, C, h, w) with sample k of image n at k * N + n
    (a crop of ``predict.noise.LatentNoise``), instead of fresh draws. The K copies of the batch are run
    ``chunk`` images at a time through one Predictive call that returns only ``sr``; what the VAE can precompute
    from the LR image (``precomputed``, the HVAE's base CNN: a third of its sampling time) is computed once per
    image, not once per sample.
    """
    if num_samples < 1:
        raise ValueError(f"the number of samples must be >= 1, got {num_samples}")
    if pixel_temperature is not None and not pixel_temperature >= 0:
        raise ValueError(f"the pixel temperature must be >= 0, got {pixel_temperature}")
    temperatures = site_temperatures(vae, temperature)
    if len(set(temperatures.values())) <= 1:  # one temperature: the form every model takes
        temperature = next(iter(temperatures.values()), 1.0)
    precomputed = getattr(vae, "precomputed", None)
    inputs = {"lr": lr, **(precomputed(lr) if precomputed is not None else {})}
    # sample k of image n sits at k * N + n
    repeated = {name: value.repeat(num_samples, *[1] * (value.dim() - 1)) for name, value in inputs.items()}

    def part(start: int) -> torch.Tensor:
        inputs = {name: value[start : start + chunk] for name, value in repeated.items()}
        model = vae.model
        if noise is not None:
            crops = {name: value[start : start + chunk].to(lr.device) for name, value in noise.items()}
            model = _with_noise(model, crops, temperatures)
        if pixel_temperature is None:
            predictive = Predictive(model, num_samples=1, return_sites=("sr",))
            return predictive(hr=None, beta=1.0, temperature=temperature, **inputs)["sr"][0]
        likelihood = poutine.trace(model).get_trace(hr=None, beta=1.0, temperature=temperature, **inputs).nodes["hr"]
        return vae.likelihood.tempered(likelihood["fn"], pixel_temperature).sample()

    parts = [part(start) for start in range(0, len(lr) * num_samples, chunk)]
    return torch.cat(parts).clamp(0, 1).view(num_samples, *lr.shape[:1], *parts[0].shape[1:])


def summarize_samples(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel mean and standard deviation across samples (dimension 0)."""
    std = samples.std(0, unbiased=False) if len(samples) > 1 else torch.zeros_like(samples[0])
    return samples.mean(0), std


def posterior_mean(
    vae: ProbabilisticSR, lr: torch.Tensor, num_samples: int, temperature: Temperature = 1.0, draws_at_once: int = 16
) -> torch.Tensor:
    """E[HR | LR] (N, 3, H, W) estimated from ``num_samples`` latent draws at ``temperature``, each contributing
    the pixel likelihood's mean (``sr``) rather than a draw of it: the expectation of the mean of samples, with
    the pixel noise integrated out instead of averaged (Rao-Blackwellised). Drawn ``draws_at_once`` at a time."""
    if num_samples < 1:
        raise ValueError(f"the number of samples must be >= 1, got {num_samples}")
    counts = [min(draws_at_once, num_samples - start) for start in range(0, num_samples, draws_at_once)]
    return sum(sample_super_resolutions(vae, lr, k, temperature).sum(0) for k in counts) / num_samples
