"""Data-parallel SVI with PyTorch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N -m pyro_sr fit vae|hvae ...`` starts N processes with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in their environment; :func:`from_environment` reads them (world size 1 without torchrun, and then
nothing here is used). Each process takes its shard of every global batch (``batch_size`` images per process),
computes Pyro's ELBO on it through :class:`ELBOLoss` wrapped in ``DistributedDataParallel``, whose backward
all-reduces (averages) the gradients; the loss is multiplied by the world size first, so the averaged gradient is
exactly the gradient of the ELBO summed over the whole global batch, as one process would compute it. Every rank
then applies the same Pyro optimizer step, so parameters stay identical (DDP also broadcasts rank 0's weights at
the start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyro
import torch
import torch.distributed as torch_dist
from pyro import poutine
from pyro.infer.util import zero_grads
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Distributed:
    """The torchrun variables of this process (a single process without them)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as err:
        raise ValueError(f"bad torchrun environment ({err})") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    return Distributed(rank, world_size, local_rank)


def setup(dist: Distributed, device: torch.device) -> torch.device:
    """Join the process group (``nccl`` on GPUs, ``gloo`` on CPU) and return this rank's device."""
    if device.type == "cuda":
        if dist.local_rank >= torch.cuda.device_count():
            visible = torch.cuda.device_count()
            raise ValueError(
                f"process {dist.local_rank} of this machine has no GPU ({visible} visible): "
                "start one process per GPU (torchrun --nproc-per-node), or use --device cpu"
            )
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def rank0_verdict(ok: bool, device: torch.device) -> bool:
    """Rank 0's word on whether its end of an epoch (validation, checkpoint) succeeded, sent to every rank in place
    of a barrier: when rank 0 stops, the other ranks stop too instead of waiting for it."""
    flag = torch.tensor([1 if ok else 0], device=device)
    torch_dist.broadcast(flag, src=0)
    return bool(flag.item())


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over ranks."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(tensor)
    return tensor.tolist()


class ELBOLoss(nn.Module):
    """Pyro's differentiable ELBO loss of a VAE's model/guide as a module call, so that DDP can wrap it; ``scale``
    multiplies the loss (the world size, which turns DDP's gradient average into a sum over ranks)."""

    def __init__(self, vae: nn.Module, elbo: pyro.infer.ELBO, scale: float = 1.0):
        super().__init__()
        self.vae = vae
        self.elbo = elbo
        self.scale = scale

    def forward(self, *args) -> torch.Tensor:
        return self.scale * self.elbo.differentiable_loss(self.vae.model, self.vae.guide, *args)


class DataParallelSVI:
    """``SVI.step`` for one rank of a data-parallel job: DDP backward (gradients all-reduced), then the Pyro
    optimizer on the parameters the step touched, as ``pyro.infer.SVI`` does."""

    def __init__(
        self,
        vae: nn.Module,
        optim: pyro.optim.PyroOptim,
        elbo: pyro.infer.ELBO,
        dist: Distributed,
        device: torch.device,
    ):
        device_ids = [device.index] if device.type == "cuda" else None
        # At a KL weight of 0 (a linear warm-up's first step, every cyclical restart) the latent sites are masked,
        # so the prior network gets no gradient in that step: DDP must expect parameters without gradients.
        self.loss = DistributedDataParallel(
            ELBOLoss(vae, elbo, dist.world_size), device_ids=device_ids, find_unused_parameters=True
        )
        self.optim = optim
        self.world_size = dist.world_size

    def step(self, *args) -> float:
        """Loss of this rank's shard (its own share, not multiplied by the world size)."""
        with poutine.trace(param_only=True) as capture:
            loss = self.loss(*args)
            loss.backward()
        params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        self.optim(params)
        zero_grads(params)
        return float(loss.detach()) / self.world_size
