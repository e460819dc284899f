"""The Python API: load a model by name, super-resolve, sample and score it from a notebook.

    import pyro_sr
    sr = pyro_sr.load("hvae")                   # bundled name, checkpoint file or run folder; device="auto"
    lr = pyro_sr.degrade(hr)                     # the paper's operator, (N, 3, H, W) in [0, 1]
    x = sr.upscale(lr)                           # (N, 3, sH, sW): the CNN's output, or a VAE's posterior mean
    s = sr.sample(lr, num_samples=16)            # (K, N, 3, sH, sW); a clear error for a deterministic model
    b = sr.bits_per_dim(hr, lr)                  # conditional bits/dim per image (N,)
    sr.meta                                      # how it was trained and what it scored
    pyro_sr.list_models()                        # the bundled names

``upscale`` runs what ``pyro-sr upscale`` runs (tiles, self-ensemble, LR projection), so a CNN gives the same pixels
either way; for a VAE the command writes its samples and their mean, and ``upscale`` returns the posterior mean.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.likelihood import (
    IW_SAMPLES,
    bits_per_dim,
    iwae_log_likelihood,
    normal_log_density,
    scored_images,
)
from pyro_sr.models.contract import VariationalSR, has_discrete_likelihood
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, MEAN, Temperature
from pyro_sr.predict.tiling import DEFAULT_TILE
from pyro_sr.predict.upscalers import predict_tiled, sampling_for, upscaler_for
from pyro_sr.weights.loading import LoadedModel, load_model


def _check_lr(lr: torch.Tensor) -> None:
    if not isinstance(lr, torch.Tensor) or lr.dim() != 4 or lr.shape[1] != 3 or not lr.is_floating_point():
        shape = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
        raise ValueError(f"expected a float LR batch of shape (N, 3, h, w) in [0, 1], got {shape}")


class SuperResolver:
    """A trained model with what it was trained for; what a user calls instead of the internals."""

    def __init__(self, loaded: LoadedModel):
        self._loaded = loaded

    name = property(lambda self: self._loaded.name, doc="bundled name, or the run folder's name")
    kind = property(lambda self: self._loaded.kind, doc="the registered model kind (cnn, vae, hvae)")
    meta = property(lambda self: self._loaded.meta, doc="training command, config, history and measured metrics")
    degradation = property(lambda self: self._loaded.degradation, doc="the degradation it was trained for")
    scale = property(lambda self: self._loaded.scale, doc="the upscaling factor")
    device = property(lambda self: self._loaded.device, doc="where its weights are")
    probabilistic = property(lambda self: self._loaded.probabilistic, doc="True when it draws samples")
    module = property(lambda self: self._loaded.model, doc="the underlying nn.Module (CNN or Pyro model/guide)")
    sampling = property(
        lambda self: sampling_for(self._loaded), doc="how samples are drawn unless told otherwise (a VAE's)"
    )

    def __repr__(self) -> str:
        return f"SuperResolver({self.name!r}, kind={self.kind!r}, scale={self.scale}, device={str(self.device)!r})"

    def to(self, device: str | torch.device) -> SuperResolver:
        self._loaded.model.to(device)
        return self

    def _run(self, lr, num_samples, temperature, pixel_temperature, tile, lr_consistent, ensemble) -> torch.Tensor:
        _check_lr(lr)
        lr = lr.to(self.device)
        upscaler = upscaler_for(self._loaded, num_samples, temperature, ensemble, pixel_temperature)
        return predict_tiled(self._loaded, upscaler, lr, tile, lr_consistent)

    @torch.no_grad()
    def upscale(
        self,
        lr: torch.Tensor,
        num_samples: int | None = None,
        temperature: Temperature | None = None,
        tile: int = DEFAULT_TILE,
        lr_consistent: bool = False,
        self_ensemble: bool = False,
        pixel_temperature: float | str | None = None,
    ) -> torch.Tensor:
        """(N, 3, h, w) -> (N, 3, scale h, scale w) in [0, 1]: a deterministic model's output, or a probabilistic
        one's posterior mean, E[HR | LR]: the pixel likelihood's mean averaged over ``num_samples`` (16 unless
        given) latent draws at the model's temperature, its pixel noise integrated out rather than averaged. A
        ``pixel_temperature`` averages draws at that temperature instead."""
        if self.probabilistic and pixel_temperature is None:
            pixel_temperature = MEAN
        out = self._run(lr, num_samples, temperature, pixel_temperature, tile, lr_consistent, self_ensemble)
        return out.mean(0) if self.probabilistic else out

    @torch.no_grad()
    def sample(
        self,
        lr: torch.Tensor,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        temperature: Temperature | None = None,
        tile: int = DEFAULT_TILE,
        lr_consistent: bool = False,
        pixel_temperature: float | str | None = None,
    ) -> torch.Tensor:
        """(K, N, 3, scale h, scale w) super-resolutions drawn from p(HR | LR): latents at ``temperature`` (one, or
        one per group), then the pixel likelihood's mean (``sr``; ``pixel_temperature="mean"``) or a draw of it
        (``hr``) with its noise scaled by ``pixel_temperature``. Either left None is the model's own
        (``sampling``)."""
        if not self.probabilistic:
            raise ValueError(f"model {self.name!r} is deterministic; sample() needs a probabilistic model (vae, hvae)")
        return self._run(lr, num_samples, temperature, pixel_temperature, tile, lr_consistent, False)

    @torch.no_grad()
    def bits_per_dim(
        self,
        hr: torch.Tensor,
        lr: torch.Tensor | None = None,
        num_samples: int = IW_SAMPLES,
        seed: int = 0,
        sigma: float | None = None,
    ) -> torch.Tensor:
        """Conditional bits/dim -log2 p(HR | LR) per image (N,), on 8-bit ``hr`` (uint8, or float in [0, 1]
        rounded to 8 bits): exact for a VAE with a discrete likelihood, else dequantised with noise from ``seed``.
        A model with a guide gives its
        ``num_samples``-draw importance-weighted bound (the ELBO at 1); a deterministic one a Normal of scale
        ``sigma`` around its prediction, which must then be given (fit it on held-out data)."""
        hr8 = hr if hr.dtype == torch.uint8 else (hr.detach().cpu() * 255).round().clamp(0, 255).to(torch.uint8)
        if hr8.dim() != 4 or hr8.shape[1] != 3:
            raise ValueError(f"expected an HR batch of shape (N, 3, H, W), got {tuple(hr.shape)}")
        discrete = has_discrete_likelihood(self.module)
        y = scored_images(hr8.cpu(), discrete, torch.Generator().manual_seed(seed)).to(self.device)
        lr = self.degradation(hr8.float().div(255)).to(self.device) if lr is None else lr.to(self.device)
        _check_lr(lr)
        if isinstance(self.module, VariationalSR):
            return bits_per_dim(iwae_log_likelihood(self.module, lr, y, num_samples), y[0].numel(), discrete)
        if self.probabilistic:
            raise ValueError(f"model {self.name!r} has no guide; its bits/dim needs an importance sampler")
        if sigma is None or not sigma > 0:
            raise ValueError(f"model {self.name!r} is deterministic: bits_per_dim needs its noise scale sigma > 0")
        errors = ((y - self.module.predict(lr)) ** 2).flatten(1)
        return bits_per_dim(normal_log_density(errors, sigma), errors.shape[1])


def load(model: str | Path = "cnn", device: str | torch.device = "auto") -> SuperResolver:
    """A model by bundled name, checkpoint file or run folder, on ``device`` (``auto``: CUDA when there is one)."""
    return SuperResolver(load_model(model, device))


def degrade(hr: torch.Tensor, scale: int = 4, sigma: float = 1.0, kind: str = "gaussian") -> torch.Tensor:
    """The paper's operator (default) or antialiased bicubic downscaling of an HR batch (N, 3, H, W)."""
    return Degradation(kind, scale, sigma)(hr)
