"""Data: the degradation operator, (LR, HR) datasets and image files."""

from pyro_sr.data.datasets import (
    DataError,
    ImageFolderCrops,
    PairedImages,
    load_bundled_labels,
    load_bundled_sample,
    load_cifar10,
    load_cifar10_labeled,
    load_pairs,
    train_val_split,
)
from pyro_sr.data.degradation import Degradation, bicubic_degrade, degrade, gaussian_degrade
from pyro_sr.data.images import ImageError, load_rgb, save_png

__all__ = [
    "DataError",
    "Degradation",
    "ImageError",
    "ImageFolderCrops",
    "PairedImages",
    "bicubic_degrade",
    "degrade",
    "gaussian_degrade",
    "load_bundled_labels",
    "load_bundled_sample",
    "load_cifar10",
    "load_cifar10_labeled",
    "load_pairs",
    "load_rgb",
    "save_png",
    "train_val_split",
]
