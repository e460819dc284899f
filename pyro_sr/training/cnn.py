"""Training loop for the deterministic CNN super-resolvers (MSE loss).

Every epoch writes one JSON line to ``RUN_DIR/log.jsonl`` and an atomic ``RUN_DIR/checkpoint.pt`` holding the
model, optimizer, schedule and RNG states, so ``resume=True`` continues exactly where the run stopped.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pyro_sr.common import resolve_device
from pyro_sr.data.augment import AugmentedPairs, check_augmentations
from pyro_sr.data.datasets import ImageFolderCrops, PairedImages
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.cnn import CNNConfig, ResidualSR, build_cnn, load_deepened
from pyro_sr.training.precision import autocast, check_precision, resolve_precision
from pyro_sr.training.run import (
    check_finite_loss,
    check_scores,
    check_weights,
    close_epoch,
    final_epoch,
    open_run,
    owns_run_folder,
)


@dataclass(frozen=True)
class TrainConfig:
    """How a CNN is optimised. ``paper`` and ``default`` are the named presets."""

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    grad_clip: float | None = 1.0
    seed: int = 0
    precision: str = "fp32"  # auto | fp32 | bf16 (autocast; 1.7x faster on CPUs with AVX-512 BF16 and on GPUs)
    augment: tuple[str, ...] = ()  # exact augmentations of the training images (data/augment.py), LR recomputed

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose adam or sgd")
        check_precision(self.precision)
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose cosine or constant")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
        object.__setattr__(self, "augment", check_augmentations(self.augment))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Read a checkpoint's config; runs from before ``augment`` stored ``flips: bool`` (left-right only)."""
        values = dict(values)
        if "flips" in values:
            values["augment"] = ("hflip",) if values.pop("flips") else ()
        return cls(**values)


TRAIN_PRESETS = {
    # The paper's recipe: MSE, SGD lr 1e-3 momentum 0.9, batch 4, 2 epochs.
    "paper": TrainConfig(epochs=2, batch_size=4, optimizer="sgd", lr=1e-3, schedule="constant", grad_clip=None),
    "default": TrainConfig(augment=("hflip",)),
}


def cnn_config_for(
    scale: int,
    arch: str | None = None,
    channels: int | None = None,
    blocks: int | None = None,
    init: CNNConfig | None = None,
) -> CNNConfig:
    """The architecture asked for (unset values: ``CNNConfig``'s defaults), or that of the ``init`` network a run
    starts from. Values that contradict ``init`` are refused, except more ``blocks`` for a resnet, which deepens it
    (``load_deepened``)."""
    given = {"arch": arch, "channels": channels, "blocks": blocks}
    if init is None:
        defaults = CNNConfig()
        return CNNConfig(scale=scale, **{key: getattr(defaults, key) if v is None else v for key, v in given.items()})
    deepen = init.arch == "resnet" and (blocks or 0) > init.blocks
    for key, value in given.items():
        if value is not None and value != getattr(init, key) and not (key == "blocks" and deepen):
            hint = " (a resnet can be deepened, not made shallower)" if key == "blocks" else ""
            raise ValueError(f"--{key} {value} contradicts --init, which has {key} {getattr(init, key)}{hint}")
    return replace(init, blocks=blocks) if deepen else init


def train_config_for(arch: str, recipe: str | None = None, **overrides: Any) -> TrainConfig:
    """A named recipe (``paper`` for the seed network, ``default`` otherwise, unless given) with the values that
    are not None in ``overrides`` replacing its own."""
    preset = TRAIN_PRESETS[recipe or ("paper" if arch == "seed" else "default")]
    return replace(preset, **{key: value for key, value in overrides.items() if value is not None})


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )


@torch.no_grad()
def evaluate_mse(model: nn.Module, data: PairedImages, device: torch.device, batch_size: int = 500) -> float:
    """Mean squared error over every pixel of ``data`` (the data set's MSE, not a mean of per-batch means)."""
    model.eval()
    total, count = 0.0, 0
    for lr, hr in data.batches(batch_size, device=device):
        total += float(((model(lr) - hr) ** 2).sum())
        count += hr.numel()
    model.train()
    return total / count


