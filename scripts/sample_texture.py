"""How a VAE's samples vary, against how far its mean is from the truth, on CIFAR-10 validation images, and
how much of its classifier-KID that explains. For the model's own samples (its calibrated temperature, its kind
of sample):

- the spread-skill ratio by spatial frequency band (``evaluation.calibration``), fitted on ``--fit-images``
  validation images after the scored ones;
- classifier-KID and accuracy of one sample per scored image, as drawn, and with its deviation from the mean of
  the K draws rescaled band by band by the square root of the fitted ratio: the same sample, recalibrated at every
  spatial frequency (with no rescaling it is the sample itself). The gap between the two is what a sampler
  calibrated in every band, not only overall, could gain at most from its spread; what remains is in the
  structure the draws share;
- the correlation of horizontally and vertically adjacent pixels of the draws' deviations (two draws' difference)
  and of the mean's error, for pairs within a 2x2 block and pairs across two blocks: a 2x step by pixel shuffle
  makes the former exceed the latter (a 2-pixel grid), where HR images show none.

    python scripts/sample_texture.py hvae --data-dir ../shared/data/cifar10 --threads 2 \\
        --out docs/sample_texture/hvae.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyro
import torch

from pyro_sr.api import load
from pyro_sr.common import set_threads, write_json
from pyro_sr.data.datasets import PairedImages, load_pairs, to_float
from pyro_sr.evaluation.calibration import CalibrationMetrics, frequency_bands
from pyro_sr.evaluation.evaluate import realism_for


def draws_of(model, pairs: PairedImages, num_samples: int, batch_size: int = 250) -> torch.Tensor:
    """(K, N, 3, H, W) samples, the model's own kind at its own temperature."""
    batches = range(0, len(pairs), batch_size)
    return torch.cat([model.sample(pairs.lr[i : i + batch_size], num_samples) for i in batches], 1)


def recalibrated_by_band(draws: torch.Tensor, band_ratio: torch.Tensor) -> torch.Tensor:
    """The draws with each one's deviation from their mean scaled by sqrt(ratio) in each frequency band."""
    mean = draws.mean(0)
    gain = band_ratio.sqrt()[frequency_bands(*draws.shape[-2:])]
    return mean + torch.fft.ifft2(torch.fft.fft2((draws - mean).double()) * gain).real.float()


def block_correlations(images: torch.Tensor) -> dict[str, float]:
    """Correlation of adjacent pixels (horizontal and vertical pairs pooled) within a 2x2 block and across two."""
    result = {}
    for name, start in (("within_block", 0), ("across_blocks", 1)):
        pairs = []
        for dim in (-1, -2):
            left = torch.arange(start, images.shape[dim] - 1, 2)
            first, second = images.index_select(dim, left), images.index_select(dim, left + 1)
            pairs.append(torch.stack([first.flatten(), second.flatten()]))
        result[name] = float(torch.corrcoef(torch.cat(pairs, 1))[0, 1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a VAE: bundled name, checkpoint file or run folder")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with cifar10_{train,test}.npz")
    parser.add_argument("--images", type=int, default=1000, help="validation images scored (default: 1000)")
    parser.add_argument("--fit-images", type=int, default=500, help="validation images the band ratios come from")
    parser.add_argument("--num-samples", type=int, default=8, help="draws per image (default: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, help="JSON file of the results")
    args = parser.parse_args()
    set_threads(args.threads)
    model = load(args.model, device="cpu")
    if not model.probabilistic:
        print(f"sample_texture.py: {args.model} is deterministic; it has no samples to look at", file=sys.stderr)
        return 1
    pairs = load_pairs("cifar10", "val", model.degradation, args.data_dir)
    scored = pairs.subset(torch.arange(args.images))
    fit = pairs.subset(torch.arange(args.images, args.images + args.fit_images))
    pyro.set_rng_seed(args.seed)
    fitted = CalibrationMetrics()
    fitted.update(draws_of(model, fit, args.num_samples), to_float(fit.hr))
    band_ratio = torch.from_numpy(fitted.result().band_spread_skill)
    draws, truth = draws_of(model, scored, args.num_samples), to_float(scored.hr)
    recalibrated = recalibrated_by_band(draws, band_ratio)
    realism = realism_for(scored, torch.device("cpu"))
    rows = {}
    for name, kind in (("as drawn", draws), ("recalibrated by band", recalibrated)):
        calibration = CalibrationMetrics()
        calibration.update(kind, truth)
        realism.reset()
        realism.update(kind[0], scored.labels)
        rows[name] = {**realism.result(), "band_spread_skill": calibration.result().band_spread_skill.tolist()}
    texture = {
        "draws (difference of two)": block_correlations(draws[0] - draws[1]),
        "error of the mean": block_correlations(truth - draws.mean(0)),
    }
    result = {
        "command": " ".join(sys.argv),
        "model": model.name,
        "images": len(scored),
        "fit_images": len(fit),
        "num_samples": args.num_samples,
        "fitted_band_spread_skill": band_ratio.tolist(),
        "samples": rows,
        "adjacent_pixel_correlation": texture,
    }
    if args.out:
        write_json(args.out, result)
    print(f"ratio by band, fitted on {len(fit)} images: " + ", ".join(f"{r:.2f}" for r in band_ratio.tolist()))
    print("| one sample per image | classifier-KID | accuracy | ratio by band, coarse first |")
    print("|---|---:|---:|---|")
    for name, row in rows.items():
        bands = ", ".join(f"{r:.2f}" for r in row["band_spread_skill"])
        print(f"| {name} | {row['classifier_kid']:.4f} | {row['classifier_accuracy']:.3f} | {bands} |")
    print(json.dumps({"adjacent_pixel_correlation": texture}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
