"""Score a trained model on the CIFAR-10 test images and write it as bundled weights with its metrics.

python scripts/bundle_weights.py runs/resnet cnn --data-dir ../shared/data/cifar10
python scripts/bundle_weights.py runs/cvae-dmol-e5/calibrated.pt vae --data-dir ../shared/data/cifar10

A VAE is scored as ``pyro-sr evaluate --mean-samples 16`` scores it: its posterior mean (the likelihood's mean
averaged over 16 latent draws, what ``SuperResolver.upscale`` returns), and single samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyro

from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.evaluate import evaluate_models
from pyro_sr.metrics import METRIC_KEYS
from pyro_sr.predict.sampling import DEFAULT_NUM_SAMPLES as NUM_SAMPLES
from pyro_sr.weights.checkpoint import load_checkpoint
from pyro_sr.weights.loading import BUNDLED_MODELS, bundled_path, degradation_of, export_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="run folder or checkpoint.pt")
    parser.add_argument("name", choices=BUNDLED_MODELS, help="bundled name to write")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with cifar10_test.npz")
    args = parser.parse_args()
    pyro.set_rng_seed(0)  # the samples behind the metrics, so that rebundling the same weights gives the same numbers
    degradation = degradation_of(load_checkpoint(args.checkpoint))
    test = load_pairs("cifar10", "test", degradation, args.data_dir)
    rows = evaluate_models(
        [args.checkpoint], test, degradation, num_samples=NUM_SAMPLES, realism=False, mean_samples=NUM_SAMPLES
    )[2:]
    keys = (*METRIC_KEYS, "sample_std")  # rows[2:]: after nearest and bicubic
    scored = [{k: row[k] for k in keys if k in row} for row in rows]
    metrics = {"cifar10_test_images": len(test)}
    metrics.update(
        scored[0] if len(scored) == 1 else {f"posterior_mean_of_{NUM_SAMPLES}": scored[0], "one_sample": scored[1]}
    )
    export_weights(args.checkpoint, bundled_path(args.name), metrics, share_bundled=True)
    print(json.dumps({"name": args.name, **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
