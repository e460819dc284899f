"""Score a judge trained by ``pyro-sr fit judge`` on the CIFAR-10 test images and write it as the bundled judge.

python scripts/bundle_judge.py runs/judge-e12 --data-dir ../shared/data/cifar10

Its metadata then holds its training command and history, and its accuracy (with the test-time flip) on the test
images and on the 64 bundled ones, which the tests check it still reproduces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyro_sr.data.datasets import load_bundled_labels, load_bundled_sample, load_cifar10_labeled
from pyro_sr.training.judge import judge_accuracy
from pyro_sr.weights.judge import bundled_judge_path, load_judge
from pyro_sr.weights.loading import export_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (its best.pt) or checkpoint file")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with cifar10_test.npz")
    args = parser.parse_args()
    checkpoint = args.run / "best.pt" if args.run.is_dir() else args.run
    judge = load_judge(checkpoint).judge
    images, labels = load_cifar10_labeled("test", args.data_dir, labels_required=True)
    metrics = {
        "cifar10_test_images": len(images),
        "cifar10_test_accuracy": judge_accuracy(judge, images, labels),
        "bundled_sample_accuracy": judge_accuracy(judge, load_bundled_sample(), load_bundled_labels()),
    }
    export_weights(checkpoint, bundled_judge_path(), metrics)
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
