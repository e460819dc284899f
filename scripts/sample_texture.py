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
- the power of one sample and of the mean of the K in each band, over the truth's: a sample that looks real has
  about the truth's power at every scale;
- where that shared structure falls short: classifier-KID of the sample with its frequency bands below a
  cut-off replaced by the truth's (the sample's detail on the true coarse image), and with those above it
  replaced (the sample's coarse image under the true detail). The cut-off at which a hybrid comes close to real
  images says at which scales the samples are unlike them;
- how the draws vary across the LR sampling grid, against how the mean's error does: by phase of the HR pixel
  index modulo the scale, the std of the difference of two draws over sqrt(2) and of the error of the mean of K,
  and the correlation of each pixel with its right (or lower) neighbour. With the paper's degradation the LR
  pixels sit at phase 2 (every 4th pixel from offset 2), where the error is smallest.

    python scripts/sample_texture.py hvae --data-dir ../shared/data/cifar10 --threads 2 \\
        --out docs/sample_texture/hvae.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyro
import torch

from pyro_sr.api import load
from pyro_sr.common import set_threads, write_json
from pyro_sr.data.datasets import PairedImages, load_pairs, to_float
from pyro_sr.evaluation.calibration import (
    BAND_WIDTH,
    FREQUENCY_BANDS,
    CalibrationMetrics,
    band_power,
    recalibrated_by_band,
    with_true_bands,
)
from pyro_sr.evaluation.evaluate import realism_for


def draws_of(model, pairs: PairedImages, num_samples: int, batch_size: int = 250) -> torch.Tensor:
    """(K, N, 3, H, W) samples, the model's own kind at its own temperature."""
    batches = range(0, len(pairs), batch_size)
    return torch.cat([model.sample(pairs.lr[i : i + batch_size], num_samples) for i in batches], 1)


def lr_grid_statistics(images: torch.Tensor, scale: int) -> dict[str, list[float]]:
    """By phase k = 0 .. scale-1 of the HR pixel index (rows and columns pooled): the std of the pixels at
    index k mod scale, and the correlation of each with its neighbour at k + 1. The LR image pins the blurred
    value near the pixels it was sampled at, so the error of a good mean follows the LR grid in both."""
    std, correlation = [], []
    for phase in range(scale):
        first, second = [], []
        for dim in (-1, -2):
            index = torch.arange(phase, images.shape[dim] - 1, scale)
            first.append(images.index_select(dim, index).flatten())
            second.append(images.index_select(dim, index + 1).flatten())
        std.append(float(torch.cat(first).std()))
        correlation.append(float(torch.corrcoef(torch.stack([torch.cat(first), torch.cat(second)]))[0, 1]))
    return {"std": std, "neighbour_correlation": correlation}


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
    if min(args.images, args.fit_images) < 1 or args.images + args.fit_images > len(pairs):
        print(
            f"sample_texture.py: --images and --fit-images must be >= 1 and add up to at most {len(pairs)}",
            file=sys.stderr,
        )
        return 2
    if args.num_samples < 2:
        print("sample_texture.py: --num-samples must be at least 2", file=sys.stderr)
        return 2
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
    true_power = band_power(truth)
    kinds = (("one sample", draws[0]), (f"mean of {args.num_samples}", draws.mean(0)))
    power = {name: (band_power(x) / true_power).tolist() for name, x in kinds}
    hybrids = {}
    for cut in range(1, FREQUENCY_BANDS):
        coarse, fine = torch.arange(cut), torch.arange(cut, FREQUENCY_BANDS)
        for name, bands in (("true below", coarse), ("true above", fine)):
            realism.reset()
            realism.update(with_true_bands(draws[0], truth, bands), scored.labels)
            hybrids.setdefault(name, []).append(realism.result()["classifier_kid"])
    scale = model.scale
    texture = {
        "draws": lr_grid_statistics((draws[0] - draws[1]) / 2**0.5, scale),
        "error of the mean": lr_grid_statistics(truth - draws.mean(0), scale),
    }
    result = {
        "command": " ".join(sys.argv),
        "model": model.name,
        "images": len(scored),
        "fit_images": len(fit),
        "num_samples": args.num_samples,
        "fitted_band_spread_skill": band_ratio.tolist(),
        "samples": rows,
        "band_power_over_truth": power,
        "hybrid_cutoffs": [cut * BAND_WIDTH for cut in range(1, FREQUENCY_BANDS)],
        "hybrid_classifier_kid": hybrids,
        "by_lr_grid_phase": texture,
    }
    if args.out:
        write_json(args.out, result)
    print(f"ratio by band, fitted on {len(fit)} images: " + ", ".join(f"{r:.2f}" for r in band_ratio.tolist()))
    print("| one sample per image | classifier-KID | accuracy | ratio by band, coarse first |")
    print("|---|---:|---:|---|")
    for name, row in rows.items():
        bands = ", ".join(f"{r:.2f}" for r in row["band_spread_skill"])
        print(f"| {name} | {row['classifier_kid']:.4f} | {row['classifier_accuracy']:.3f} | {bands} |")
    print("| power over the truth's, by band | " + " | ".join(str(b) for b in range(FREQUENCY_BANDS)) + " |")
    print("|---|" + "---:|" * FREQUENCY_BANDS)
    for name, ratios in power.items():
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    cutoffs = [f"{cut}/{round(1 / BAND_WIDTH)}" for cut in range(1, FREQUENCY_BANDS)]
    print("| classifier-KID of the first sample, the truth's bands ... cycle per pixel | " + " | ".join(cutoffs) + " |")
    print("|---|" + "---:|" * len(cutoffs))
    for name, kids in hybrids.items():
        print(f"| {name} | " + " | ".join(f"{k:.4f}" for k in kids) + " |")
    print(f"| by phase of the HR pixel index mod {scale} | " + " | ".join(map(str, range(scale))) + " |")
    print("|---|" + "---:|" * scale)
    for name, stats in texture.items():
        for key, values in stats.items():
            print(f"| {name}: {key} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
