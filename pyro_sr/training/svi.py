"""The one SVI training loop for every pyro-sr VAE (anything with ``model(lr, hr, beta)`` / ``guide(lr, hr, beta)``).

The objective is Pyro's own (``Trace_ELBO`` or, with analytic KL, ``TraceMeanField_ELBO``); the KL factor from a
:class:`~pyro_sr.training.annealing.KLSchedule` reaches the latent sites as the ``beta`` argument, where
``poutine.scale`` applies it. Every epoch writes a JSON line (train objective, the β in force, full-validation ELBO,
KL, expected log-likelihood and PSNR, and the same on a fixed slice of the training images) and an atomic
checkpoint with network, optimizer, schedule position and RNG states (also as ``best.pt`` at the best validation
ELBO so far). The Pyro param store holds exactly the network's parameters (``pyro.module``), so the network's
state_dict is the param store's content. ``steps.jsonl`` gets the per-image loss and β of every step.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import ClippedAdam
from tqdm import tqdm

from pyro_sr.common import TrainingError, resolve_device
from pyro_sr.data.datasets import ImageFolderCrops, PairedImages
from pyro_sr.metrics import mse_to_psnr
from pyro_sr.models.contract import VariationalSR
from pyro_sr.models.registry import kind_of
from pyro_sr.models.traces import paired_traces, sample_sites
from pyro_sr.training.annealing import KLSchedule
from pyro_sr.training.distributed import DataParallelSVI, all_reduce_sum, from_environment, rank0_verdict, setup
from pyro_sr.training.run import (
    check_finite_loss,
    check_scores,
    check_weights,
    close_epoch,
    divergence_as_error,
    open_run,
    owns_run_folder,
)

ELBOS = ("trace", "meanfield")
TRAIN_PROBE = 2000  # training images re-scored each epoch


@dataclass(frozen=True)
class SVIConfig:
    """How a VAE is fitted with SVI."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    final_lr_fraction: float = 0.05  # ClippedAdam's per-step decay brings lr to this fraction at the end
    clip_norm: float = 10.0
    elbo: str = "trace"  # trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)
    kl: KLSchedule = KLSchedule()
    seed: int = 0
    group_kl_weights: tuple[float, ...] | None = None  # hierarchical VAE: per-group multipliers of the KL factor

    def __post_init__(self) -> None:
        if self.group_kl_weights is not None:
            object.__setattr__(self, "group_kl_weights", tuple(float(w) for w in self.group_kl_weights))
            if min(self.group_kl_weights) < 0:
                raise ValueError(f"group KL weights must be non-negative, got {list(self.group_kl_weights)}")
        if self.elbo not in ELBOS:
            raise ValueError(f"unknown ELBO {self.elbo!r}; choose from {ELBOS}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError("epochs and batch size must be >= 1, lr > 0 and 0 < final_lr_fraction <= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def kl_weight(self, step: int) -> float | tuple[float, ...]:
        """The ``beta`` argument of model and guide at ``step``: the schedule's factor, or one per latent group."""
        factor = self.kl.factor(step)
        return factor if self.group_kl_weights is None else tuple(factor * w for w in self.group_kl_weights)

    @classmethod
    def from_dict(cls, d: dict) -> SVIConfig:
        return cls(**{**d, "kl": KLSchedule(**d["kl"])})


def make_elbo(name: str) -> Trace_ELBO:
    return TraceMeanField_ELBO() if name == "meanfield" else Trace_ELBO()


def decayed_lr(config: SVIConfig, steps_per_epoch: int, step: int) -> tuple[float, float]:
    """ClippedAdam's per-step decay factor that brings ``config.lr`` to ``final_lr_fraction`` of it after all
    epochs, and the learning rate in force at ``step``."""
    decay = config.final_lr_fraction ** (1.0 / (config.epochs * steps_per_epoch))
    return decay, config.lr * decay**step


def on_schedule(optimizer_state: dict[str, Any], lr: float, decay: float) -> dict[str, Any]:
    """A stored ClippedAdam state (parameter name -> optimizer state dict) moved onto this run's schedule: a run
    resumed with more epochs than its checkpoint's must not keep the shorter run's learning rate and decay. A
    state already on it is kept as it is, so that a resumed run continues bit for bit."""

    def moved(group: dict[str, Any]) -> dict[str, Any]:
        return group if group["lrd"] == decay else {**group, "lr": lr, "lrd": decay}

    return {
        name: {**state, "param_groups": [moved(group) for group in state["param_groups"]]}
        for name, state in optimizer_state.items()
    }


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
) -> list[dict[str, float]]:
    """Fit ``vae`` (its model/guide) with SVI; returns the per-epoch log, also written to ``run_dir/log.jsonl``.

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
    global_batch = config.batch_size * dist.world_size
    # A single process keeps the last, smaller batch; ranks drop it so that every rank has a full shard.
    steps_per_epoch = len(train_data) // global_batch if dist.active else math.ceil(len(train_data) / global_batch)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train_data)} training images do not fill one global batch of {global_batch}")
    decay, _ = decayed_lr(config, steps_per_epoch, 0)
    optimizer = ClippedAdam({"lr": config.lr, "lrd": decay, "clip_norm": config.clip_norm})
    shuffle = torch.Generator().manual_seed(config.seed)  # the same on every rank: one global order
    # A fixed slice of the training images, scored like the validation set each epoch (at beta = 1), so train
    # and validation ELBO, KL and log-likelihood can be compared.
    probe = (
        train_data.subset(torch.arange(min(len(train_data), TRAIN_PROBE))) if hasattr(train_data, "subset") else None
    )
    history: list[dict[str, float]] = []
    start_epoch, step = 0, 0
    if state is not None:
        vae.load_state_dict(state["model"])
        optimizer.set_state(
            on_schedule(state["optimizer"], decayed_lr(config, steps_per_epoch, state["step"])[1], decay)
        )
        shuffle.set_state(state["rng"]["shuffle"])
        _set_rng_state(state["rng"])
        if dist.rank:
            pyro.set_rng_seed(config.seed + dist.rank + 7919 * state["step"])  # ranks draw different latents
        history, start_epoch, step = state["history"], state["epoch"], state["step"]
    elbo = make_elbo(config.elbo)
    if dist.active:
        svi = DataParallelSVI(vae, optimizer, elbo, dist, dev)
    else:
        svi = SVI(vae.model, vae.guide, optimizer, loss=elbo)

    for epoch in range(start_epoch + 1, config.epochs + 1):
        vae.train()
        started, seen, loss_sum, beta = time.perf_counter(), 0, 0.0, config.kl.factor(step)
        step_log = []
        batches = train_data.batches(
            global_batch, shuffle=True, generator=shuffle, device=dev, shard=(dist.rank, dist.world_size)
        )
        bar = tqdm(
            itertools.islice(batches, steps_per_epoch),
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not (progress and dist.is_main),
            mininterval=5,
            file=sys.stderr,
            leave=False,
        )
        for lr_batch, hr_batch in bar:
            beta = config.kl.factor(step)
            with divergence_as_error(epoch):
                loss = svi.step(lr_batch, hr_batch, config.kl_weight(step))
            check_finite_loss(loss, epoch)
            loss_sum += loss
            seen += len(hr_batch)
            step_log.append({"step": step, "beta": beta, "loss": loss / len(hr_batch)})
            step += 1
            bar.set_postfix(loss=f"{loss_sum / seen:.1f}", beta=f"{beta:.3f}", refresh=False)
        if dist.active:
            loss_sum, seen = all_reduce_sum([loss_sum, seen], dev)
        seconds = time.perf_counter() - started
        vae.eval()
        check_weights(vae, epoch)  # on every rank: their weights are the same
        if not dist.is_main:
            history.append({"epoch": epoch, "step": step})
            if not rank0_verdict(True, dev):  # rank 0 validates and writes the checkpoint
                raise TrainingError(f"rank 0 stopped the run in epoch {epoch}; its error says why")
            continue
        try:  # rank 0: score the epoch, refuse it if anything is no longer finite, write it
            with divergence_as_error(epoch):
                validation = {
                    **(validate(vae, probe, dev, prefix="train") if probe is not None else {}),
                    **(validate(vae, val_data, dev) if val_data is not None and len(val_data) else {}),
                }
            record = {
                "epoch": epoch,
                "step": step,
                "beta": beta,
                "train_loss": loss_sum / seen,  # -(beta-weighted ELBO) per image: the objective SVI minimised
                **validation,
                "lr": decayed_lr(config, steps_per_epoch, step)[1],  # in force after the epoch's last step
                "seconds": seconds,
                "images_per_s": seen / seconds,
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
                    "model": vae.state_dict(),
                    "optimizer": optimizer.get_state(),
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
