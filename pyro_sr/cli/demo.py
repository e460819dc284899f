"""``pyro-sr demo``: the bundled models on the bundled images."""

from __future__ import annotations

import argparse
from pathlib import Path

from pyro_sr.common import set_threads


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    demo = sub.add_parser("demo", parents=[common], help="bundled model on bundled images: a PNG grid and metrics")
    demo.add_argument("--out", type=Path, default=Path("pyro-sr-demo"), help="output folder (default: %(default)s)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyro_sr.demo import run_demo  # the whole evaluation stack: imported only for this command

    set_threads(args.threads)
    print(run_demo(args.out, device=args.device))
    return 0
