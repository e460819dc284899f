"""Peak memory (max RSS, from ``/usr/bin/time -v``) and wall time of ``pyro-sr upscale`` against image size.

python scripts/measure_upscale_memory.py --model cnn --sizes 500 1000 2000 4000 --threads 1
python scripts/measure_upscale_memory.py --model vae --sizes 250 500 1000 --num-samples 4 --threads 1

Each LR image is uniform noise of SIZE x SIZE pixels, made in a temporary folder (what is in the image does not
change the memory a tiled pass needs). Prints a Markdown table; each row's command is the one that was timed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import pyro_sr


def measure(command: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of a command run under ``/usr/bin/time -v``."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(clock.split(":"))))
    return rss_kb / 1024**2, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000], help="LR pixels a side")
    parser.add_argument("--num-samples", type=int, help="probabilistic models: samples per image")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    scale = pyro_sr.load(args.model, device="cpu").scale
    print("| model | LR size | SR size | peak RSS (GB) | wall (s) | command |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for size in args.sizes:
            image = Path(tmp) / f"lr{size}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(image)
            command = ["pyro-sr", "upscale", str(image), "--model", args.model, "--out", f"{tmp}/out{size}"]
            command += ["--device", "cpu", "--threads", str(args.threads)]
            if args.num_samples:
                command += ["--num-samples", str(args.num_samples)]
            rss, seconds = measure(command)
            shown = " ".join(c if not c.startswith(tmp) else Path(c).name for c in command)
            sr = f"{scale * size}x{scale * size}"
            print(f"| {args.model} | {size}x{size} | {sr} | {rss:.2f} | {seconds:.0f} | `{shown}` |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
