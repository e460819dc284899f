"""``python -m pyro_sr`` and the ``pyro-sr`` command: Ctrl-C is one line even while the package is importing."""

import sys


def run() -> None:
    try:
        from pyro_sr.cli import main
    except KeyboardInterrupt:
        print("pyro-sr: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
