r"""Training speed of a VAE's SVI step (not a test): the package's step against a hand-written PyTorch step with
identical maths, timed alternately in one run; or, with ``--reference``, the step of the loop before the fast
step (``pyro.infer.SVI.step`` with ``ClippedAdam``), which also runs on an older checkout of the package.

The package's step is ``pyro_sr.training.step.ELBOStep``: Pyro's ``differentiable_loss`` (``Trace_ELBO``, or the
analytic-KL ``TraceMeanField_ELBO`` with ``--elbo meanfield``, which skips the log-densities it does not read),
the objective per image and dimension, global-norm clipping,
one fused Adam, bf16 autocast where the hardware has it (``--precision``), and the frozen base CNN's prediction
computed once beforehand (as the training loop does, once per image). The hand-written step computes the same
estimator directly: one reparameterised sample of each latent group from the guide's posterior, loss =
-(log p(HR | z, LR) - β KL) summed over the batch (KL analytic with ``meanfield``, else log q - log p at the
sample), the same normalisation, clipping, Adam and autocast, and the same host synchronisation (loss and norm).
``--model hvae`` is the bundled recipe: the hierarchical VAE refining the bundled CNN (frozen).

    python scripts/benchmark_svi.py --threads 2 --out docs/benchmark_svi_cpu.json
    # the bundled HVAE recipe, also against the loop of commit c29677f, in the same sitting:
    git worktree add /tmp/c29677f c29677f
    python scripts/benchmark_svi.py --model hvae --elbo meanfield --threads 2 --reference-checkout /tmp/c29677f \
        --out docs/benchmark_svi_hvae_cpu.json
    # each loop at its own default batch (c29677f trained with 32, this package with 64):
    python scripts/benchmark_svi.py --model hvae --elbo meanfield --threads 2 --reference-checkout /tmp/c29677f \
        --reference-batch-size 32 --out docs/benchmark_svi_hvae_defaults_cpu.json

The steps take turns in every round (the order turning each round), and what is reported is each step's median
over rounds and the median of the per-round ratios: on a shared 2-core machine the speed drifts by +-20% within
minutes, which a ratio of best rates does not survive.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

import pyro_sr
from pyro_sr.models.cnn import CNNConfig, build_cnn


def build(model: str, device: torch.device) -> torch.nn.Module:
    """A fresh VAE of ``model``; only APIs that older checkouts have too (for ``--reference``)."""
    if model == "vae":
        from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE

        return ConditionalVAE(CVAE_PRESETS["default"]).to(device)
    from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig

    checkpoint = torch.load(resources.files("pyro_sr.weights") / "cnn.pt", map_location="cpu", weights_only=False)
    cnn = build_cnn(CNNConfig(**checkpoint["model_config"]))
    cnn.load_state_dict(checkpoint["model"])
    return HierarchicalVAE.refining(cnn, HVAEConfig()).to(device)


def handwritten_loss(vae, lr: torch.Tensor, hr: torch.Tensor, beta: float, analytic: bool) -> torch.Tensor:
    """-ELBO of the conditional VAE written directly in PyTorch."""
    from pyro_sr.models.likelihoods import per_channel_normal

    features = vae.lr_encoder(lr - 0.5)
    prior = torch.distributions.Independent(torch.distributions.Normal(*vae.prior(lr, features)), 3)
    posterior = torch.distributions.Independent(torch.distributions.Normal(*vae.posterior(lr, hr)), 3)
    z = posterior.rsample()
    log_lik = per_channel_normal(vae.decode(z, lr, features)[0], vae.likelihood.log_scale).log_prob(hr)
    kl = torch.distributions.kl_divergence(posterior, prior) if analytic else posterior.log_prob(z) - prior.log_prob(z)
    return -(log_lik - beta * kl).sum()


def handwritten_hvae_loss(
    vae, lr: torch.Tensor, hr: torch.Tensor, beta: float, analytic: bool, base: torch.Tensor | None = None
) -> torch.Tensor:
    """-ELBO of the hierarchical VAE written directly in PyTorch: one top-down pass gives each group's prior and
    posterior."""
    from pyro_sr.models.blocks import full_precision
    from pyro_sr.models.likelihoods import per_channel_normal

    hr_features = vae.bottom_up(lr, hr, base)
    state, kl = vae.lr_encoder(lr - 0.5), 0.0
    for r, groups in enumerate(vae.groups):
        if r > 0:
            state = vae.upsample[r - 1](state)
        for group in groups:
            loc, scale = group.prior(state)
            prior = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 3)
            posterior = torch.distributions.Independent(
                torch.distributions.Normal(*group.posterior(state, hr_features[r], loc, scale)), 3
            )
            z = posterior.rsample()
            kl = kl + (
                torch.distributions.kl_divergence(posterior, prior)
                if analytic
                else posterior.log_prob(z) - prior.log_prob(z)
            )
            state = group.update(state, z)
    sr = vae.base(lr, base) + full_precision(vae.output, state)
    return -(per_channel_normal(sr, vae.likelihood.log_scale).log_prob(hr) - beta * kl).sum()


def time_steps(step, seconds: float, device: torch.device, warmup: float = 0.0) -> float:
    """Steps per second of ``step`` over ``seconds`` of wall time, after ``warmup`` seconds of untimed steps (a
    fresh process runs its first seconds slower: allocator, kernel selection)."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def checkout() -> str:
    """The commit of the imported package's checkout (``--reference`` may run an older one)."""
    return commit_of(Path(pyro_sr.__file__).resolve().parents[1])


