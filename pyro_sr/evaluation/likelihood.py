"""Conditional likelihood −log p(HR | LR) in bits per HR dimension, the number that says how well a probabilistic
super-resolver describes what the LR image leaves open.

HR pixels are 8-bit. A VAE whose pixel likelihood is a pmf on the 8-bit values (``discrete_likelihood``: the
discretised logistic mixture) is scored exactly on them: bits/dim = −log2 P(x) / D. A density is scored on
uniformly dequantised images y = (x + u) / 256, u ~ U[0, 1)^D: by Jensen, −log2 P(x) ≤ E_u[−log2 p(y)] + 8 D,
which gives bits/dim = −log2 p(y) / D + 8 (Theis et al., 2016), itself an upper bound.
For a VAE, log p(y | LR) is the importance-weighted bound (Burda et al., 2016) with K posterior samples from the
guide: log (1/K) Σ_k p(y, z_k | LR) / q(z_k | y, LR), which is the ELBO at K = 1 and tightens as K grows. For a
deterministic super-resolver the baseline density is a Normal around its prediction with one scale, fitted by
maximum likelihood on held-out data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from pyro_sr.common import progress, resolve_device
from pyro_sr.data.datasets import PairedImages
from pyro_sr.data.degradation import Degradation
from pyro_sr.evaluation.importance import format_pareto_k, weight_diagnostics
from pyro_sr.models.blocks import bicubic_upscale
from pyro_sr.models.contract import Upscaler, VariationalSR, has_discrete_likelihood
from pyro_sr.models.traces import log_weight, paired_traces
from pyro_sr.weights.loading import load_models

BITS_PER_8BIT_BIN = 8.0
IW_SAMPLES = 64  # importance samples of the published bits/dim


def dequantize(hr_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(x + u) / 256 with u ~ U[0, 1): a continuous image in [0, 1) whose density bounds the 8-bit probability."""
    noise = torch.rand(hr_uint8.shape, generator=generator).to(hr_uint8.device)
    return (hr_uint8.float() + noise) / 256.0


def dequantized_batches(
    pairs: PairedImages,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    discrete: bool = False,
):
    """(LR, dequantised HR) batches of ``pairs`` in order (with a progress bar on a terminal); the noise comes
    from ``generator``. With ``discrete``, the HR images are their 8-bit values instead (no noise)."""
    for start in progress(range(0, len(pairs), batch_size), pairs.num_batches(batch_size)):
        lr = pairs.lr[start : start + batch_size].to(device)
        yield lr, scored_images(pairs.hr[start : start + batch_size], discrete, generator).to(device)


def bits_per_dim(log_density: torch.Tensor, dims: int, discrete: bool = False) -> torch.Tensor:
    """Bits per dimension of 8-bit data from the log-density (nats) of its dequantised version, or with
    ``discrete`` from the log-probability (nats) of the 8-bit values themselves."""
    return -log_density / (dims * math.log(2.0)) + (0.0 if discrete else BITS_PER_8BIT_BIN)


