"""``pyro-sr sample``: draw super-resolutions from a probabilistic model, of image files or of a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import add_data_args, add_model_arg, add_tile_arg, count, data_split, temperature
from pyro_sr.common import seed_everything, set_threads
from pyro_sr.data.datasets import load_pairs
from pyro_sr.predict.files import GRID_MAX_SIDE, sample_image_files, sample_to_files
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES
from pyro_sr.weights.loading import load_model


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    sm = sub.add_parser("sample", parents=[common, sampling], help="draw super-resolutions from a VAE")
    add_model_arg(sm)
    sm.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="LR images (else --data images)")
    add_data_args(sm, ("train", "val", "test"), "test", ("cifar10", "sample"))
    sm.add_argument("--limit", type=count, default=8, help="with --data: the first N images (default: %(default)s)")
    add_tile_arg(sm)
    sm.add_argument(
        "--out",
        type=Path,
        required=True,
        help=f"writes <name>.png (mean), _sample<k>, _std and, up to {GRID_MAX_SIDE} pixels a side, _grid",
    )
    sm.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    seed_everything(args.seed)
    loaded = load_model(args.model, args.device)
    num_samples = DEFAULT_NUM_SAMPLES if args.num_samples is None else args.num_samples
    options = {
        "temperature": temperature(args),
        "pixel_temperature": args.pixel_temperature,
        "tile": args.tile,
        "lr_consistent": args.lr_consistent,
    }
    if args.images:
        sample_image_files(loaded, args.images, args.out, num_samples, **options)
    else:
        split = data_split(args)
        pairs = load_pairs(args.data, split, loaded.degradation, args.data_dir, args.download, args.val_size)
        pairs = pairs.first(args.limit)
        names = [f"{args.data}_{split}_{i:05d}" for i in range(len(pairs))]
        lr, hr = next(pairs.batches(len(pairs), device=loaded.device))
        sample_to_files(loaded, lr, names, args.out, num_samples, hr=hr, **options)
    print(f"wrote samples to {args.out}")
    return 0
