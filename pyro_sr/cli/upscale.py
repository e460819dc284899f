"""``pyro-sr upscale``: super-resolve image files."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import add_model_arg, add_tile_arg, temperature
from pyro_sr.common import seed_everything, set_threads
from pyro_sr.data.degradation import SUPPORTED_SCALES
from pyro_sr.predict.files import upscale_files
from pyro_sr.predict.self_ensemble import ENSEMBLE_HELP
from pyro_sr.weights.loading import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    up = sub.add_parser("upscale", parents=[common, sampling], help="super-resolve image files")
    up.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    add_model_arg(up, default=DEFAULT_MODEL)
    up.add_argument(
        "--scale", type=int, choices=SUPPORTED_SCALES, help="the scale you expect: refused unless it is the model's"
    )
    add_tile_arg(up)
    up.add_argument("--out", type=Path, required=True, help="output folder; writes OUT/<stem>.png")
    up.add_argument(
        "--self-ensemble",
        action="store_true",
        help=f"CNNs: average over the degradation's exact symmetries ({ENSEMBLE_HELP})",
    )
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    seed_everything(args.seed)
    written = upscale_files(
        args.images,
        args.model,
        args.out,
        scale=args.scale,
        device=args.device,
        tile=args.tile,
        num_samples=args.num_samples,
        temperature=temperature(args),
        pixel_temperature=args.pixel_temperature,
        lr_consistent=args.lr_consistent,
        ensemble=args.self_ensemble,
    )
    for path in written:
        print(path)
    return 0
