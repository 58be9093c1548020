"""One process or many: torchrun-launched DistributedDataParallel, with every collective guarded.

``torchrun --nproc_per_node N hema-train ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them
the run is a single process and no collective is ever called, so tests and laptops need no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from hema.train.run.device import resolve_device

__all__ = [
    "DistributedContext",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "init_distributed",
    "is_distributed",
    "shutdown_distributed",
]


def is_distributed() -> bool:
    """Whether a process group is up (``torchrun`` with ``WORLD_SIZE > 1``)."""
    return dist.is_available() and dist.is_initialized()


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 in a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine; selects the GPU.
        device: The device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def hide_progress(self) -> bool | None:
        """tqdm's ``disable``: bars on the main process only, and there only on a terminal (``None``)."""
        return None if self.is_main else True


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), or stay a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device)
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    if world_size > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, target)


def shutdown_distributed() -> None:
    """Leave the process group, if any."""
    if is_distributed():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over processes in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over processes in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if is_distributed():
        dist.barrier()
