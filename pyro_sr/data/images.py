"""Reading and writing image files: any PIL-readable image in, RGB PNG out (written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pyro_sr.common import ImageError, atomic_write

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def load_rgb(path: str | Path) -> torch.Tensor:
    """Read any image (grayscale, RGBA, palette, ...) as uint8 RGB (3, H, W); alpha is composited on white."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, rgba)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"not a readable image: {path} ({err.__class__.__name__})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded."""
    return image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def save_png(image: torch.Tensor | np.ndarray, path: str | Path) -> None:
    """Save float (3, H, W) in [0, 1] or uint8 (H, W, 3) as a PNG, atomically."""
    array = to_uint8(image) if isinstance(image, torch.Tensor) else image
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
