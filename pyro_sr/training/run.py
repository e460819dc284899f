"""The run-folder protocol shared by the CNN loop and the SVI loop: ``checkpoint.pt`` (atomic), ``log.jsonl``
(strict JSON lines, rebuilt from the checkpoint on resume) and ``.lock``, which one training run holds at a time."""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch

from pyro_sr.common import CheckpointError, TrainingError, atomic_write
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.registry import model_kind
from pyro_sr.training.distributed import from_environment
from pyro_sr.weights.checkpoint import load_checkpoint, save_checkpoint

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not protected there
    fcntl = None

T = TypeVar("T")


def run_meta(degradation: Degradation, data: str, command: str) -> dict[str, Any]:
    """What a checkpoint records about its run: the degradation, the data and the command that made it."""
    return {"degradation": vars(degradation), "data": data, "command": command}


LOCK_FILE = ".lock"
RUN_FILES = ("checkpoint.pt", "best.pt", "log.jsonl", "steps.jsonl")  # what a training run writes


def owns_run_folder(fit: Callable[..., T]) -> Callable[..., T]:
    """Decorate a training loop whose ``run_dir`` argument is its run folder: for the whole call the folder is
    locked (a second writer is refused at once, see ``run_lock``); under torchrun only rank 0 writes, and locks."""
    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def locked(*args: Any, **kwargs: Any) -> T:
        if not from_environment().is_main:
            return fit(*args, **kwargs)
        with run_lock(Path(signature.bind(*args, **kwargs).arguments["run_dir"])):
            return fit(*args, **kwargs)

    return locked


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (created if needed): another process that asks for it, to train
    into or resume the same run, gets a CheckpointError. Temp files that killed writes left behind are removed;
    a folder made here that ends with nothing in it (the run failed before its first epoch) is removed again."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / LOCK_FILE).open("a+") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                raise CheckpointError(
                    f"{run_dir} is in use by another training run ({holder}); wait for it or choose another --out"
                ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        for name in RUN_FILES:  # atomic_write's temp files of a killed run: no other run writes them now
            for stale in run_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        try:
            yield
        finally:
            lock.truncate(0)
            if created and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
                (run_dir / LOCK_FILE).unlink()
                run_dir.rmdir()


def stored_progress(run_dir: Path) -> tuple[int, int]:
    """The epochs a run was started for (what ``--resume`` without ``--epochs`` continues to) and the epochs its
    checkpoint has trained."""
    state = load_checkpoint(run_dir / "checkpoint.pt")
    config = state.get("train_config") or state.get("svi_config") or {}
    if "epochs" not in config:
        raise CheckpointError(f"{run_dir / 'checkpoint.pt'} holds no training configuration to resume")
    return int(config["epochs"]), int(state.get("epoch", 0))


def final_epoch(epochs: int, stop_after: int | None, trained: int) -> int:
    """The last epoch one call of a training loop runs. ``stop_after`` ends the call early while the learning
    rate keeps the schedule of all ``epochs``, so a later resume continues as if the run had never stopped (a
    run split across sessions); ``trained`` is the epochs the resumed checkpoint holds."""
    if stop_after is None:
        return epochs
    if not 1 <= stop_after <= epochs:
        raise ValueError(f"stop after epoch {stop_after}: the schedule has epochs 1-{epochs}")
    if stop_after <= trained:
        raise ValueError(f"stop after epoch {stop_after}: the run has already trained epochs 1-{trained}")
    return stop_after


def open_run(run_dir: Path, resume: bool, kind: str, model_config: dict) -> dict[str, Any] | None:
    """The checkpoint to resume (checked to hold the same model), or None for a new run; an existing run is
    never overwritten without ``resume``. On resume the logs are rewritten to match the checkpoint, so lines a
    kill cut off (or wrote after the checkpoint) are neither lost nor doubled."""
    path = run_dir / "checkpoint.pt"
    if not resume:
        if path.exists():
            raise CheckpointError(f"{path} exists; pass --resume to continue it or choose another --out")
        return None
    state = load_checkpoint(path)
    same_kind = _kind_name(state.get("kind")) == _kind_name(kind)
    if not same_kind or state.get("model_config") != model_config:
        raise CheckpointError(f"{path} was written for another model; cannot resume with this one")
    if from_environment().is_main:
        _rebuild_logs(run_dir, state)
    return state


