"""Pyro's overhead (not a test): SVI steps of the conditional VAE against a hand-written PyTorch ELBO step on the
same networks, batch and optimizer, timed alternately in one run.

The hand-written step computes the same Monte Carlo estimator as ``Trace_ELBO``: one reparameterised z from
q(z | HR, LR), loss = -(log p(HR | z, LR) + β (log p(z | LR) - log q(z | HR, LR))) summed over the batch, and
Adam with the same learning rate. ``--elbo meanfield`` compares ``TraceMeanField_ELBO`` with an analytic KL.

    python scripts/benchmark_svi.py --threads 2 [--device cuda] [--out bench_svi.json]
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

    pyro_vae = ConditionalVAE(CVAE_PRESETS["default"]).to(device)
    svi = SVI(pyro_vae.model, pyro_vae.guide, Adam({"lr": 1e-4}), TraceMeanField_ELBO() if analytic else Trace_ELBO())
    torch_vae = ConditionalVAE(CVAE_PRESETS["default"]).to(device)
    optimizer = torch.optim.Adam(torch_vae.parameters(), lr=1e-4)

    def torch_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        handwritten_loss(torch_vae, lr, hr, beta, analytic).backward()
        optimizer.step()

    pyro_rates, torch_rates = [], []
    for _ in range(args.rounds):
        pyro_rates.append(time_steps(lambda: svi.step(lr, hr, beta), args.seconds, device))
        torch_rates.append(time_steps(torch_step, args.seconds, device))
    pyro_rate, torch_rate = max(pyro_rates), max(torch_rates)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "elbo": args.elbo,
        "pyro_svi_steps_per_s": pyro_rate,
        "pyro_svi_images_per_s": pyro_rate * args.batch_size,
        "handwritten_steps_per_s": torch_rate,
        "handwritten_images_per_s": torch_rate * args.batch_size,
        "pyro_overhead_percent": 100.0 * (torch_rate / pyro_rate - 1.0),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