@owns_run_folder
def fit_cnn(
    model_config: CNNConfig,
    train_config: TrainConfig,
    train_data: PairedImages | ImageFolderCrops,
    val_data: PairedImages | None,
    run_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    degradation: Degradation | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Train a CNN with MSE; returns the per-epoch log (also written to ``run_dir/log.jsonl``). The checkpoint
    of the lowest validation MSE so far is also kept as ``run_dir/best.pt``.

    ``degradation`` (the paper's operator by default) recomputes LR inputs when ``augment`` transforms the data.
    ``init_weights`` (a state dict of the same architecture, or of a ``resnet`` with fewer blocks, which is
    deepened) starts a new run from trained weights; a resumed run takes its weights from its checkpoint.
    ``stop_after`` ends this call after that epoch, on the schedule of ``train_config.epochs`` (resume to go on)."""
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    state = open_run(run_dir, resume, "cnn", model_config.to_dict())
    if state is not None:
        train_config = replace(TrainConfig.from_dict(state["train_config"]), epochs=train_config.epochs)

    torch.manual_seed(train_config.seed)
    model = build_cnn(model_config)
    if isinstance(model, ResidualSR) and init_weights is not None:
        load_deepened(model, init_weights)
    elif init_weights is not None:
        model.load_state_dict(init_weights)
    model = model.to(dev, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, train_config)
    steps_per_epoch = math.ceil(len(train_data) / train_config.batch_size)
    scheduler = make_scheduler(optimizer, train_config, steps_per_epoch)
    shuffle = torch.Generator().manual_seed(train_config.seed)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        shuffle.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        history, start_epoch = state["history"], state["epoch"]
    last_epoch = final_epoch(train_config.epochs, stop_after, start_epoch)

    if train_config.augment:
        degradation = degradation or Degradation(scale=model_config.scale)
        train_data = AugmentedPairs(train_data, degradation, train_config.augment)
    precision = resolve_precision(train_config.precision, dev)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        model.train()
        started, seen, loss_sum = time.perf_counter(), 0, 0.0
        bar = tqdm(
            train_data.batches(train_config.batch_size, shuffle=True, generator=shuffle, device=dev),
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{train_config.epochs}",
            disable=not progress,
            mininterval=5,
            file=sys.stderr,
            leave=False,
        )
        for lr_batch, hr_batch in bar:
            with autocast(dev, precision):
                sr = model(lr_batch.contiguous(memory_format=torch.channels_last))
            loss = nn.functional.mse_loss(sr.float(), hr_batch)
            check_finite_loss(loss.item(), epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train_config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(hr_batch)
            seen += len(hr_batch)
            bar.set_postfix(mse=f"{loss_sum / seen:.5f}", refresh=False)
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "train_mse": loss_sum / seen,
            "val_mse": evaluate_mse(model, val_data, dev) if val_data is not None and len(val_data) else None,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "images_per_s": seen / seconds,
            "precision": precision,
        }
        scores = [r["val_mse"] for r in history if r["val_mse"] is not None]
        best = record["val_mse"] is not None and (not scores or record["val_mse"] < min(scores))
        check_weights(model, epoch)
        check_scores(record, epoch)
        history.append(record)
        close_epoch(
            run_dir,
            {
                "kind": "cnn",
                "model_config": model_config.to_dict(),
                "train_config": asdict(train_config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"shuffle": shuffle.get_state(), "torch": torch.get_rng_state()},
                "epoch": epoch,
                "history": history,
                "meta": meta or {},
            },
            record,
            {},
            best=best,
        )
        if progress:
            val = "" if record["val_mse"] is None else f"  val MSE {record['val_mse']:.5f}"
            print(
                f"epoch {epoch}: train MSE {record['train_mse']:.5f}{val}  ({record['images_per_s']:.0f} images/s)",
                file=sys.stderr,
            )
    return history