def scored_images(hr_uint8: torch.Tensor, discrete: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """What a likelihood scores: the 8-bit values as k / 255 for a discrete one, else their dequantised version."""
    return hr_uint8.float().div(255.0) if discrete else dequantize(hr_uint8, generator)


def scored_on(discrete: bool) -> str:
    """What a bits/dim row was scored on, for its table."""
    return "exact 8-bit" if discrete else "dequantised"


def _log_weights(vae: VariationalSR, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """log p(hr, z | lr) − log q(z | hr, lr) per image, for one z per image drawn from the guide."""
    return torch.zeros(len(lr), device=lr.device) + log_weight(*paired_traces(vae, lr, hr))


@torch.no_grad()
def log_importance_weights(
    vae: VariationalSR, lr: torch.Tensor, hr: torch.Tensor, num_samples: int, chunk: int = 512
) -> torch.Tensor:
    """log p(hr, z_k | lr) − log q(z_k | hr, lr) for K guide draws per image, (N, K); the K copies of the batch
    are run ``chunk`` images at a time."""
    if num_samples < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {num_samples}")
    lr_k, hr_k = lr.repeat(num_samples, 1, 1, 1), hr.repeat(num_samples, 1, 1, 1)  # copy k of image n at k*N + n
    log_w = torch.cat([_log_weights(vae, lr_k[i : i + chunk], hr_k[i : i + chunk]) for i in range(0, len(lr_k), chunk)])
    return log_w.view(num_samples, len(lr)).T


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound log (1/K) Σ_k w_k per row of (N, K) log-weights."""
    return torch.logsumexp(log_weights, 1) - math.log(log_weights.shape[1])


def iwae_log_likelihood(
    vae: VariationalSR, lr: torch.Tensor, hr: torch.Tensor, num_samples: int, chunk: int = 512
) -> torch.Tensor:
    """Importance-weighted estimate of log p(hr | lr) per image (nats), with ``num_samples`` guide samples."""
    return iwae_bound(log_importance_weights(vae, lr, hr, num_samples, chunk))


@dataclass
class BitsPerDim:
    """Mean bits/dim over a data set with its standard error across images."""

    bits_per_dim: float
    standard_error: float
    images: int

    @classmethod
    def from_values(cls, values: torch.Tensor) -> BitsPerDim:
        if len(values) < 2:
            raise ValueError("bits/dim needs at least two images")
        return cls(float(values.mean()), float(values.std() / math.sqrt(len(values))), len(values))


def vae_log_weights(
    vae: VariationalSR,
    pairs: PairedImages,
    num_samples: int,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    seed: int = 0,
) -> torch.Tensor:
    """(N, K) log importance weights of ``pairs``' HR images, in nats: their 8-bit values for a VAE with a discrete
    likelihood, else dequantised (the noise seeded by ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    batches = dequantized_batches(pairs, batch_size, generator, device, has_discrete_likelihood(vae))
    return torch.cat([log_importance_weights(vae, lr, y, num_samples).cpu() for lr, y in batches]).double()


def vae_bits_per_dim(
    vae: VariationalSR,
    pairs: PairedImages,
    num_samples: int,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    seed: int = 0,
) -> BitsPerDim:
    """Conditional bits/dim of a VAE over ``pairs`` from the K-sample importance-weighted bound."""
    log_weights = vae_log_weights(vae, pairs, num_samples, device, batch_size, seed)
    discrete = has_discrete_likelihood(vae)
    return BitsPerDim.from_values(bits_per_dim(iwae_bound(log_weights), pairs.hr[0].numel(), discrete))


def normal_log_density(squared_errors: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(y; prediction, sigma^2) per image from the squared errors (N, D)."""
    return -0.5 * (squared_errors / sigma**2 + math.log(2 * math.pi * sigma**2)).sum(1)


@torch.no_grad()
def _squared_errors(upscaler: Upscaler, pairs: PairedImages, device, batch_size: int, generator) -> torch.Tensor:
    batches = dequantized_batches(pairs, batch_size, generator, device)
    return torch.cat([((y - upscaler(lr)) ** 2).flatten(1).cpu() for lr, y in batches])


def gaussian_bits_per_dim(
    upscaler: Upscaler,
    fit_pairs: PairedImages,
    pairs: PairedImages,
    device: torch.device | str = "cpu",
    batch_size: int = 250,
    seed: int = 0,
) -> tuple[BitsPerDim, float]:
    """Bits/dim over ``pairs`` of N(y; upscaler(lr), σ²), σ fitted by maximum likelihood (the RMS error) on
    ``fit_pairs``; returns the score and σ."""
    generator = torch.Generator().manual_seed(seed)
    sigma = float(_squared_errors(upscaler, fit_pairs, device, batch_size, generator).mean().sqrt())
    errors = _squared_errors(upscaler, pairs, device, batch_size, generator)
    return BitsPerDim.from_values(bits_per_dim(normal_log_density(errors, sigma), errors.shape[1])), sigma


def likelihood_rows(
    checkpoints: list[str],
    pairs: PairedImages,
    fit_pairs: PairedImages,
    degradation: Degradation,
    num_samples: int,
    device: str = "cpu",
) -> list[dict]:
    """Bits/dim rows: bicubic and each CNN as a Normal around the prediction (scale fitted on ``fit_pairs``),
    each VAE by its ELBO (the mean of the K one-draw ELBOs) and the K-sample importance-weighted bound on the same
    draws, with the weights' effective sample size, largest share and Pareto k̂."""
    if num_samples < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {num_samples}")
    dev = resolve_device(device)
    loaded = load_models(checkpoints, dev, degradation.scale)
    rows = []

    def gaussian_row(name: str, upscaler: Upscaler) -> dict:
        result, sigma = gaussian_bits_per_dim(upscaler, fit_pairs, pairs, dev)
        method = f"Normal around the prediction, sigma {sigma:.4f}"
        return {"model": name, "method": method, "scored_on": scored_on(False), "k": 1, **asdict(result)}

    rows.append(gaussian_row("bicubic", lambda lr: bicubic_upscale(lr, degradation.scale)))
    for model in loaded:
        if not isinstance(model.model, VariationalSR):
            if model.probabilistic:
                raise ValueError(f"model {model.name!r} has no guide; its bits/dim needs an importance sampler")
            rows.append(gaussian_row(model.name, model.model.predict))
            continue
        log_weights = vae_log_weights(model.model, pairs, num_samples, dev)
        dims, discrete = pairs.hr[0].numel(), has_discrete_likelihood(model.model)
        elbo = BitsPerDim.from_values(bits_per_dim(log_weights.mean(1), dims, discrete))  # mean of K one-draw ELBOs
        where = {"model": model.name, "scored_on": scored_on(discrete), "k": num_samples}
        rows.append({**where, "method": "ELBO", **asdict(elbo)})
        iwae = BitsPerDim.from_values(bits_per_dim(iwae_bound(log_weights), dims, discrete))
        rows.append({**where, "method": f"IWAE, K={num_samples}", **asdict(iwae), **weight_diagnostics(log_weights)})
    return rows


def format_likelihood_table(rows: list[dict]) -> str:
    """The bits/dim table; IWAE rows also show how far to trust the bound (``weight_diagnostics``)."""
    lines = [
        "| model | estimate | scored on | K | bits/dim | standard error | mean ESS of K | largest weight's share "
        "| median k̂ | images with k̂ > 0.7 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [r["model"], r["method"], r.get("scored_on", "dequantised"), str(r["k"])]
        cells += [f"{r['bits_per_dim']:.4f}", f"{r['standard_error']:.4f}"]
        if "ess_mean" in r:
            share = r["share_k_above_0_7"]
            cells += [
                f"{r['ess_mean']:.2f}",
                f"{r['largest_weight_share']:.1%}",
                format_pareto_k(r["pareto_k_median"]),
                "-" if math.isnan(share) else f"{share:.0%}",
            ]
        else:
            cells += ["-"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
