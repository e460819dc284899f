"""One optimisation step of a VAE's ELBO: Pyro's estimator, an optimiser fitted to its scale, and VDVAE's skipping.

The loss is Pyro's own (``elbo.differentiable_loss`` of the VAE's model and guide, the same estimator as
``SVI.step``): the β-weighted negative ELBO summed over the batch, in nats. The optimiser sees it divided by
images x dimensions per image, so its gradient does not grow with the batch or the image size and one clipping
threshold fits every run. ``SVI`` with a Pyro optimiser keeps one torch optimiser per parameter and collects the
parameters from a trace each step; here one fused ``torch.optim.Adam`` holds them all, and

- the gradient is clipped by its global norm (``ClippedAdam``'s ``clip_norm`` clamps each *entry*, which at a
  summed loss turned a third of the weights' updates into sign-SGD);
- a step is skipped (no update) when its loss or gradient norm is not finite, or when its gradient norm is more
  than ``skip_factor`` times the median of the last steps' (VDVAE's gradient skipping), or, single-process, its
  loss per dimension is more than ``skip_factor`` median absolute deviations above their median. ``LEVEL_SHIFT``
  spikes in a row are a new level, not a spike: the next step is applied (clipped) and the level is learnt anew
  (skipping every step of a model that a bad update has moved froze it for 37 steps in a trial run);
- the networks run under bf16 autocast when ``precision`` is bf16, with every log-probability and KL in fp32
  (the models take their distributions' parameters in fp32);
- with ``channels_last`` the networks' weights and the batches are laid out channels-last, which oneDNN's CPU
  convolutions run faster (measured: the HVAE's bf16 step 1.3x);
- model and guide run inside :func:`~pyro_sr.models.registration.optimised_elsewhere`: the optimiser holds the
  parameters, so their ``pyro.module`` registration (most of Pyro's overhead over a hand-written step) is skipped;
- distributions do not check their arguments (they cost 2-3% of a step): a NaN parameter shows as a non-finite
  loss, which is skipped, and ``MAX_SKIPPED_IN_A_ROW`` of them stop the run.

Loss and gradient norm reach the host together, once per step: the only synchronisation.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pyro_sr.common import TrainingError
from pyro_sr.models.registration import optimised_elsewhere
from pyro_sr.training.precision import autocast

WINDOW = 100  # recent steps whose median sets the level a spike is measured against
MIN_HISTORY = 20  # no spike test before this many steps
LEVEL_SHIFT = 5  # spikes in a row that make a new level
NEW_LEVEL = "new_level"  # the verdict on the step after them: applied, and the level relearnt from it
MAX_SKIPPED_IN_A_ROW = 50  # skipped steps in a row (spikes stop at LEVEL_SHIFT): the run has diverged
OPTIMIZER_FORMAT = "adam-global-clip"  # what a checkpoint's optimizer state holds


def channels_last_pays(device: torch.device) -> bool:
    """Channels-last layout where it was measured to pay: on the CPU (the HVAE's step 1.3x in bf16, 1.06x in fp32,
    scripts/benchmark_svi.py --channels-last on|off); on CUDA it has not been measured, so it stays off there."""
    return device.type == "cpu"


@dataclass(frozen=True)
class StepResult:
    """What one step did: the loss (β-weighted negative ELBO summed over the batch, nats), the gradient's global
    norm (of the per-dimension objective, before clipping), why it was skipped (None: applied), whether it was
    applied as a new level after ``LEVEL_SHIFT`` spikes in a row, and each latent site's KL (nats per image,
    unweighted: the ELBO's ``site_kl``)."""

    loss: float
    grad_norm: float
    skipped: str | None = None
    new_level: bool = False
    site_kl: dict[str, float] = field(default_factory=dict)


class ELBOLoss(nn.Module):
    """Pyro's differentiable ELBO loss of a VAE's model/guide as a module call, so that DDP can wrap it."""

    def __init__(self, vae: nn.Module, elbo: pyro.infer.ELBO):
        super().__init__()
        self.vae = vae
        self.elbo = elbo

    def forward(self, *args, **kwargs) -> torch.Tensor:
        with optimised_elsewhere():
            return self.elbo.differentiable_loss(self.vae.model, self.vae.guide, *args, **kwargs)


