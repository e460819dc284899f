"""``pyro-sr models``: what the bundled models (or the named ones) are, how they were trained and sampled."""

from __future__ import annotations

import argparse

from pyro_sr.weights.loading import MODEL_HELP


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser, sampling) -> None:
    models = sub.add_parser(
        "models", help="list the bundled models (or describe named ones): training, sampling, test PSNR"
    )
    models.add_argument("model", nargs="*", help=f"{MODEL_HELP} (default: every bundled model)")
    models.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pyro_sr.catalog import format_cards, model_cards

    print(format_cards(model_cards(args.model)))
    return 0
