"""Reading and writing image files: any PIL-readable image in, as its pixels are meant to be seen (EXIF orientation
applied, 16-bit and float images scaled to 8 bits, alpha on white), RGB PNG out (written atomically)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pyro_sr.common import ImageError, atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_ORIENTATION = 0x0112  # the EXIF tag
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image")
    if not path.is_file():
        raise ImageError(f"image not found: {path}")


def _unreadable(path: Path, err: Exception) -> ImageError:
    if isinstance(err, Image.DecompressionBombError):
        return ImageError(f"{path} has more pixels than Pillow's safety limit ({Image.MAX_IMAGE_PIXELS}) allows")
    return ImageError(f"not a readable image: {path} ({err.__class__.__name__})")


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Around reading ``path`` with Pillow: a missing file, a folder or anything Pillow cannot read is one
    ImageError; the warning Pillow gives for very large images is left out (its hard limit still applies)."""
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None


def check_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header and checked for damage without decoding it."""
    path = Path(path)
    with _reading(path):
        with Image.open(path) as im:
            size = im.size
            im.verify()
        with Image.open(path) as im:  # verify leaves the file unusable
            transposed = im.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)  # width and height swap
    return (size[0], size[1]) if transposed else (size[1], size[0])


def _to_8bit(im: Image.Image) -> Image.Image:
    """An image of more than 8 bits per sample (16-bit or 32-bit integer, or float) scaled into 8-bit grey."""
    values = np.asarray(im, dtype=np.float64)
    top = values.max(initial=0.0)
    if im.mode.startswith("I;16"):  # 16-bit grey (PNG, TIFF): white at 65535
        full_scale = 65535.0
    elif im.mode == "F":
        full_scale = 1.0 if top <= 1.0 else 255.0
    else:  # 32-bit integers: the smallest usual range that holds the values
        full_scale = next((s for s in (255.0, 65535.0) if top <= s), top)
    return Image.fromarray(np.clip(np.rint(values / full_scale * 255.0), 0, 255).astype(np.uint8), "L")


def load_rgb(path: str | Path) -> torch.Tensor:
    """Read any image (grayscale, 16-bit, RGBA, palette, rotated by EXIF, ...) as uint8 RGB (3, H, W)."""
    path = Path(path)
    with _reading(path), Image.open(path) as opened:
        opened.load()
        im = ImageOps.exif_transpose(opened)
        if im.mode in ("I", "F") or im.mode.startswith("I;16"):
            im = _to_8bit(im)
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, rgba)
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor, rows_per_chunk: int = 256) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded; converted a band of rows at a time, so a large
    image needs no float temporaries of its own size."""
    image = image.detach()
    out = np.empty((*image.shape[-2:], 3), dtype=np.uint8)
    for top in range(0, image.shape[-2], rows_per_chunk):
        band = image[:, top : top + rows_per_chunk].clamp(0, 1).mul_(255).round_().to(torch.uint8)
        out[top : top + rows_per_chunk] = band.permute(1, 2, 0).cpu().numpy()
    return out


def save_png(image: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Save float (3, H, W) in [0, 1] or uint8 (H, W, 3) as a PNG, atomically."""
    array = to_uint8(image) if isinstance(image, torch.Tensor) else image
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
