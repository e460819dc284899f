"""Data-parallel SVI with PyTorch's DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc-per-node N -m pyro_sr fit vae|hvae ...`` starts N processes with ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in their environment; :func:`from_environment` reads them (world size 1 without torchrun, and then
nothing here is used). Each process takes its shard of every global batch (``batch_size`` images per process),
computes Pyro's ELBO on it through ``pyro_sr.training.step.ELBOLoss`` wrapped in ``DistributedDataParallel``,
whose backward all-reduces (averages) the gradients of the per-dimension objective; the shards have the same
size, so the average is exactly the gradient one process would compute on the whole global batch. Every rank then
makes the same clipping, skipping and Adam decision on that same gradient, so parameters stay identical (DDP also
broadcasts rank 0's weights at the start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


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
