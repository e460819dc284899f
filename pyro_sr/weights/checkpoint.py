"""Checkpoints written atomically (temp file + rename), and read back safely: ``torch.load(weights_only=True)``, so
a shared ``.pt`` file can hold tensors and plain values but never code that runs when it is loaded."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyro_sr.common import CheckpointError, atomic_write

FORMAT_VERSION = 1

# Checkpoints written before RNG states were stored in plain types hold NumPy's MT19937 state as an ndarray; these
# are the constructors such an array needs (under the module names of NumPy 1 and 2), and none of them runs code.
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_LEGACY_NUMPY_GLOBALS = [
    *((_multiarray._reconstruct, f"{module}.multiarray._reconstruct") for module in ("numpy.core", "numpy._core")),
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` (plus a format tag) so that an interrupted write never replaces a good checkpoint."""
    payload = {"format": "pyro-sr", "format_version": FORMAT_VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload of a pyro-sr checkpoint; a file that is not one, or that asks to import anything beyond
    tensors and plain values, is refused with a :class:`CheckpointError` before any of it runs."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY_GLOBALS):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not found:
            raise CheckpointError(f"not a pyro-sr checkpoint: {path} (UnpicklingError)") from None
        raise CheckpointError(
            f"refusing to load {path}: it holds {found.group(1)}, not weights, and could run code"
        ) from None
    except Exception as err:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"not a pyro-sr checkpoint: {path} ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != "pyro-sr":
        raise CheckpointError(f"not a pyro-sr checkpoint: {path}")
    return payload
