"""Fitting the latent temperature at which a VAE's samples are calibrated on held-out images.

A VAE fitted by the ELBO need not spread its samples as far as it errs: the spread-skill ratio
(``evaluation.calibration``) of its draws at temperature 1 can sit well above 1 (too sure). Like temperature scaling
for a classifier, one number fixes the spread without touching the weights: the latent temperature (the same for
every group) at which the ratio is 1 on images the model was not fitted on. The ratio falls as the temperature
grows, so a bisection on the temperature's logarithm finds it; every trial draws with the same seeded noise (common
random numbers), so the ratio it sees moves only with the temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch

from pyro_sr.data.datasets import PairedImages
from pyro_sr.evaluation.calibration import spread_skill
from pyro_sr.evaluation.evaluate import labelled_batches
from pyro_sr.models.contract import ProbabilisticSR
from pyro_sr.predict.sampling import sample_super_resolutions

SEARCH_BOUNDS = (1 / 16, 16.0)  # temperatures beyond these are a model to retrain, not to recalibrate


@dataclass
class TemperatureFit:
    """The fitted temperature, its spread-skill ratio, and every (temperature, ratio) the search tried."""

    temperature: float
    spread_skill: float
    images: int
    num_samples: int
    pixel_temperature: float | None
    trials: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "spread_skill": self.spread_skill,
            "images": self.images,
            "num_samples": self.num_samples,
            "pixel_temperature": self.pixel_temperature,
            "trials": [list(t) for t in self.trials],
        }


@torch.no_grad()
def spread_skill_at(
    vae: ProbabilisticSR,
    pairs: PairedImages,
    temperature: float,
    num_samples: int,
    pixel_temperature: float | None = None,
    seed: int = 0,
    batch_size: int = 100,
) -> float:
    """The spread-skill ratio MSE(mean of K) / ((1 + 1/K) mean unbiased variance) of ``num_samples`` draws per image
    of ``pairs`` at ``temperature``, with Pyro's generator seeded by ``seed`` first."""
    if num_samples < 2:
        raise ValueError(f"the spread of samples needs at least 2 per image, got {num_samples}")
    pyro.set_rng_seed(seed)
    squared_error, variance = 0.0, 0.0
    device = next(vae.parameters()).device
    for lr, hr, _ in labelled_batches(pairs, batch_size, device):
        samples = sample_super_resolutions(vae, lr, num_samples, temperature, pixel_temperature=pixel_temperature)
        squared_error += float(((samples.mean(0) - hr) ** 2).sum())
        variance += float(samples.var(0, correction=1).sum())
    return spread_skill(np.asarray(squared_error), np.asarray(variance), num_samples)  # sums: same ratio as means


def fit_temperature(
    vae: ProbabilisticSR,
    pairs: PairedImages,
    num_samples: int = 8,
    pixel_temperature: float | None = None,
    seed: int = 0,
    steps: int = 6,
) -> TemperatureFit:
    """The latent temperature at which ``num_samples`` draws per image of ``pairs`` have a spread-skill ratio of 1:
    doubled or halved from 1 until the ratio crosses 1, then ``steps`` bisections of the logarithm (each halves
    the bracket: 6 leave it within 1.1% of the temperature). Raises ValueError where no temperature within
    ``SEARCH_BOUNDS`` brackets the crossing."""
    if len(pairs) == 0:
        raise ValueError("no images to calibrate on")
    trials: list[tuple[float, float]] = []

    def ratio(t: float) -> float:
        value = spread_skill_at(vae, pairs, t, num_samples, pixel_temperature, seed)
        trials.append((t, value))
        return value

    low = high = 1.0
    r = ratio(1.0)
    factor = 2.0 if r > 1 else 0.5
    while (r > 1) == (factor > 1):
        t = (high if factor > 1 else low) * factor
        if not SEARCH_BOUNDS[0] <= t <= SEARCH_BOUNDS[1]:
            raise ValueError(
                f"the spread-skill ratio stays {'above' if r > 1 else 'below'} 1 at temperature "
                f"{trials[-1][0]:g} ({r:.2f}): the model needs retraining, not a temperature"
            )
        if factor > 1:
            low, high = high, t
        else:
            high, low = low, t
        r = ratio(t)
    for _ in range(steps):
        middle = math.sqrt(low * high)
        if ratio(middle) > 1:
            low = middle
        else:
            high = middle
    best = min(trials, key=lambda trial: abs(math.log(trial[1])))
    return TemperatureFit(best[0], best[1], len(pairs), num_samples, pixel_temperature, trials)