def reference_step(vae, lr, hr, beta, analytic):
    """``SVI.step`` with ``ClippedAdam`` (per-entry clipping at 10): how the training loop stepped before."""
    from pyro.optim import ClippedAdam

    elbo = TraceMeanField_ELBO() if analytic else Trace_ELBO()
    svi = SVI(vae.model, vae.guide, ClippedAdam({"lr": 1e-4, "clip_norm": 10.0}), elbo)
    return lambda: svi.step(lr, hr, beta)


def package_steps(model, lr, hr, beta, args, device) -> tuple[dict, dict]:
    """The package's step and the hand-written one, on two identical VAEs; and the check that their losses
    agree (8 draws each on one VAE: the same objective)."""
    from pyro_sr.training.elbo import make_elbo
    from pyro_sr.training.precision import autocast, resolve_precision
    from pyro_sr.training.step import ELBOStep, channels_last_pays

    analytic = args.elbo == "meanfield"
    precision = resolve_precision(args.precision, device)
    pyro_vae = build(model, device)
    torch_vae = build(model, device)
    torch_vae.load_state_dict(pyro_vae.state_dict())
    inputs = pyro_vae.precomputed(lr) if hasattr(pyro_vae, "precomputed") else {}
    clip = 20.0
    layout = channels_last_pays(device) if args.channels_last == "auto" else args.channels_last == "on"
    package_step = ELBOStep(pyro_vae, make_elbo(args.elbo), 1e-4, clip, 10.0, precision, device, channels_last=layout)
    memory_format = torch.channels_last if layout else torch.contiguous_format
    torch_vae.to(memory_format=memory_format)  # the hand-written step gets the same layout
    params = [p for p in torch_vae.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, fused=device.type in ("cpu", "cuda"))

    def loss_of(vae, lr, hr, inputs) -> torch.Tensor:
        if model == "vae":
            return handwritten_loss(vae, lr, hr, beta, analytic)
        return handwritten_hvae_loss(vae, lr, hr, beta, analytic, **inputs)

    def torch_step() -> None:
        lr_, hr_, *base = (x.contiguous(memory_format=memory_format) for x in (lr, hr, *inputs.values()))
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision), pyro.validation_enabled(False):  # the package's step checks none either
            loss = loss_of(torch_vae, lr_, hr_, dict(zip(inputs, base, strict=True)))
        (loss / hr_.numel()).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        torch.stack([loss.detach().float(), norm.float()]).tolist()
        optimizer.step()

    with torch.no_grad():
        elbo = make_elbo(args.elbo)
        pyro_losses = torch.tensor(
            [elbo.loss(pyro_vae.model, pyro_vae.guide, lr, hr, beta, **inputs) for _ in range(8)]
        )
        torch_losses = torch.tensor([float(loss_of(pyro_vae, lr, hr, inputs)) for _ in range(8)])
    check = {
        "precision": precision,
        "channels_last": layout,
        "loss_per_batch_package": [float(pyro_losses.mean()), float(pyro_losses.std() / 8**0.5)],  # mean, s.e.
        "loss_per_batch_handwritten": [float(torch_losses.mean()), float(torch_losses.std() / 8**0.5)],
    }
    return {"package": lambda: package_step(lr, hr, beta, **inputs), "handwritten": torch_step}, check