class ELBOStep:
    """Callable ``step(lr, hr, beta, **inputs) -> StepResult``; see the module docstring. ``distributed``: the
    loss is wrapped in DDP, whose backward averages the per-dimension gradients over ranks (every rank has a
    shard of the same size), so that every rank sees the same gradient, norm and skip decision."""

    def __init__(
        self,
        vae: nn.Module,
        elbo: pyro.infer.ELBO,
        lr: float,
        clip_norm: float,
        skip_factor: float,
        precision: str = "fp32",
        device: torch.device | None = None,
        distributed: bool = False,
        channels_last: bool = False,
    ):
        self.device = device or next(vae.parameters()).device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        vae.to(memory_format=self.memory_format)
        self.named_params = [(name, p) for name, p in vae.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named_params]
        self.nonfinite_grads: list[str] = []  # of the last step skipped as non-finite: where it went wrong
        self.elbo = elbo
        self.loss_fn: nn.Module = ELBOLoss(vae, elbo)
        if distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # At a KL weight of 0 (a linear warm-up's first step, every cyclical restart) the latent sites are
            # masked and the prior networks get no gradient: DDP must expect parameters without one.
            self.loss_fn = DistributedDataParallel(self.loss_fn, device_ids=device_ids, find_unused_parameters=True)
        self.optimizer = torch.optim.Adam(self.params, lr=lr, fused=self.device.type in ("cpu", "cuda"))
        self.clip_norm = clip_norm
        self.skip_factor = skip_factor
        self.precision = precision
        self.distributed = distributed
        self.norms: deque[float] = deque(maxlen=WINDOW)
        self.losses: deque[float] = deque(maxlen=WINDOW)  # per dimension
        self.skipped_in_a_row = 0
        self.spikes_in_a_row = 0

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor, beta: Any, **inputs: torch.Tensor) -> StepResult:
        lr, hr = self._laid_out(lr), self._laid_out(hr)
        inputs = {name: self._laid_out(value) for name, value in inputs.items()}
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision), pyro.validation_enabled(False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Encountered NaN", UserWarning)  # such a step is skipped and counted
            loss = self.loss_fn(lr, hr, beta, **inputs)
        dims = hr.numel()
        (loss / dims).backward()
        norm = nn.utils.clip_grad_norm_(self.params, self.clip_norm, foreach=True)
        site_kl = getattr(self.elbo, "site_kl", {})  # one host transfer for all of it
        values = torch.stack([loss.detach().float(), norm.detach().float(), *site_kl.values()]).tolist()
        loss_value, norm_value, *kls = values
        verdict = self._verdict(loss_value / dims, norm_value)
        new_level = verdict == NEW_LEVEL
        skipped = None if new_level else verdict
        if skipped is None:
            self.optimizer.step()
            self.skipped_in_a_row = 0
        else:
            self.skipped_in_a_row += 1
            if skipped == "nonfinite":
                self.nonfinite_grads = [
                    n for n, p in self.named_params if p.grad is not None and not p.grad.isfinite().all()
                ]
        return StepResult(loss_value, norm_value, skipped, new_level, dict(zip(site_kl, kls, strict=True)))

    def _laid_out(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    @property
    def stuck(self) -> bool:
        """Every one of the last ``MAX_SKIPPED_IN_A_ROW`` steps was skipped: a divergence, not a spike."""
        return self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW

    def _verdict(self, loss_per_dim: float, norm: float) -> str | None:
        """None (or ``NEW_LEVEL``) to apply the step, else why it is skipped: ``nonfinite``, ``grad_spike`` or
        ``loss_spike``."""
        if not (math.isfinite(loss_per_dim) and math.isfinite(norm)):
            return "nonfinite"
        verdict = None
        if len(self.norms) >= MIN_HISTORY:
            if norm > self.skip_factor * statistics.median(self.norms):
                verdict = "grad_spike"
            elif not self.distributed:  # each rank has its own loss: only the shared gradient may decide
                median = statistics.median(self.losses)
                spread = statistics.median(abs(x - median) for x in self.losses)
                if loss_per_dim - median > self.skip_factor * max(spread, 1e-6 * abs(median), 1e-12):
                    verdict = "loss_spike"
        if verdict is None:
            self.spikes_in_a_row = 0
        elif self.spikes_in_a_row < LEVEL_SHIFT:
            self.spikes_in_a_row += 1
        else:  # not a spike but where the model now is: apply the step and learn the level from here
            self.norms.clear()
            self.losses.clear()
            self.spikes_in_a_row, verdict = 0, NEW_LEVEL
        self.norms.append(norm)
        self.losses.append(loss_per_dim)
        return verdict

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": OPTIMIZER_FORMAT,
            "adam": self.optimizer.state_dict(),
            "norms": list(self.norms),
            "losses": list(self.losses),
            "spikes_in_a_row": self.spikes_in_a_row,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != OPTIMIZER_FORMAT:
            raise TrainingError(
                "this run's checkpoint holds the optimizer state of an earlier pyro-sr (per-parameter ClippedAdam), "
                "which this version cannot continue; start a new run in another --out folder"
            )
        self.optimizer.load_state_dict(state["adam"])
        self.norms.extend(state["norms"])
        self.losses.extend(state["losses"])
        self.spikes_in_a_row = state.get("spikes_in_a_row", 0)
