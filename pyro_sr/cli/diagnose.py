"""``pyro-sr diagnose``: the ELBO diagnostics report of a model fitted with SVI."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.cli.args import add_data_args, add_model_arg, count, data_split, natural
from pyro_sr.common import resolve_device, set_threads
from pyro_sr.data.datasets import load_pairs
from pyro_sr.diagnostics.report import DiagnoseConfig, diagnose
from pyro_sr.weights.loading import load_model

DEFAULTS = DiagnoseConfig()


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    dg = sub.add_parser(
        "diagnose",
        parents=[common],
        help="ELBO diagnostics of a fitted VAE: curves, per-group KL, IWAE gap, Pareto k-hat, calibration",
        description="Write a report folder (summary.md, PNG figures, diagnostics.nc for ArviZ) for a VAE. A run "
        "folder or a checkpoint in one brings its training logs; bundled weights their stored history.",
    )
    add_model_arg(dg)
    add_data_args(dg, ("train", "val", "test"), "test", ("cifar10", "sample"))
    dg.add_argument(
        "--images",
        type=count,
        default=DEFAULTS.images,
        help="images for the variational fit, active units and calibration (default: %(default)s)",
    )
    dg.add_argument(
        "--iw-samples",
        type=count,
        nargs="+",
        default=list(DEFAULTS.ks),
        metavar="K",
        help="importance sample sizes (default: %(default)s)",
    )
    dg.add_argument(
        "--ppc-images",
        type=count,
        default=DEFAULTS.ppc_images,
        help="images shown in the predictive figure (default: %(default)s)",
    )
    dg.add_argument(
        "--ppc-samples",
        type=count,
        default=DEFAULTS.ppc_samples,
        help="predictive draws per image (default: %(default)s)",
    )
    dg.add_argument(
        "--calibration-samples",
        type=count,
        default=DEFAULTS.calibration_samples,
        help="draws per image for the calibration over all --images (default: %(default)s)",
    )
    dg.add_argument("--seed", type=natural, default=0, help="random seed (default: %(default)s)")
    dg.add_argument(
        "--out",
        type=Path,
        help="report folder (default: the run folder's diagnostics/, or NAME-diagnostics for bundled weights)",
    )
    dg.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    dev = resolve_device(args.device)
    degradation = load_model(args.model).degradation
    pairs = load_pairs(args.data, data_split(args), degradation, args.data_dir, args.download, args.val_size)
    config = DiagnoseConfig(
        images=args.images,
        ks=tuple(args.iw_samples),
        ppc_images=args.ppc_images,
        ppc_samples=args.ppc_samples,
        calibration_samples=args.calibration_samples,
        seed=args.seed,
    )
    print(f"wrote {diagnose(args.model, pairs, args.out, config, dev)}")
    return 0
