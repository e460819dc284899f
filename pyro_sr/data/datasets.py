"""Datasets of (LR, HR) pairs, held in memory so the training loop slices tensors instead of calling Python per item.

Sources: CIFAR-10 (torchvision download, a local ``cifar-10-batches-py`` folder, or the ``cifar10_{split}.npz``
layout), the small CIFAR-10 sample shipped in the package, and any folder of images (random HR crops).
"""

from __future__ import annotations

import math
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from pyro_sr.common import DataError
from pyro_sr.data.degradation import Degradation
from pyro_sr.data.images import IMAGE_SUFFIXES, load_rgb

CIFAR10_SPLITS = ("train", "test")
DEFAULT_VAL_SIZE = 5000
DEFAULT_SPLIT_SEED = 0


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 in [0, 1]."""
    return images_uint8.float().div_(255.0)


def hwc_to_tensor(images: np.ndarray, source: str | Path = "the data") -> torch.Tensor:
    """uint8 (N, H, W, 3) array -> uint8 (N, 3, H, W) tensor."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{source}: expected uint8 images of shape (N, H, W, 3), got {images.dtype} {tuple(images.shape)}"
        )
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _read_cifar_batches(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    chunks, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 batch file missing: {path}")
        try:
            with path.open("rb") as f:
                entry = pickle.load(f, encoding="latin1")
            chunks.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(entry["labels"], dtype=np.int64))
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError, IndexError) as err:
            raise DataError(f"not a CIFAR-10 batch file: {path} ({err})") from None
    return np.concatenate(chunks).transpose(0, 2, 3, 1), np.concatenate(labels)


def _read_npz(path: Path, name: str = "images", optional: bool = False) -> np.ndarray | None:
    """The ``name`` array of an ``.npz`` archive (None if it has none and it is ``optional``); any damage (empty,
    truncated, not an archive, no such array, objects instead of numbers) is one :class:`DataError`."""
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # numpy would read anything else as a pickle it refuses to load
        archive = np.load(path, allow_pickle=False) if zipped else None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is not an .npz archive of arrays")
        with archive:
            if name not in archive.files and optional:
                return None
            if name not in archive.files:
                raise DataError(f"{path} holds no {name!r} array (it has {sorted(archive.files)})")
            return archive[name]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise DataError(f"cannot read {name} from {path}: {reason}") from None


def _labels_tensor(labels: np.ndarray, count: int, source: str | Path) -> torch.Tensor:
    labels = np.asarray(labels)
    valid = labels.shape == (count,) and labels.dtype.kind in "iu"
    if not valid or (count and not 0 <= labels.min() <= labels.max() < 10):
        raise DataError(f"{source} does not hold one CIFAR-10 class (0-9) per image")
    return torch.from_numpy(labels.astype(np.int64))


