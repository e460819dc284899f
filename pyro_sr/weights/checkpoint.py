"""Checkpoints written atomically (temp file + rename), and read back with one clear error when they are not ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pyro_sr.common import CheckpointError, atomic_write

FORMAT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` (plus a format tag) so that an interrupted write never replaces a good checkpoint."""
    payload = {"format": "pyro-sr", "format_version": FORMAT_VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"not a pyro-sr checkpoint: {path} ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "pyro-sr":
        raise CheckpointError(f"not a pyro-sr checkpoint: {path}")
    return payload
