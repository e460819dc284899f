"""The one SVI training loop for every pyro-sr VAE (anything with ``model(lr, hr, beta)`` / ``guide(lr, hr, beta)``).

The objective is Pyro's own (``Trace_ELBO`` or, with analytic KL, ``TraceMeanField_ELBO``), stepped by
:class:`~pyro_sr.training.step.ELBOStep` (Adam on the objective per image and dimension, global-norm clipping,
VDVAE-style skipping of spikes, bf16 autocast where the hardware has it); the KL factor from a
:class:`~pyro_sr.training.annealing.KLSchedule` reaches the latent sites as the ``beta`` argument, where
``poutine.scale`` applies it. What a VAE can compute from the LR image alone (``vae.precomputed``: the HVAE's
frozen base prediction) is computed once per training image, not per step. Every epoch writes a JSON line (train
objective, the β in force, skipped steps, full-validation ELBO, KL, expected log-likelihood and PSNR, and the same
on a fixed slice of the training images) and an atomic checkpoint with network, optimizer, schedule position and
RNG states (also as ``best.pt`` at the best validation ELBO so far). With ``ema_decay`` the network's weights are
also averaged after every applied step (torch's ``swa_utils``, as in VDVAE): the average is what is validated and
stored as the checkpoint's ``model`` (so bundled and sampled), the raw weights go on training (``train_model``)
and are validated too (``val_raw_*``).
With ``free_bits`` (the analytic-KL ELBO only), a latent group's KL below it costs nothing
(``elbo.AnalyticKLELBO``). The step's optimiser holds the network's
parameters itself (model and guide skip ``pyro.module`` inside it), so the network's state_dict is the whole state.
``steps.jsonl`` gets the per-image loss, β, gradient norm and any skip of every step.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import Predictive
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from pyro_sr.common import TrainingError, resolve_device
from pyro_sr.data.datasets import ImageFolderCrops, PairedImages, to_float
from pyro_sr.metrics import mse_to_psnr
from pyro_sr.models.contract import VariationalSR
from pyro_sr.models.registry import kind_of
from pyro_sr.models.traces import paired_traces, sample_sites
from pyro_sr.training.annealing import KLSchedule
from pyro_sr.training.distributed import all_reduce_sum, from_environment, rank0_verdict, setup
from pyro_sr.training.elbo import ELBOS, make_elbo
from pyro_sr.training.precision import check_precision, resolve_precision
from pyro_sr.training.run import (
    check_scores,
    check_weights,
    close_epoch,
    diverged,
    divergence_as_error,
    final_epoch,
    open_run,
    owns_run_folder,
)
from pyro_sr.training.step import MAX_SKIPPED_IN_A_ROW, ELBOStep, channels_last_pays

TRAIN_PROBE = 2000  # training images re-scored each epoch
CLIP_NORM = 20.0  # the trained hvae's steps have norms ~7 (bf16, batch 64), a fresh one ~17


@dataclass(frozen=True)
class SVIConfig:
    """How a VAE is fitted with SVI."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3  # Adam's, on the objective per image and dimension: see docs/training.md for the sweep
    lr_warmup_steps: int = 200  # lr rises linearly from lr / lr_warmup_steps to lr over these first steps
    final_lr_fraction: float = 0.05  # a per-step exponential decay brings lr to this fraction at the end
    clip_norm: float = CLIP_NORM  # of the global gradient norm of the per-dimension objective
    skip_factor: float = 10.0  # skip a step whose gradient norm (or loss) is this far above its running level
    precision: str = "auto"  # auto | fp32 | bf16 (autocast for the networks; see pyro_sr.training.precision)
    elbo: str = "trace"  # trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)
    kl: KLSchedule = KLSchedule()
    seed: int = 0
    group_kl_weights: tuple[float, ...] | None = None  # hierarchical VAE: per-group multipliers of the KL factor
    free_bits: float = 0.0  # nats per image and latent group: a KL below this costs nothing (meanfield only)
    ema_decay: float = 0.998  # of the weights' exponential moving average, validated and saved; 0: none

    def __post_init__(self) -> None:
        if self.free_bits < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(f"free bits must be >= 0 and 0 <= ema_decay < 1, got {self.free_bits}, {self.ema_decay}")
        if self.group_kl_weights is not None:
            object.__setattr__(self, "group_kl_weights", tuple(float(w) for w in self.group_kl_weights))
            if min(self.group_kl_weights) < 0:
                raise ValueError(f"group KL weights must be non-negative, got {list(self.group_kl_weights)}")
        if self.elbo not in ELBOS:
            raise ValueError(f"unknown ELBO {self.elbo!r}; choose from {ELBOS}")
        if self.free_bits and self.elbo != "meanfield":
            raise ValueError("free bits need the analytic KL: --elbo meanfield")
        check_precision(self.precision)
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError("epochs and batch size must be >= 1, lr > 0 and 0 < final_lr_fraction <= 1")
        if self.lr_warmup_steps < 0:
            raise ValueError(f"lr_warmup_steps must be >= 0, got {self.lr_warmup_steps}")
        if not self.clip_norm > 0 or not self.skip_factor > 1:
            raise ValueError("clip_norm must be > 0 and skip_factor > 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def kl_weight(self, step: int) -> float | tuple[float, ...]:
        """The ``beta`` argument of model and guide at ``step``: the schedule's factor, or one per latent group."""
        factor = self.kl.factor(step)
        return factor if self.group_kl_weights is None else tuple(factor * w for w in self.group_kl_weights)

    @classmethod
    def from_dict(cls, d: dict) -> SVIConfig:
        # runs written before the lr warm-up, free bits and the EMA existed had none of them
        return cls(**{"lr_warmup_steps": 0, "ema_decay": 0.0, **d, "kl": KLSchedule(**d["kl"])})


def decayed_lr(config: SVIConfig, steps_per_epoch: int, step: int) -> float:
    """The learning rate in force at ``step``: ``config.lr`` decayed exponentially per step to
    ``final_lr_fraction`` of it after all epochs (a run resumed with more epochs moves onto the longer schedule),
    and over the first ``lr_warmup_steps`` raised linearly towards that: Adam's first steps are full-sized
    whatever the gradient, and without the warm-up a run's norm rose 30-fold near step 55."""
    warmup = min(1.0, (step + 1) / config.lr_warmup_steps) if config.lr_warmup_steps else 1.0
    return warmup * config.lr * config.final_lr_fraction ** (step / (config.epochs * steps_per_epoch))


def precompute_inputs(vae: VariationalSR, data: PairedImages, device: torch.device, chunk: int = 500):
    """``vae.precomputed(lr)`` for every image of ``data``, kept on the CPU beside it (None when the VAE has
    nothing to precompute)."""
    precomputed = getattr(vae, "precomputed", None)
    if precomputed is None or len(data) == 0:
        return None
    with torch.no_grad():
        parts = [precomputed(data.lr[i : i + chunk].to(device)) for i in range(0, len(data), chunk)]
    if not parts[0]:
        return None
    return {name: torch.cat([part[name].cpu() for part in parts]) for name in parts[0]}


def training_batches(
    vae: VariationalSR,
    data: PairedImages | ImageFolderCrops,
    table: dict[str, torch.Tensor] | None,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    shard: tuple[int, int],
) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """Shuffled (LR, HR, the VAE's precomputed inputs) batches: sliced from ``table`` (see
    :func:`precompute_inputs`) for a fixed data set, computed per batch for fresh random crops."""
    if table is not None and isinstance(data, PairedImages):
        for idx in data.batch_indices(batch_size, shuffle=True, generator=generator, shard=shard):
            inputs = {name: value[idx].to(device) for name, value in table.items()}
            yield data.lr[idx].to(device), to_float(data.hr[idx].to(device)), inputs
        return
    precomputed = getattr(vae, "precomputed", None)
    for lr, hr in data.batches(batch_size, shuffle=True, generator=generator, device=device, shard=shard):
        with torch.no_grad():
            inputs = precomputed(lr) if precomputed is not None else {}
        yield lr, hr, inputs


@torch.no_grad()
def elbo_terms(vae: VariationalSR, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image expected log-likelihood (one posterior sample), analytic KL of each latent site given its
    sampled parents (``kl_<site>``), their total and the ELBO at β = 1."""
    guide_trace, model_trace = paired_traces(vae, lr, hr)
    log_lik = model_trace.nodes["hr"]["fn"].log_prob(hr)
    terms = {}
    for name, site in sample_sites(guide_trace, observed=False):
        terms[f"kl_{name}"] = torch.distributions.kl_divergence(site["fn"], model_trace.nodes[name]["fn"])
    kl = sum(terms.values(), torch.zeros_like(log_lik))
    return {"log_lik": log_lik, "kl": kl, "elbo": log_lik - kl, **(terms if len(terms) > 1 else {})}


@torch.no_grad()
def validate(
    vae: VariationalSR, data: PairedImages, device: torch.device, batch_size: int = 250, prefix: str = "val"
) -> dict[str, float]:
    """ELBO, KL (and each latent group's KL when there are several) and log-likelihood per image over all of
    ``data``, in nats, and the PSNR of super-resolutions whose latents come from the prior (what a user gets);
    keys start with ``prefix``."""
    sums: dict[str, float] = {}
    sq_err, pixels = 0.0, 0
    for lr, hr in data.batches(batch_size, device=device):
        for key, value in elbo_terms(vae, lr, hr).items():
            sums[key] = sums.get(key, 0.0) + float(value.sum())
        sr = Predictive(vae.model, num_samples=1, return_sites=("sr",))(lr)["sr"][0]
        sq_err += float(((sr.clamp(0, 1) - hr) ** 2).sum())
        pixels += hr.numel()
    return {**{f"{prefix}_{k}": v / len(data) for k, v in sums.items()}, f"{prefix}_psnr": mse_to_psnr(sq_err / pixels)}


def _rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in types ``torch.load(weights_only=True)`` reads (NumPy's key as a tensor)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]  # keys: a tensor, or an ndarray in older checkpoints
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@owns_run_folder
def fit_vae(
    vae: VariationalSR,
    config: SVIConfig,
    train_data: PairedImages | ImageFolderCrops,
    val_data: PairedImages | None,
    run_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Fit ``vae`` (its model/guide) with SVI; returns the per-epoch log, also written to ``run_dir/log.jsonl``.
    ``stop_after`` ends this call after that epoch, on the schedule of ``config.epochs`` (resume to go on).

    Under ``torchrun`` each process fits its shard of every global batch of ``batch_size x world size`` images
    (see ``pyro_sr.training.distributed``); only rank 0 validates and writes the run folder."""
    run_dir = Path(run_dir)
    kind = kind_of(vae)
    dist = from_environment()
    dev = resolve_device(device)
    if dist.active:
        dev = setup(dist, dev)
    state = open_run(run_dir, resume, kind, vae.config.to_dict())
    if state is not None:
        config = replace(SVIConfig.from_dict(state["svi_config"]), epochs=config.epochs)

    pyro.clear_param_store()
    pyro.set_rng_seed(config.seed + dist.rank)
    vae.to(dev)
    precision = resolve_precision(config.precision, dev)
    global_batch = config.batch_size * dist.world_size
    # A single process keeps the last, smaller batch; ranks drop it so that every rank has a full shard.
    steps_per_epoch = len(train_data) // global_batch if dist.active else math.ceil(len(train_data) / global_batch)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train_data)} training images do not fill one global batch of {global_batch}")
    elbo = make_elbo(config.elbo, config.free_bits)
    optimise = ELBOStep(
        vae,
        elbo,
        config.lr,
        config.clip_norm,
        config.skip_factor,
        precision,
        dev,
        distributed=dist.active,
        channels_last=channels_last_pays(dev),
    )
    shuffle = torch.Generator().manual_seed(config.seed)  # the same on every rank: one global order
    # A fixed slice of the training images, scored like the validation set each epoch (at beta = 1), so train
    # and validation ELBO, KL and log-likelihood can be compared.
    probe = (
        train_data.subset(torch.arange(min(len(train_data), TRAIN_PROBE))) if hasattr(train_data, "subset") else None
    )
    # The weights' moving average: what is validated, checkpointed as "model" and so bundled and sampled.
    ema = AveragedModel(vae, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None
    scored = ema.module if ema is not None else vae
    history: list[dict[str, float]] = []
    start_epoch, step = 0, 0
    if state is not None:
        vae.load_state_dict(state.get("train_model", state["model"]))
        if ema is not None:
            ema.module.load_state_dict(state["model"])
            ema.n_averaged.fill_(state.get("ema_averaged", 1))
        optimise.load_state_dict(state["optimizer"])
        shuffle.set_state(state["rng"]["shuffle"])
        _set_rng_state(state["rng"])
        if dist.rank:
            pyro.set_rng_seed(config.seed + dist.rank + 7919 * state["step"])  # ranks draw different latents
        history, start_epoch, step = state["history"], state["epoch"], state["step"]
    last_epoch = final_epoch(config.epochs, stop_after, start_epoch)
    table = precompute_inputs(vae, train_data, dev) if isinstance(train_data, PairedImages) else None

    for epoch in range(start_epoch + 1, last_epoch + 1):
        vae.train()
        started, seen, processed, loss_sum, beta = time.perf_counter(), 0, 0, 0.0, config.kl.factor(step)
        step_log, norms, skipped, new_levels, freed = [], [], Counter(), 0, Counter()
        batches = training_batches(vae, train_data, table, global_batch, shuffle, dev, (dist.rank, dist.world_size))
        bar = tqdm(
            itertools.islice(batches, steps_per_epoch),
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not (progress and dist.is_main),
            mininterval=5,
            file=sys.stderr,
            leave=False,
        )
        for lr_batch, hr_batch, inputs in bar:
            beta = config.kl.factor(step)
            optimise.set_lr(decayed_lr(config, steps_per_epoch, step))
            with divergence_as_error(epoch):
                result = optimise(lr_batch, hr_batch, config.kl_weight(step), **inputs)
            if optimise.stuck:
                raise diverged(
                    epoch,
                    f"the last {MAX_SKIPPED_IN_A_ROW} steps were all skipped (the last as {result.skipped}, "
                    f"loss {result.loss:.4g}, gradient norm {result.grad_norm:.4g}"
                    + (f", not finite in {', '.join(optimise.nonfinite_grads[:3])}" if optimise.nonfinite_grads else "")
                    + ")",
                )
            entry = {"step": step, "beta": beta, "loss": result.loss / len(hr_batch), "grad_norm": result.grad_norm}
            if result.new_level:
                entry["new_level"] = True
                new_levels += 1
            free = [name for name, kl in result.site_kl.items() if kl < config.free_bits]
            if free:
                entry["free"] = free  # groups whose KL was below the free bits: it cost nothing in this step
                freed.update(free)
            if result.skipped is None:
                if ema is not None:
                    ema.update_parameters(vae)
                loss_sum += result.loss
                seen += len(hr_batch)
                norms.append(result.grad_norm)
            else:
                skipped[result.skipped] += 1
                entry["skipped"] = result.skipped
            step_log.append(entry)
            processed += len(hr_batch)
            step += 1
            bar.set_postfix(
                loss=f"{loss_sum / max(seen, 1):.1f}", beta=f"{beta:.3f}", skipped=sum(skipped.values()), refresh=False
            )
        if dist.active:
            loss_sum, seen, processed = all_reduce_sum([loss_sum, seen, processed], dev)
        seconds = time.perf_counter() - started
        vae.eval()
        check_weights(vae, epoch)  # on every rank: their weights are the same
        if ema is not None:
            scored.eval()
            check_weights(scored, epoch)
        if not dist.is_main:
            history.append({"epoch": epoch, "step": step})
            if not rank0_verdict(True, dev):  # rank 0 validates and writes the checkpoint
                raise TrainingError(f"rank 0 stopped the run in epoch {epoch}; its error says why")
            continue
        try:  # rank 0: score the epoch, refuse it if anything is no longer finite, write it
            has_val = val_data is not None and len(val_data) > 0
            with divergence_as_error(epoch):
                validation = {
                    **(validate(scored, probe, dev, prefix="train") if probe is not None else {}),
                    **(validate(scored, val_data, dev) if has_val else {}),
                    # the raw weights too, so that the log shows what the average gains (or, early on, loses)
                    **(validate(vae, val_data, dev, prefix="val_raw") if has_val and ema is not None else {}),
                }
            record = {
                "epoch": epoch,
                "step": step,
                "beta": beta,
                # -(beta-weighted ELBO) per image over the applied steps: the objective minimised
                "train_loss": loss_sum / seen if seen else math.nan,
                "skipped_steps": sum(skipped.values()),
                **({"skipped": dict(skipped)} if skipped else {}),
                **({"new_levels": new_levels} if new_levels else {}),  # steps applied after 5 spikes in a row
                **({"free_bits_steps": dict(freed)} if freed else {}),  # per group: steps its KL was free
                "grad_norm_median": statistics.median(norms) if norms else None,
                **validation,
                "lr": decayed_lr(config, steps_per_epoch, step),  # in force after the epoch's last step
                "precision": precision,
                "seconds": seconds,
                "images_per_s": processed / seconds,
            }
            scores = [r["val_elbo"] for r in history if "val_elbo" in r]
            best = "val_elbo" in record and (not scores or record["val_elbo"] > max(scores))
            check_scores(record, epoch)
            history.append(record)
            close_epoch(
                run_dir,
                {
                    "kind": kind,
                    "model_config": vae.config.to_dict(),
                    "svi_config": config.to_dict(),
                    "model": scored.state_dict(),  # the moving average when there is one
                    **(
                        {"train_model": vae.state_dict(), "ema_averaged": int(ema.n_averaged)}
                        if ema is not None
                        else {}
                    ),
                    "optimizer": optimise.state_dict(),
                    "rng": {"shuffle": shuffle.get_state(), **_rng_state()},
                    "epoch": epoch,
                    "step": step,
                    "history": history,
                    "meta": meta or {},
                },
                record,
                {"steps.jsonl": step_log},
                best=best,
            )
        except Exception:
            if dist.active:
                rank0_verdict(False, dev)  # the other ranks stop too, instead of waiting
            raise
        if progress:
            print(json.dumps(record), file=sys.stderr)
        if dist.active:
            rank0_verdict(True, dev)
    return history
