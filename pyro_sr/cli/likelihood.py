"""``pyro-sr likelihood``: conditional bits/dim on the CIFAR-10 test images."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import (
    add_cifar_dir_args,
    add_degradation_args,
    add_model_arg,
    count,
    degradation,
    natural,
)
from pyro_sr.common import seed_everything, set_threads, write_json
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.likelihood import IW_SAMPLES, format_likelihood_table, likelihood_rows


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    lk = sub.add_parser(
        "likelihood",
        parents=[common],
        help="conditional bits/dim -log2 p(HR | LR) on the CIFAR-10 test images",
        description="Bits per HR dimension of the 8-bit CIFAR-10 test images (exact for a VAE with a discrete "
        "likelihood, else on dequantised images; the table says which): VAEs by the ELBO and the "
        "importance-weighted bound with K samples; CNNs (and bicubic) as a Normal around their prediction whose "
        "scale is fitted on the validation split.",
    )
    add_model_arg(lk, several=True)
    add_cifar_dir_args(lk)
    add_degradation_args(lk)
    lk.add_argument("--num-samples", type=count, default=IW_SAMPLES, help="importance samples K (default: %(default)s)")
    lk.add_argument("--limit", type=count, help="only the first N test images")
    lk.add_argument("--seed", type=natural, default=0, help="random seed of the guide's draws (default: %(default)s)")
    lk.add_argument("--out", type=Path, help="also write the table as JSON here")
    lk.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    seed_everything(args.seed)
    deg = degradation(args)
    pairs = load_pairs("cifar10", "test", deg, args.data_dir, args.download, args.val_size).first(args.limit)
    fit_pairs = load_pairs("cifar10", "val", deg, args.data_dir, args.download, args.val_size)
    rows = likelihood_rows(args.models, pairs, fit_pairs, deg, args.num_samples, args.device)
    print(format_likelihood_table(rows))
    if args.out:
        write_json(args.out, {"data": "cifar10 test", "images": len(pairs), "degradation": vars(deg), "results": rows})
        print(f"wrote {args.out}")
    return 0
