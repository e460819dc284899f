"""The ``pyro-sr`` command line: each subcommand's module parses its arguments and calls library functions."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from pyro_sr import __version__
from pyro_sr.cli import calibrate, demo, diagnose, evaluate, fit, likelihood, models, sample, upscale
from pyro_sr.cli.args import ArgumentParser, common_parent, sampling_parent
from pyro_sr.common import PyroSRError

COMMANDS = (fit, upscale, sample, evaluate, likelihood, diagnose, calibrate, demo, models)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="pyro-sr", description="Probabilistic image super-resolution in Pyro.")
    parser.add_argument("--version", action="version", version=f"pyro-sr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common, sampling = common_parent(), sampling_parent()
    for command in COMMANDS:
        command.add_parser(sub, common, sampling)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        args.command_line = "pyro-sr " + " ".join(argv)
        return args.func(args)
    except BrokenPipeError:  # the reader stopped reading (`pyro-sr models | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is silent too
        return 128 + signal.SIGPIPE
    except (PyroSRError, ValueError, OSError) as err:
        print(f"pyro-sr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyro-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