def reference_in(checkout_dir: str, args) -> float:
    """Steps/s of ``--reference`` in a fresh process that imports the package from ``checkout_dir`` (run from that
    folder: ``python -m`` and an editable install would otherwise find this checkout's package first)."""
    command = [sys.executable, os.path.abspath(__file__), "--reference", "--rounds", "1"]
    command += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    command += ["--model", args.model, "--elbo", args.elbo, "--batch-size", str(args.reference_batch_size)]
    command += ["--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    env = {**os.environ, "PYTHONPATH": checkout_dir}
    run = subprocess.run(command, env=env, cwd=checkout_dir, capture_output=True, text=True, check=True)
    out = json.loads(run.stdout)
    expected = commit_of(checkout_dir)
    if out["checkout"] != expected:
        raise SystemExit(f"--reference-checkout: the reference imported pyro_sr of {out['checkout']}, not {expected}")
    return out["rounds"]["reference"][0]


def commit_of(folder: str | Path) -> str:
    """Short commit of the git checkout at ``folder`` ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("vae", "hvae"), default="vae")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--elbo", choices=("trace", "meanfield"), default="trace")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="memory layout of both steps (auto: the package's choice for the device)",
    )
    parser.add_argument("--reference", action="store_true", help="time only SVI.step with ClippedAdam")
    parser.add_argument(
        "--reference-checkout",
        metavar="DIR",
        help="each round also times --reference in a process importing pyro_sr from DIR (an older checkout)",
    )
    parser.add_argument(
        "--reference-batch-size",
        type=int,
        metavar="N",
        help="batch size of the reference checkout's step (default: --batch-size; 32 was c29677f's default)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
    parser.add_argument("--warmup", type=float, default=10.0, help="untimed seconds before a step's first measurement")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; within each, the steps take turns")
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    args.reference_batch_size = args.reference_batch_size or args.batch_size
    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    pyro.set_rng_seed(0)
    lr = torch.rand(args.batch_size, 3, 8, 8, device=device)
    hr = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    beta = 0.5
    results = {
        "model": args.model,
        "checkout": checkout(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "elbo": args.elbo,
    }
    if args.reference:
        steps = {"reference": reference_step(build(args.model, device), lr, hr, beta, args.elbo == "meanfield")}
    else:
        steps, check = package_steps(args.model, lr, hr, beta, args, device)
        results.update(check)
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    if args.reference_checkout:
        rounds["reference"] = []
    names, warmed = list(rounds), set()
    for round_ in range(args.rounds):  # the order turns each round: this machine's speed drifts by +-20%
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            if name in steps:
                warmup = 0.0 if name in warmed else args.warmup
                rounds[name].append(time_steps(steps[name], args.seconds, device, warmup))
                warmed.add(name)
            else:
                rounds[name].append(reference_in(args.reference_checkout, args))
    results["reference_batch_size"] = args.reference_batch_size
    batch_of = {name: args.reference_batch_size if name == "reference" else args.batch_size for name in rounds}
    results["images_per_s"] = {name: median(rates) * batch_of[name] for name, rates in rounds.items()}
    if "handwritten" in rounds:  # per round, so that the drift cancels
        ratios = [t / p for p, t in zip(rounds["package"], rounds["handwritten"], strict=True)]
        results["pyro_overhead_percent"] = 100.0 * (median(ratios) - 1.0)
    if "reference" in rounds and "package" in rounds:
        results["speedup_over_reference"] = median(  # in images/s: the two steps may take different batches
            [
                p * args.batch_size / (r * args.reference_batch_size)
                for p, r in zip(rounds["package"], rounds["reference"], strict=True)
            ]
        )
        results["reference_checkout"] = commit_of(args.reference_checkout)
    results["rounds"] = rounds  # steps/s of each round
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
