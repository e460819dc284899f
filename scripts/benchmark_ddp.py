"""Data-parallel scaling (not a test): training images/s of ``fit_vae`` with 1, 2, ... processes under torchrun.

Each configuration trains the given model for one epoch on the first ``--images`` CIFAR-10 training images with
``--batch-size`` images per process, splitting ``--threads`` CPU threads evenly over the processes (on GPUs, one
process per GPU), and reads images/s from the run's log (rank 0 measures the epoch's wall time; validation is
off). Processes are started by ``torchrun``, as a user would.

    python scripts/benchmark_ddp.py --data-dir ../shared/data/cifar10 --procs 1 2 --threads 2 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pyro_sr.common import atomic_write


def worker(args: argparse.Namespace) -> None:
    import pyro
    import torch

    from pyro_sr.data.datasets import load_pairs
    from pyro_sr.data.degradation import Degradation
    from pyro_sr.models import build_model
    from pyro_sr.training.svi import SVIConfig, fit_vae

    torch.set_num_threads(args.threads_per_proc)
    train = load_pairs("cifar10", "train", Degradation(), args.data_dir)
    train = train.subset(torch.arange(args.images))
    pyro.set_rng_seed(0)
    vae = build_model(args.kind, {})
    fit_vae(
        vae,
        SVIConfig(epochs=1, batch_size=args.batch_size),
        train,
        None,
        args.bench_run,
        device=args.device,
        progress=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--kind", default="vae", choices=("vae", "hvae"))
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads over all processes")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads-per-proc", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--bench-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    rows = []
    for procs in args.procs:
        threads = max(1, args.threads // procs)
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={procs}",
                __file__,
                "--worker",
                "--data-dir",
                str(args.data_dir),
                "--kind",
                args.kind,
                "--images",
                str(args.images),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
                "--threads-per-proc",
                str(threads),
                "--bench-run",
                str(run),
            ]
            subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
            record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
        rows.append(
            {
                "processes": procs,
                "threads_per_process": threads,
                "images_per_s": record["images_per_s"],
                "seconds": record["seconds"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        report = {
            "kind": args.kind,
            "images": args.images,
            "batch_size_per_process": args.batch_size,
            "device": args.device,
            "results": rows,
        }
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