def load_cifar10_labeled(
    split: str, data_dir: str | Path | None = None, download: bool = False, labels_required: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CIFAR-10 HR images of one split as uint8 (N, 3, 32, 32) and their classes, int64 (N,), or None for an
    ``.npz`` that holds only images (which every super-resolver accepts; the judge needs the classes: with
    ``labels_required`` such an ``.npz`` is an error).

    ``data_dir`` may hold ``cifar10_{split}.npz``, a ``cifar-10-batches-py`` folder, or be that folder itself.
    With ``download=True`` torchvision fetches the official archive into ``data_dir`` first.
    """
    if split not in CIFAR10_SPLITS:
        raise DataError(f"unknown CIFAR-10 split {split!r}; choose from {CIFAR10_SPLITS}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if download:
        from torchvision.datasets import CIFAR10

        dataset = CIFAR10(str(root), train=split == "train", download=True)
        return hwc_to_tensor(dataset.data), _labels_tensor(np.asarray(dataset.targets), len(dataset.data), root)
    npz = root / f"cifar10_{split}.npz"
    if npz.is_file():
        images = hwc_to_tensor(_read_npz(npz), npz)
        labels = _read_npz(npz, "labels", optional=not labels_required)
        return images, None if labels is None else _labels_tensor(labels, len(images), npz)
    for folder in (root / "cifar-10-batches-py", root):
        if (folder / "batches.meta").is_file() or (folder / "test_batch").is_file():
            images, labels = _read_cifar_batches(folder, split)
            return hwc_to_tensor(images), _labels_tensor(labels, len(images), folder)
    raise DataError(
        f"no CIFAR-10 found in {root}: expected cifar10_{split}.npz or a cifar-10-batches-py folder "
        "(pass --download to fetch it)"
    )


def load_cifar10(split: str, data_dir: str | Path | None = None, download: bool = False) -> torch.Tensor:
    """CIFAR-10 HR images of one split as uint8 (N, 3, 32, 32); see :func:`load_cifar10_labeled`."""
    return load_cifar10_labeled(split, data_dir, download)[0]


def default_data_dir() -> Path:
    return Path.home() / ".cache" / "pyro_sr" / "cifar10"


def load_bundled_sample() -> torch.Tensor:
    """The first 64 CIFAR-10 test images shipped with the package, uint8 (64, 3, 32, 32)."""
    with resources.as_file(resources.files("pyro_sr.assets") / "cifar10_test_sample.npz") as path:
        return hwc_to_tensor(_read_npz(path))


def load_bundled_labels() -> torch.Tensor:
    """The CIFAR-10 classes of :func:`load_bundled_sample`'s images, int64 (64,)."""
    with resources.as_file(resources.files("pyro_sr.assets") / "cifar10_test_sample.npz") as path:
        return _labels_tensor(_read_npz(path, "labels"), 64, path)


def train_val_split(
    n: int, val_size: int = DEFAULT_VAL_SIZE, seed: int = DEFAULT_SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a fixed random hold-out of ``val_size`` images."""
    if not 0 <= val_size < n:
        raise DataError(f"validation size {val_size} must be in [0, {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


@dataclass
class PairedImages:
    """HR images kept as uint8 and their LR inputs precomputed once by the degradation; for CIFAR-10 also the
    images' classes, which the realism judge scores SR outputs against."""

    hr: torch.Tensor  # uint8 (N, 3, H, W)
    lr: torch.Tensor  # float32 (N, 3, H / scale, W / scale)
    labels: torch.Tensor | None = None  # int64 (N,) CIFAR-10 classes, where known

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape != (len(self.hr),):
            raise DataError(f"expected one label per image ({len(self.hr)}), got shape {tuple(self.labels.shape)}")

    @classmethod
    def from_hr(
        cls,
        hr_uint8: torch.Tensor,
        degradation: Degradation,
        chunk: int = 4096,
        labels: torch.Tensor | None = None,
    ) -> PairedImages:
        lr = torch.cat([degradation(to_float(hr_uint8[i : i + chunk])) for i in range(0, len(hr_uint8), chunk)])
        return cls(hr_uint8, lr, labels)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lr[index], to_float(self.hr[index : index + 1])[0]

    def subset(self, indices: torch.Tensor) -> PairedImages:
        labels = self.labels[indices] if self.labels is not None else None
        return PairedImages(self.hr[indices], self.lr[indices], labels)

    def first(self, count: int | None) -> PairedImages:
        """The first ``count`` pairs (all of them for None), as ``--limit`` takes them."""
        return self if count is None else self.subset(torch.arange(min(count, len(self))))

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (LR, HR) float batches on ``device`` by slicing, optionally in a shuffled order; with
        ``shard=(rank, world_size)`` only every world_size-th image of each batch, from ``rank`` on (the
        process's share of a data-parallel batch)."""
        for idx in self.batch_indices(batch_size, shuffle, generator, shard):
            yield self.lr[idx].to(device), to_float(self.hr[idx].to(device))

    def batch_indices(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[torch.Tensor]:
        """The image indices of each batch :meth:`batches` yields (same order, same draws from ``generator``), for
        a caller that keeps more per-image tensors beside the pairs."""
        rank, world_size = shard
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield order[start : start + batch_size][rank::world_size]


class ImageFolderCrops:
    """Random HR crops from a folder of the user's own images, degraded on the fly; fresh crops every epoch."""

    def __init__(self, root: str | Path, degradation: Degradation, crop_size: int = 32, crops_per_epoch: int = 10000):
        if crop_size % degradation.scale:
            raise DataError(f"crop size {crop_size} is not divisible by the scale {degradation.scale}")
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder not found: {root}")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        images = [load_rgb(p) for p in paths]
        self.images = [im for im in images if min(im.shape[-2:]) >= crop_size]
        if not self.images:
            raise DataError(f"no image of at least {crop_size}x{crop_size} pixels in {root}")
        self.degradation = degradation
        self.crop_size = crop_size
        self.crops_per_epoch = crops_per_epoch

    def __len__(self) -> int:
        return self.crops_per_epoch

    def sample_crops(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n uint8 HR crops, each from a uniformly chosen image at a uniform position."""
        which = torch.randint(len(self.images), (n,), generator=generator)
        crops = []
        for i in which.tolist():
            im = self.images[i]
            top = int(torch.randint(im.shape[-2] - self.crop_size + 1, (1,), generator=generator))
            left = int(torch.randint(im.shape[-1] - self.crop_size + 1, (1,), generator=generator))
            crops.append(im[:, top : top + self.crop_size, left : left + self.crop_size])
        return torch.stack(crops)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (LR, HR) batches of fresh random crops (``shuffle`` is implied); with ``shard=(rank, world_size)``
        every process draws the same global batch from its ``generator`` and keeps every world_size-th crop from
        ``rank`` on, as ``PairedImages.batches`` does."""
        rank, world_size = shard
        for start in range(0, self.crops_per_epoch, batch_size):
            crops = self.sample_crops(min(batch_size, self.crops_per_epoch - start), generator)[rank::world_size]
            hr = to_float(crops.to(device))
            yield self.degradation(hr), hr


def load_pairs(
    data: str,
    split: str,
    degradation: Degradation,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_size: int = DEFAULT_VAL_SIZE,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> PairedImages:
    """(LR, HR) pairs of a named data set: ``cifar10`` (splits train/val/test) or ``sample`` (the bundled one)."""
    if data == "sample":
        if split != "test":
            raise DataError(f"the bundled sample holds 64 test images, no {split!r} split; use cifar10 for it")
        return PairedImages.from_hr(load_bundled_sample(), degradation, labels=load_bundled_labels())
    if data != "cifar10":
        raise DataError(f"unknown data set {data!r}; choose cifar10 or sample")
    if split == "test":
        hr, labels = load_cifar10_labeled("test", data_dir, download)
        return PairedImages.from_hr(hr, degradation, labels=labels)
    if split not in ("train", "val"):
        raise DataError(f"unknown split {split!r}; choose train, val or test")
    if split == "val" and val_size == 0:
        raise DataError("the validation split is empty: --split val needs --val-size >= 1")
    hr, labels = load_cifar10_labeled("train", data_dir, download)
    train_idx, val_idx = train_val_split(len(hr), val_size, split_seed)
    idx = train_idx if split == "train" else val_idx
    return PairedImages.from_hr(hr[idx], degradation, labels=None if labels is None else labels[idx])
