"""``pyro-sr calibrate``: fit the latent temperature at which a VAE's samples are calibrated on held-out images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pyro_sr.cli.args import add_data_args, add_model_arg, count, data_split, natural, pixel_temperature
from pyro_sr.common import resolve_device, set_threads
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.recalibration import fit_temperature
from pyro_sr.predict.sampling import MEAN, Sampling
from pyro_sr.weights.loading import checkpoint_location, export_weights, load_model


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    cal = sub.add_parser(
        "calibrate",
        parents=[common],
        help="fit the latent temperature at which a VAE's samples are calibrated, and write weights that use it",
        description="Find the latent temperature (one for every group) at which K samples per image have a "
        "spread-skill ratio of 1 on held-out images (the validation split by default), and write the model's "
        "weights with that temperature and the chosen kind of sample as its default sampling: sample, upscale, "
        "evaluate and the Python API then draw that way unless told otherwise.",
    )
    add_model_arg(cal)
    add_data_args(cal, ("train", "val", "test"), "val", ("cifar10", "sample"))
    cal.add_argument("--limit", type=count, default=500, help="images to calibrate on (default: %(default)s)")
    cal.add_argument("--num-samples", type=count, default=8, help="samples per image K >= 2 (default: %(default)s)")
    cal.add_argument(
        "--pixel-temperature",
        type=pixel_temperature,
        default=MEAN,
        metavar="T",
        help="the kind of sample to calibrate: 'mean' (the pixel likelihood's mean) or a draw of the likelihood "
        "with its noise scaled by T (default: %(default)s)",
    )
    cal.add_argument("--seed", type=natural, default=0, help="seed of the samples (default: %(default)s)")
    cal.add_argument("--out", type=Path, required=True, help="the calibrated weights (.pt) to write")
    cal.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if args.num_samples < 2:
        raise ValueError("calibration needs --num-samples >= 2")
    if args.out.suffix != ".pt":
        raise ValueError(f"--out must name a .pt file, got {args.out}")
    loaded = load_model(args.model, resolve_device(args.device))
    if not loaded.probabilistic:
        raise ValueError(f"model {args.model!r} is deterministic; calibrate needs a VAE")
    split = data_split(args)
    pairs = load_pairs(args.data, split, loaded.degradation, args.data_dir, args.download, args.val_size)
    pairs = pairs.first(args.limit)
    pixel = None if args.pixel_temperature == MEAN else args.pixel_temperature
    fit = fit_temperature(loaded.model, pairs, args.num_samples, pixel, args.seed)
    record = {"data": args.data, "split": split, **fit.to_dict(), "command": args.command_line}
    sampling = Sampling(fit.temperature, pixel, record)
    # the stored metrics were measured with the old sampling: bundle_weights.py scores the new weights afresh
    export_weights(checkpoint_location(args.model)[0], args.out, None, sampling.to_dict())
    print(json.dumps(record))
    print(f"wrote {args.out}")
    return 0
