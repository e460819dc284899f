"""What every part of pyro-sr shares: the error hierarchy, choosing the device, seeding, threads and atomic writes.

It imports nothing else from the package, so any module may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
T = TypeVar("T")


class PyroSRError(Exception):
    """A mistake of the user's or a broken input; the message is one line meant for the user."""


class DataError(PyroSRError, ValueError):
    """A data source is missing or malformed."""


class ImageError(PyroSRError, ValueError):
    """A file cannot be read as an image."""


class CheckpointError(PyroSRError, ValueError):
    """A checkpoint cannot be used."""


class TrainingError(PyroSRError, RuntimeError):
    """Training cannot go on (for example a non-finite loss); the last good checkpoint is kept."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` means CUDA when there is one."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; choose from {DEVICE_CHOICES}")
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """torch's CPU threads; None keeps torch's choice."""
    if threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    """Seed torch, Python and NumPy (through Pyro), so that samples and scores are the same on every run."""
    import pyro

    pyro.set_rng_seed(seed)


def progress(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", unit: str = "batch") -> Any:
    """A tqdm bar on stderr when stderr is a terminal (never in logs, pipes or tests): over ``iterable``, or,
    without one, a bar of ``total`` that the caller ``update()``s."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=None, leave=False, mininterval=1)


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result into place, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_dir(path: str | Path, what: str = "--out") -> Path:
    """Prove that files can be written in the folder ``path`` before any work is done, without creating it: a
    run that fails later leaves no empty folder behind. The nearest existing ancestor is tested when it does
    not exist yet."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PyroSRError(f"cannot write to {what} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise PyroSRError(f"cannot write to {what} {path}: {err.strerror or err}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, value: Any) -> None:
    """Indented JSON with a final newline, written atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=2) + "\n"))
