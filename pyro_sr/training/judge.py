"""Training the realism judge (``pyro_sr.models.judge``) on labelled CIFAR-10 HR images: SGD with Nesterov momentum,
a triangular learning rate, label smoothing, random mirror images and one random shift per batch, bf16 autocast
where the hardware has it. The run folder follows the protocol of the other loops (atomic ``checkpoint.pt`` and
``best.pt`` at the best validation accuracy, ``log.jsonl``, ``--resume``)."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pyro_sr.common import resolve_device
from pyro_sr.data.datasets import to_float
from pyro_sr.models.judge import CIFARJudge, JudgeConfig
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

JUDGE_KIND = "judge"


@dataclass(frozen=True)
class JudgeTrainConfig:
    """How the judge is trained."""

    epochs: int = 12
    batch_size: int = 256
    lr: float = 0.2  # the peak of the triangular schedule
    warmup_fraction: float = 0.2  # of all steps, rising linearly to lr; then falling linearly to 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    max_shift: int = 2  # pixels; the batch is reflect-padded and cropped at one random offset
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 < self.warmup_fraction < 1:
            raise ValueError("epochs and batch size must be >= 1, lr > 0 and 0 < warmup_fraction < 1")


def judge_lr(config: JudgeTrainConfig, step: int, total_steps: int) -> float:
    """The triangular learning rate at ``step`` (0-based) of ``total_steps``: up linearly to about ``lr`` (exactly
    where ``warmup_fraction * total_steps`` is a whole step) and down linearly towards 0 at the end."""
    peak = config.warmup_fraction * total_steps
    return config.lr * min((step + 1) / peak, (total_steps - step) / (total_steps - peak))


def augment(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2; the batch shifted by one random offset of up to
    ``max_shift`` pixels each way (borders reflected)."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flip.to(images.device).view(-1, 1, 1, 1), images.flip(3), images)
    if max_shift == 0:
        return images
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    padded = F.pad(images, (max_shift,) * 4, mode="reflect")
    return padded[..., dy : dy + images.shape[-2], dx : dx + images.shape[-1]]


@torch.no_grad()
def judge_accuracy(judge: CIFARJudge, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` (float in [0, 1] or uint8) whose class the judge names (``CIFARJudge.classify``)."""
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    was_training = judge.training
    judge.eval()
    device = next(judge.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        batch = to_float(batch) if batch.dtype == torch.uint8 else batch
        correct += int((judge.classify(batch).cpu() == labels[start : start + batch_size].cpu()).sum())
    judge.train(was_training)
    return correct / len(images)


@owns_run_folder
def fit_judge(
    model_config: JudgeConfig,
    config: JudgeTrainConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    run_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Train the judge on ``train`` = (uint8 images (N, 3, 32, 32), classes (N,)); returns the per-epoch log,
    also written to ``run_dir/log.jsonl`` (train loss, validation accuracy with the test-time flip).
    ``stop_after`` ends this call after that epoch, on the schedule of ``config.epochs`` (resume to go on)."""
    run_dir = Path(run_dir)
    images, labels = train
    if len(images) != len(labels) or len(images) < 1:
        raise ValueError(f"need one label per training image, got {len(images)} images and {len(labels)} labels")
    if val is None or len(val[0]) == 0:
        raise ValueError("the judge needs validation images (--val-size >= 1): best.pt is its best validation epoch")
    dev = resolve_device(device)
    state = open_run(run_dir, resume, JUDGE_KIND, model_config.to_dict())
    if state is not None:
        config = replace(JudgeTrainConfig(**state["train_config"]), epochs=config.epochs)
    precision = resolve_precision(config.precision, dev)
    torch.manual_seed(config.seed)
    judge = CIFARJudge(model_config).to(dev, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        judge.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if state is not None:
        judge.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"]["shuffle"])
        history, start_epoch = state["history"], state["epoch"]

    last_epoch = final_epoch(config.epochs, stop_after, start_epoch)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        judge.train()
        started, loss_sum = time.perf_counter(), 0.0
        order = torch.randperm(len(images), generator=generator)
        batches = [order[i : i + config.batch_size] for i in range(0, len(images), config.batch_size)]
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", disable=not progress, mininterval=5, file=sys.stderr)
        for index, idx in enumerate(bar):
            step = (epoch - 1) * steps_per_epoch + index
            for group in optimizer.param_groups:
                group["lr"] = judge_lr(config, step, total_steps)
            batch = augment(to_float(images[idx].to(dev)), config.max_shift, generator)
            with autocast(dev, precision):
                logits = judge(batch.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), labels[idx].to(dev), label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss_sum += loss.item() * len(idx)  # the one synchronisation a step
            check_finite_loss(loss_sum, epoch)  # before the step: a diverged loss never reaches the weights
            optimizer.step()
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / len(images),
            "val_accuracy": judge_accuracy(judge, *val) if val is not None and len(val[0]) else None,
            "precision": precision,
            "seconds": seconds,
            "images_per_s": len(images) / seconds,
        }
        scores = [r["val_accuracy"] for r in history if r["val_accuracy"] is not None]
        best = record["val_accuracy"] is not None and (not scores or record["val_accuracy"] > max(scores))
        check_weights(judge, epoch)
        check_scores(record, epoch)
        history.append(record)
        checkpoint = {
            "kind": JUDGE_KIND,
            "model_config": model_config.to_dict(),
            "train_config": asdict(config),
            "model": judge.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"shuffle": generator.get_state()},
            "epoch": epoch,
            "history": history,
            "meta": meta or {},
        }
        close_epoch(run_dir, checkpoint, record, {}, best=best)
        if progress:
            val_text = "" if record["val_accuracy"] is None else f"  val accuracy {record['val_accuracy']:.4f}"
            print(f"epoch {epoch}: train loss {record['train_loss']:.4f}{val_text}", file=sys.stderr)
    return history
