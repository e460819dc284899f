"""Speed of the CNNs (not a test): training throughput and inference time, on CPU or GPU.

python scripts/benchmark.py --threads 2 [--device cuda] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from pyro_sr.common import resolve_device
from pyro_sr.models.cnn import CNNConfig, build_cnn
from pyro_sr.predict.tiling import super_resolve
from pyro_sr.training.cnn import TRAIN_PRESETS, make_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(arch: str, batch_size: int, device: torch.device, seconds: float, bf16: bool = False) -> float:
    """Images per second of MSE training steps with the arch's recipe optimizer (optionally under bf16
    autocast, as ``--precision bf16``), after 3 warm-up steps."""
    model = build_cnn(CNNConfig(arch=arch)).to(device)
    recipe = TRAIN_PRESETS["paper" if arch == "seed" else "default"]
    optimizer = make_optimizer(model, recipe)
    lr, hr = torch.rand(batch_size, 3, 8, 8, device=device), torch.rand(batch_size, 3, 32, 32, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            sr = model(lr)
        torch.nn.functional.mse_loss(sr.float(), hr).backward()
        optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    _sync(device)
    return steps * batch_size / (time.perf_counter() - start)


@torch.no_grad()
def inference_seconds(arch: str, shape: tuple[int, ...], device: torch.device, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of super-resolving a batch of LR images of ``shape``."""
    model = build_cnn(CNNConfig(arch=arch)).to(device).eval()
    lr = torch.rand(*shape, device=device)
    super_resolve(model, lr, 4)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        super_resolve(model, lr, 4)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per training measurement")
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "train_images_per_s": {
            "seed (SGD, batch 4)": train_throughput("seed", 4, device, args.seconds),
            "seed (batch 32)": train_throughput("seed", 32, device, args.seconds),
            "resnet (Adam, batch 32)": train_throughput("resnet", 32, device, args.seconds),
            "resnet (Adam, batch 32, bf16)": train_throughput("resnet", 32, device, args.seconds, bf16=True),
        },
        "inference_seconds": {
            f"{arch}: {label}": inference_seconds(arch, shape, device)
            for arch in ("seed", "resnet")
            for label, shape in (
                ("1000 CIFAR images 8x8->32x32", (1000, 3, 8, 8)),
                ("one 128x128->512x512", (1, 3, 128, 128)),
            )
        },
    }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
