"""``python -m pyro_sr`` and the ``pyro-sr`` command: Ctrl-C and SIGTERM are one line each, even while the package
is importing."""

import signal
import sys

TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM (``kill``, a cluster scheduler's time limit), raised wherever the program is, so that it stops the
    way Ctrl-C does: ``finally`` blocks release a run's lock and remove a half-written temp file, and a training
    run keeps its last complete epoch for ``--resume``. Not an ``Exception``, so that no handler of errors takes
    it for one."""


def _terminate(signum, frame) -> None:
    raise Terminated


def run() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from pyro_sr.cli import main

        code = main()
    except KeyboardInterrupt:  # while importing; main() reports its own
        print("pyro-sr: interrupted", file=sys.stderr)
        code = 130
    except Terminated:
        print("pyro-sr: terminated", file=sys.stderr)
        code = TERMINATED_EXIT
    sys.exit(code)


if __name__ == "__main__":
    run()
