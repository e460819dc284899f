"""Argument groups that several subcommands share, and turning them into library objects."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pyro_sr.common import DEVICE_CHOICES
from pyro_sr.data.degradation import DEGRADATIONS, SUPPORTED_SCALES, Degradation
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES, MEAN
from pyro_sr.predict.tiling import DEFAULT_TILE
from pyro_sr.weights.loading import MODEL_HELP

DATA_HELP = {
    "cifar10": "cifar10 (needs --data-dir or --download)",
    "sample": "sample (the 64 bundled test images)",
    "folder": "folder (--data-dir of images)",
}


class ArgumentParser(argparse.ArgumentParser):
    """Reports a usage mistake in one line, like every other mistake, and points at ``--help`` for the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, least: float, strict: bool) -> Callable[[str], int | float]:
    """An argparse type: a finite ``kind`` that is > ``least`` (``strict``) or >= it, else a one-line error."""
    bound = f"> {least:g}" if strict else f">= {least:g}"
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


count = _number(int, 1, strict=False)  # how many of something, where none makes no sense
natural = _number(int, 0, strict=False)
positive = _number(float, 0, strict=True)
nonnegative = _number(float, 0, strict=False)


def pixel_temperature(text: str) -> float | str:
    """``--pixel-temperature``: ``mean`` (the likelihood's mean), or a number >= 0 (a draw at that temperature)."""
    if text == MEAN:
        return MEAN
    try:
        return nonnegative(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected '{MEAN}' or a number >= 0, got {text!r}") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something: not for unset options, flags, or helps that name their own."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def common_parent() -> argparse.ArgumentParser:
    """``--device`` and ``--threads``, which every command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto uses CUDA when available")
    parent.add_argument("--threads", type=count, help="CPU threads for torch (default: torch's choice)")
    return parent


def sampling_parent() -> argparse.ArgumentParser:
    """How a probabilistic model's samples are drawn (``sample``, ``upscale``, ``evaluate``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--num-samples", type=count, help=f"samples per image of a probabilistic model (default: {DEFAULT_NUM_SAMPLES})"
    )
    parent.add_argument(
        "--temperature",
        type=nonnegative,
        nargs="+",
        metavar="T",
        help="scale of the prior, for every latent group or one per group (hvae: z1 first); 0 puts the latents at "
        "their prior mean (default: the model's own, 1.0 unless `pyro-sr calibrate` fitted one)",
    )
    parent.add_argument(
        "--pixel-temperature",
        type=pixel_temperature,
        metavar="T",
        help="'mean': a sample is the pixel likelihood's mean; a number T: a draw of the likelihood with its noise "
        "scaled by T (default: the model's own, the mean unless `pyro-sr calibrate` chose draws)",
    )
    parent.add_argument("--seed", type=natural, default=0, help="random seed of the samples (default: 0)")
    parent.add_argument(
        "--lr-consistent",
        action="store_true",
        help="project every output onto the images whose degradation is the LR input",
    )
    return parent


def add_model_arg(parser: argparse.ArgumentParser, several: bool = False, default: str | None = None) -> None:
    """``--model``: named the same way in every command."""
    if several:
        parser.add_argument(
            "--model", dest="models", nargs="+", action="extend", default=[], metavar="MODEL", help=f"{MODEL_HELP}"
        )
    else:
        required = default is None
        extra = "" if required else " (default: %(default)s)"
        parser.add_argument("--model", required=required, default=default, metavar="MODEL", help=MODEL_HELP + extra)


def add_tile_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tile", type=count, default=DEFAULT_TILE, help="LR tile size that bounds memory (default: %(default)s)"
    )


def add_data_args(
    parser: argparse.ArgumentParser, splits: tuple[str, ...], default_split: str, sources: tuple[str, ...]
) -> None:
    names = [DATA_HELP[source] for source in sources]
    parser.add_argument("--data", default="cifar10", choices=sources, help=", ".join(names[:-1]) + " or " + names[-1])
    if len(splits) > 1:
        parser.add_argument(
            "--split", choices=splits, help=f"cifar10's split (default: {default_split}; sample: its test images)"
        )
        parser.set_defaults(default_split=default_split)
    add_cifar_dir_args(parser)


def data_split(args: argparse.Namespace) -> str:
    """``--split`` as given, else the bundled sample's (test) or the command's default."""
    if args.split is not None:
        return args.split
    return "test" if args.data == "sample" else args.default_split


def add_cifar_dir_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="folder with cifar10_{train,test}.npz or cifar-10-batches-py")
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision into --data-dir")
    parser.add_argument("--val-size", type=natural, default=5000, help="images held out from train for validation")


def add_degradation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=int, default=4, choices=SUPPORTED_SCALES, help="upscaling factor (default: %(default)s)"
    )
    parser.add_argument(
        "--degradation",
        default="gaussian",
        choices=DEGRADATIONS,
        help="gaussian: the paper's blur (sigma) + subsampling at offset scale//2; bicubic: antialiased",
    )
    parser.add_argument("--sigma", type=positive, default=1.0, help="Gaussian blur sigma (default: %(default)s)")


def degradation(args: argparse.Namespace) -> Degradation:
    return Degradation(args.degradation, args.scale, args.sigma)


def temperature(args: argparse.Namespace) -> float | tuple[float, ...] | None:
    """``--temperature``: one value for every latent group, one per group, or None (the model's own)."""
    if args.temperature is None:
        return None
    return args.temperature[0] if len(args.temperature) == 1 else tuple(args.temperature)
