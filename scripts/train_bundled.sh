#!/usr/bin/env bash
# The exact commands that trained and bundled pyro-sr's shipped CNN weights (2-core CPU, see docs/results.md).
# Usage: scripts/train_bundled.sh [CIFAR10_DIR]   (default ../shared/data/cifar10)
set -euo pipefail
DATA=${1:-../shared/data/cifar10}
pyro-sr fit cnn --arch seed --data cifar10 --data-dir "$DATA" --out runs/seed-paper --threads 1
pyro-sr fit cnn --arch resnet --epochs 18 --data cifar10 --data-dir "$DATA" --out runs/resnet --threads 1
python scripts/bundle_weights.py runs/seed-paper seed-cnn --data-dir "$DATA"
python scripts/bundle_weights.py runs/resnet cnn --data-dir "$DATA"
pyro-sr evaluate --data cifar10 --split test --data-dir "$DATA" seed-cnn cnn --out docs/cifar10_test.json
