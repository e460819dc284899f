"""``pyro-sr evaluate``: score nearest, bicubic and models on a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import (
    add_data_args,
    add_degradation_args,
    add_model_arg,
    count,
    data_split,
    degradation,
    temperature,
)
from pyro_sr.common import seed_everything, set_threads, write_json
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.calibration import Calibration, format_calibration_table, plot_calibration
from pyro_sr.evaluation.evaluate import evaluate_models, format_table
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES
from pyro_sr.predict.self_ensemble import ENSEMBLE_HELP


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    ev = sub.add_parser("evaluate", parents=[common, sampling], help="score bicubic, nearest and models on a data set")
    add_model_arg(ev, several=True)
    add_data_args(ev, ("train", "val", "test"), "test", ("cifar10", "sample"))
    add_degradation_args(ev)
    ev.add_argument("--limit", type=count, help="only the first N images")
    ev.add_argument("--out", type=Path, help="also write the table and the VAEs' calibration as JSON here")
    ev.add_argument(
        "--no-realism",
        action="store_true",
        help="skip the bundled CIFAR-10 judge's classifier accuracy, classifier-KID and classifier-FID "
        "(only computed for labelled 32x32 CIFAR-10 images; slow: three judge passes per output)",
    )
    ev.add_argument(
        "--mean-samples",
        type=count,
        metavar="M",
        help="score a VAE's mean row as the posterior mean from M latent draws of the pixel likelihood's mean "
        "(no pixel noise) instead of the mean of its --num-samples samples",
    )
    ev.add_argument(
        "--calibration-plot", type=Path, metavar="PNG", help="write the VAEs' calibration figure here (K >= 2)"
    )
    ev.add_argument(
        "--self-ensemble",
        action="store_true",
        help=f"score CNNs averaged over the degradation's exact symmetries ({ENSEMBLE_HELP})",
    )
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    seed_everything(args.seed)
    deg = degradation(args)
    split = data_split(args)
    pairs = load_pairs(args.data, split, deg, args.data_dir, args.download, args.val_size).first(args.limit)
    calibrations: dict[str, Calibration] = {}
    rows = evaluate_models(
        args.models,
        pairs,
        deg,
        args.device,
        DEFAULT_NUM_SAMPLES if args.num_samples is None else args.num_samples,
        temperature(args),
        args.lr_consistent,
        args.self_ensemble,
        realism=not args.no_realism,
        calibrations=calibrations,
        pixel_temperature=args.pixel_temperature,
        mean_samples=args.mean_samples,
    )
    print(format_table(rows))
    if calibrations:
        print(f"\n{format_calibration_table(calibrations)}")
    if args.calibration_plot and calibrations:
        plot_calibration(calibrations, args.calibration_plot)
        print(f"wrote {args.calibration_plot}")
    elif args.calibration_plot:
        print("no calibration plot: it needs a VAE and --num-samples >= 2")
    if args.out:
        report = {"data": args.data, "split": split, "images": len(pairs), "degradation": vars(deg)}
        calibration = {name: cal.to_dict() for name, cal in calibrations.items()}
        write_json(args.out, {**report, "results": rows, "calibration": calibration})
        print(f"wrote {args.out}")
    return 0
