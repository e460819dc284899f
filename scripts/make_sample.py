"""Write the bundled sample: the first 64 CIFAR-10 test images (uint8 npz, about 180 kB).

python scripts/make_sample.py ../shared/data/cifar10/cifar10_test.npz
"""

import sys

import numpy as np

SAMPLE = "pyro_sr/assets/cifar10_test_sample.npz"

if __name__ == "__main__":
    with np.load(sys.argv[1]) as test:
        np.savez_compressed(SAMPLE, images=test["images"][:64], labels=test["labels"][:64])
    print(f"wrote {SAMPLE}")
