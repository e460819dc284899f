"""``pyro-sr evaluate``: score nearest, bicubic and models on a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import add_data_args, add_degradation_args, add_model_arg, count, degradation
from pyro_sr.common import seed_everything, set_threads, write_json
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.evaluate import evaluate_models, format_table
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES
from pyro_sr.predict.self_ensemble import ENSEMBLE_HELP


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    ev = sub.add_parser("evaluate", parents=[common, sampling], help="score bicubic, nearest and models on a data set")
    add_model_arg(ev, several=True)
    add_data_args(ev, ("train", "val", "test"), "test", ("cifar10", "sample"))
    add_degradation_args(ev)
    ev.add_argument("--limit", type=count, help="only the first N images")
    ev.add_argument("--out", type=Path, help="also write the table as JSON here")
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
    pairs = load_pairs(args.data, args.split, deg, args.data_dir, args.download, args.val_size).first(args.limit)
    rows = evaluate_models(
        args.models,
        pairs,
        deg,
        args.device,
        DEFAULT_NUM_SAMPLES if args.num_samples is None else args.num_samples,
        args.temperature,
        args.lr_consistent,
        args.self_ensemble,
    )
    print(format_table(rows))
    if args.out:
        report = {"data": args.data, "split": args.split, "images": len(pairs), "degradation": vars(deg)}
        write_json(args.out, {**report, "results": rows})
        print(f"wrote {args.out}")
    return 0
