"""The run-folder protocol shared by the CNN loop and the SVI loop: ``checkpoint.pt`` (atomic) and ``log.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyro_sr.common import CheckpointError
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
            log.writelines(json.dumps(r) + "\n" for r in records)
