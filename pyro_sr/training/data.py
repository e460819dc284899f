"""The (train, validation) data a training run uses, by data set name."""

from __future__ import annotations

from pathlib import Path

import torch

from pyro_sr.common import DataError
from pyro_sr.data.datasets import ImageFolderCrops, PairedImages, load_pairs
from pyro_sr.data.degradation import Degradation

FOLDER_VAL_CROPS = 500


def training_data(
    data: str,
    degradation: Degradation,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_size: int = 5000,
    crops_per_epoch: int = 10000,
) -> tuple[PairedImages | ImageFolderCrops, PairedImages | None]:
    """CIFAR-10 train minus a held-out validation split; the bundled sample (no validation); or random crops
    of a folder of images, validated on a fixed set of crops drawn with seed 0."""
    if data == "folder":
        if data_dir is None:
            raise DataError("--data folder needs --data-dir pointing at a folder of images")
        crops = ImageFolderCrops(
            data_dir, degradation, crop_size=8 * degradation.scale, crops_per_epoch=crops_per_epoch
        )
        val_hr = crops.sample_crops(FOLDER_VAL_CROPS, torch.Generator().manual_seed(0))
        return crops, PairedImages.from_hr(val_hr, degradation)
    if data == "sample":
        return load_pairs("sample", "test", degradation), None
    train = load_pairs(data, "train", degradation, data_dir, download, val_size)
    val = load_pairs(data, "val", degradation, data_dir, download, val_size) if val_size else None
    return train, val
