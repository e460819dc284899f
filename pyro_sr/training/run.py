"""The run-folder protocol shared by the CNN loop and the SVI loop: ``checkpoint.pt`` (atomic) and ``log.jsonl``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pyro_sr.common import CheckpointError, TrainingError
from pyro_sr.data.degradation import Degradation
from pyro_sr.models.registry import model_kind
from pyro_sr.weights.checkpoint import load_checkpoint, save_checkpoint


def run_meta(degradation: Degradation, data: str, command: str) -> dict[str, Any]:
    """What a checkpoint records about its run: the degradation, the data and the command that made it."""
    return {"degradation": vars(degradation), "data": data, "command": command}


def open_run(run_dir: Path, resume: bool, kind: str, model_config: dict) -> dict[str, Any] | None:
    """The checkpoint to resume (checked to hold the same model), or None for a new run; an existing run is
    never overwritten without ``resume``."""
    path = run_dir / "checkpoint.pt"
    if not resume:
        if path.exists():
            raise CheckpointError(f"{path} exists; pass --resume to continue it or choose another --out")
        return None
    state = load_checkpoint(path)
    same_kind = model_kind(str(state.get("kind"))) == model_kind(kind) if state.get("kind") else False
    if not same_kind or state.get("model_config") != model_config:
        raise CheckpointError(f"{path} was written for another model; cannot resume with this one")
    return state


def _diverged(epoch: int, what: str) -> TrainingError:
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no checkpoint was written"
    return TrainingError(f"training diverged in epoch {epoch}: {what}; {kept}")


def check_finite_loss(loss: float, epoch: int) -> None:
    """Stop on a non-finite loss, before the step that would spread it into the weights."""
    if not math.isfinite(loss):
        raise _diverged(epoch, f"the loss became {loss}")


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
        raise _diverged(epoch, f"a distribution's parameter became NaN or infinite{where}") from None


def check_epoch(module: torch.nn.Module, record: dict[str, Any], epoch: int) -> None:
    """Refuse to keep an epoch whose weights or scores are not all finite, so a kept checkpoint never holds NaN
    and the logs stay strict JSON."""
    bad = [
        name for name, value in module.state_dict().items() if value.is_floating_point() and not value.isfinite().all()
    ]
    if bad:
        raise _diverged(epoch, f"{len(bad)} weight tensors are no longer finite (first: {bad[0]})")
    scores = [key for key, value in record.items() if isinstance(value, float) and not math.isfinite(value)]
    if scores:
        raise _diverged(epoch, f"{scores[0]} is {record[scores[0]]}")


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
            log.writelines(json.dumps(r, allow_nan=False) + "\n" for r in records)
