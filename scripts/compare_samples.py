"""What should a sample of a VAE be? Scores single samples of the kinds a VAE can give on the CIFAR-10 test images:
the pixel likelihood's location (site ``sr``) at latent temperatures, and draws of the likelihood itself (site
``hr``) at pixel temperatures, each with PSNR and the judge's classifier accuracy, classifier-KID and FID, beside
the CNN its refines (or any deterministic model given). Writes a JSON file and prints a Markdown table.

    python scripts/compare_samples.py runs/hvae-dmol-fb32-e6 --data-dir ../shared/data/cifar10 --threads 2 \\
        --out docs/sample_kinds_hvae.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyro
import torch

from pyro_sr.common import set_threads, write_json
from pyro_sr.data.datasets import load_pairs
from pyro_sr.evaluation.evaluate import realism_for, score, score_samples
from pyro_sr.weights.loading import load_model

COLUMNS = ("psnr", "classifier_accuracy", "classifier_kid", "classifier_fid")


def sample_kinds(latent_temperatures: list[float], pixel_temperatures: list[float]) -> list[dict]:
    """The kinds of sample to score: locations at each latent temperature, then draws at each pixel temperature
    (latents at temperature 1)."""
    kinds = [{"kind": "location", "temperature": t, "pixel_temperature": None} for t in latent_temperatures]
    kinds += [{"kind": "draw", "temperature": 1.0, "pixel_temperature": t} for t in pixel_temperatures]
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a VAE: bundled name, checkpoint file or run folder")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with cifar10_{train,test}.npz")
    parser.add_argument("--reference", nargs="*", default=["cnn"], help="deterministic models scored beside it")
    parser.add_argument("--latent-temperatures", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    parser.add_argument("--pixel-temperatures", type=float, nargs="+", default=[0.5, 0.8, 1.0])
    parser.add_argument("--limit", type=int, help="only the first N test images (a preview)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, help="JSON file of the rows")
    args = parser.parse_args()
    set_threads(args.threads)
    loaded = load_model(args.model)
    pairs = load_pairs("cifar10", "test", loaded.degradation, args.data_dir)
    if args.limit:
        pairs = pairs.subset(torch.arange(min(args.limit, len(pairs))))
    realism = realism_for(pairs, torch.device("cpu"))
    if realism is None:
        print(
            "compare_samples.py: the test images carry no CIFAR-10 labels; the judge cannot score them", file=sys.stderr
        )
        return 1
    rows = []
    for name in args.reference:
        reference = load_model(name)
        rows.append(
            {
                "model": name,
                "kind": "prediction",
                **score(reference.model.predict, pairs, reference.degradation, realism=realism),
            }
        )
    for kind in sample_kinds(args.latent_temperatures, args.pixel_temperatures):
        pyro.set_rng_seed(0)
        scores = score_samples(
            loaded.model,
            pairs,
            loaded.degradation,
            1,
            kind["temperature"],
            realism=realism,
            pixel_temperature=kind["pixel_temperature"],
        ).of_samples
        rows.append({"model": loaded.name, **kind, **scores})
    if args.out:
        write_json(args.out, {"command": " ".join(sys.argv), "images": len(pairs), "rows": rows})
    print("| model | sample | latent T | pixel T | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(COLUMNS))
    for r in rows:
        cells = [r["model"], r["kind"], str(r.get("temperature", "")), str(r.get("pixel_temperature") or "")]
        cells += [f"{r[c]:.4f}" for c in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    print(json.dumps({"images": len(pairs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
