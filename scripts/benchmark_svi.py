"""Pyro's overhead (not a test): SVI steps of a VAE against a hand-written PyTorch ELBO step on the same
networks, batch and optimizer, timed alternately in one run.

The hand-written step computes the same Monte Carlo estimator as ``Trace_ELBO``: one reparameterised z from
q(z | HR, LR), loss = -(log p(HR | z, LR) + β (log p(z | LR) - log q(z | HR, LR))) summed over the batch, and
Adam with the same learning rate. ``--elbo meanfield`` compares ``TraceMeanField_ELBO`` with an analytic KL.
``--model hvae`` is the bundled recipe: the hierarchical VAE refining the bundled CNN (frozen), analytic KL per
group; its hand-written step walks the top-down path once, where Pyro's step walks it in the guide (posteriors)
and again in the model (priors).

    python scripts/benchmark_svi.py --threads 2 [--device cuda] [--out bench_svi.json]
    python scripts/benchmark_svi.py --model hvae --elbo meanfield --threads 2 --out docs/benchmark_svi_hvae_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam

from pyro_sr.common import resolve_device
from pyro_sr.models.cvae import CVAE_PRESETS, ConditionalVAE
from pyro_sr.models.hvae import HierarchicalVAE, HVAEConfig
from pyro_sr.models.likelihoods import per_channel_normal
from pyro_sr.weights.loading import load_model


def handwritten_loss(vae: ConditionalVAE, lr: torch.Tensor, hr: torch.Tensor, beta: float, analytic: bool):
    """-ELBO of the conditional VAE written directly in PyTorch."""
    features = vae.lr_encoder(lr - 0.5)
    prior = torch.distributions.Independent(torch.distributions.Normal(*vae.prior(lr, features)), 3)
    posterior = torch.distributions.Independent(torch.distributions.Normal(*vae.posterior(lr, hr)), 3)
    z = posterior.rsample()
    sr = vae.decode(z, lr, features)
    hr_scale = vae.log_hr_scale.exp().view(1, 3, 1, 1)
    log_lik = torch.distributions.Normal(sr, hr_scale).log_prob(hr).sum((1, 2, 3))
    kl = torch.distributions.kl_divergence(posterior, prior) if analytic else posterior.log_prob(z) - prior.log_prob(z)
    return -(log_lik - beta * kl).sum()


def handwritten_hvae_loss(vae: HierarchicalVAE, lr: torch.Tensor, hr: torch.Tensor, beta: float, analytic: bool):
    """-ELBO of the hierarchical VAE written directly in PyTorch: one top-down pass gives each group's prior and
    posterior."""
    hr_features = vae.bottom_up(lr, hr)
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
    log_lik = per_channel_normal(vae.base(lr) + vae.output(state), vae.log_hr_scale).log_prob(hr)
    return -(log_lik - beta * kl).sum()


def build(model: str, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two identical fresh VAEs of ``model`` (one for Pyro's step, one for the hand-written one)."""
    if model == "vae":
        return ConditionalVAE(CVAE_PRESETS["default"]).to(device), ConditionalVAE(CVAE_PRESETS["default"]).to(device)
    cnn = load_model("cnn", "cpu").model
    return tuple(HierarchicalVAE.refining(cnn, HVAEConfig()).to(device) for _ in range(2))


def time_steps(step, seconds: float, device: torch.device) -> float:
    """Steps per second of ``step`` over ``seconds`` of wall time, after 3 warm-up steps."""
    for _ in range(3):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("vae", "hvae"), default="vae")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--elbo", choices=("trace", "meanfield"), default="trace")
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pyro.set_rng_seed(0)
    lr = torch.rand(args.batch_size, 3, 8, 8, device=device)
    hr = F.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    beta, analytic = 0.5, args.elbo == "meanfield"

    pyro_vae, torch_vae = build(args.model, device)
    svi = SVI(pyro_vae.model, pyro_vae.guide, Adam({"lr": 1e-4}), TraceMeanField_ELBO() if analytic else Trace_ELBO())
    optimizer = torch.optim.Adam((p for p in torch_vae.parameters() if p.requires_grad), lr=1e-4)
    loss = handwritten_loss if args.model == "vae" else handwritten_hvae_loss

    def torch_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(torch_vae, lr, hr, beta, analytic).backward()
        optimizer.step()

    with torch.no_grad():  # the two steps optimise the same objective: their losses on one VAE agree
        elbo = TraceMeanField_ELBO() if analytic else Trace_ELBO()
        pyro_losses = torch.tensor([elbo.loss(pyro_vae.model, pyro_vae.guide, lr, hr, beta) for _ in range(8)])
        torch_losses = torch.tensor([float(loss(pyro_vae, lr, hr, beta, analytic)) for _ in range(8)])
    pyro_rates, torch_rates = [], []
    for _ in range(args.rounds):
        pyro_rates.append(time_steps(lambda: svi.step(lr, hr, beta), args.seconds, device))
        torch_rates.append(time_steps(torch_step, args.seconds, device))
    pyro_rate, torch_rate = max(pyro_rates), max(torch_rates)
    results = {
        "model": args.model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "elbo": args.elbo,
        "pyro_svi_steps_per_s": pyro_rate,
        "pyro_svi_images_per_s": pyro_rate * args.batch_size,
        "handwritten_steps_per_s": torch_rate,
        "handwritten_images_per_s": torch_rate * args.batch_size,
        "pyro_overhead_percent": 100.0 * (torch_rate / pyro_rate - 1.0),
        "loss_per_batch_pyro": [float(pyro_losses.mean()), float(pyro_losses.std() / 8**0.5)],  # mean, its s.e.
        "loss_per_batch_handwritten": [float(torch_losses.mean()), float(torch_losses.std() / 8**0.5)],
    }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