def _rebuild_logs(run_dir: Path, state: dict[str, Any]) -> None:
    """``log.jsonl`` from the checkpoint's history; ``steps.jsonl`` cut to the steps the checkpoint has taken."""
    write_lines(run_dir / "log.jsonl", state["history"])
    steps = run_dir / "steps.jsonl"
    if "step" in state and steps.exists():
        kept = []
        for line in steps.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed append
                continue
            if record.get("step", math.inf) < state["step"]:
                kept.append(record)
        write_lines(steps, kept)


def write_lines(path: Path, records: list[dict]) -> None:
    """A JSON-lines file (strict JSON: no NaN or Infinity), written atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(_json_line(r) for r in records)))


def diverged(epoch: int, what: str) -> TrainingError:
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no checkpoint was written"
    return TrainingError(f"training diverged in epoch {epoch}: {what}; {kept}")


def check_finite_loss(loss: float, epoch: int) -> None:
    """Stop on a non-finite loss, before the step that would spread it into the weights."""
    if not math.isfinite(loss):
        raise diverged(epoch, f"the loss became {loss}")


@contextmanager
def divergence_as_error(epoch: int) -> Iterator[None]:
    """Turn Pyro's distribution-argument check failing on NaN or infinite parameters (a multi-line dump of
    tensors) into one line; any other error passes unchanged."""
    try:
        yield
    except ValueError as err:
        if "invalid values" not in str(err):
            raise
        found = re.search(r"Expected parameter (\w+) .*? of distribution (\w+)", str(err))
        where = f" (the {found.group(1)} of a {found.group(2)})" if found else ""
        raise diverged(epoch, f"a distribution's parameter became NaN or infinite{where}") from None


def check_weights(module: torch.nn.Module, epoch: int) -> None:
    """Refuse to keep an epoch whose weights are not all finite, so a kept checkpoint never holds NaN."""
    weights = module.state_dict().items()
    bad = [name for name, value in weights if value.is_floating_point() and not value.isfinite().all()]
    if bad:
        raise diverged(epoch, f"{len(bad)} weight tensors are no longer finite (first: {bad[0]})")


def check_scores(record: dict[str, Any], epoch: int) -> None:
    """Refuse to keep an epoch whose scores are not finite (a PSNR of +inf, an exact reconstruction, aside)."""
    bad = [key for key, value in record.items() if isinstance(value, float) and not _healthy(key, value)]
    if bad:
        raise diverged(epoch, f"{bad[0]} is {record[bad[0]]}")


def _healthy(key: str, value: float) -> bool:
    """Finite, or a PSNR of +inf (an exact reconstruction)."""
    return math.isfinite(value) or (key.endswith("_psnr") and value == math.inf)


def _json_line(record: dict[str, Any]) -> str:
    """One strict-JSON line: a non-finite number (which JSON cannot hold) is written as null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def _kind_name(kind: object) -> str | None:
    """A registered super-resolver kind by its current name (legacy names included); another run's (the judge's)
    as it is."""
    if not kind:
        return None
    try:
        return model_kind(str(kind)).name
    except ValueError:
        return str(kind)


def close_epoch(
    run_dir: Path, checkpoint: dict[str, Any], record: dict, logs: dict[str, list[dict]], best: bool = False
) -> None:
    """Write the epoch's checkpoint (also as ``best.pt`` when ``best``: the best validation score so far), then
    append its log lines (``logs``: file name -> JSON records)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(checkpoint, run_dir / "checkpoint.pt")
    if best:
        save_checkpoint(checkpoint, run_dir / "best.pt")
    for name, records in {"log.jsonl": [record], **logs}.items():
        with (run_dir / name).open("a") as log:
            log.writelines(_json_line(r) for r in records)
