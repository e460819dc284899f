"""Does `pyro-sr upscale` beat bicubic on real photos? Each photo is cropped to a multiple of the scale,
degraded with the paper's operator and saved as an 8-bit PNG (the LR input a user would have), upscaled through
the same function `pyro-sr upscale` uses, and scored against the original.

    python scripts/photo_check.py PHOTO... --model cnn --out photo_check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyro_sr.data.datasets import to_float
from pyro_sr.data.degradation import Degradation
from pyro_sr.data.images import load_rgb, save_png
from pyro_sr.metrics import per_image_psnr
from pyro_sr.models.blocks import bicubic_upscale
from pyro_sr.predict.files import upscale_files
from pyro_sr.weights.loading import DEFAULT_MODEL, load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=Path("photo_check"))
    args = parser.parse_args()
    degradation = load_model(args.model).degradation
    scale = degradation.scale
    rows = []
    for photo in args.photos:
        hr = load_rgb(photo)
        hr = to_float(hr[:, : hr.shape[1] // scale * scale, : hr.shape[2] // scale * scale].unsqueeze(0))
        lr_path = args.out / "lr" / f"{photo.stem}.png"
        save_png(Degradation(degradation.kind, scale, degradation.sigma)(hr)[0], lr_path)
        (sr_path,) = upscale_files([lr_path], args.model, args.out / "sr")
        lr = to_float(load_rgb(lr_path)).unsqueeze(0)
        bicubic = bicubic_upscale(lr, scale).clamp(0, 1).mul(255).round().div(255)
        save_png(bicubic[0], args.out / "bicubic" / f"{photo.stem}.png")
        sr = to_float(load_rgb(sr_path)).unsqueeze(0)
        rows.append(
            {
                "photo": photo.name,
                "hr_size": list(hr.shape[-2:]),
                "bicubic_psnr": float(per_image_psnr(bicubic, hr)[0]),
                "model_psnr": float(per_image_psnr(sr, hr)[0]),
            }
        )
        print(
            f"{photo.name}: {hr.shape[-1]}x{hr.shape[-2]}  bicubic {rows[-1]['bicubic_psnr']:.2f} dB  "
            f"{args.model} {rows[-1]['model_psnr']:.2f} dB"
        )
    (args.out / "photo_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
