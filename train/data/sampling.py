"""Data order that is the same for one process or many, and that a resumed run can pick up mid-epoch.

Every epoch draws one permutation from ``(seed, epoch)``. Step ``s`` uses the global batch
``permutation[s * B : (s + 1) * B]``; rank ``r`` of ``W`` takes every ``W``-th sample of it starting at ``r``.
So ``W`` processes with ``B / W`` samples each see exactly the samples one process sees with ``B``, which makes
a DistributedDataParallel run reproduce a single-process run, and skipping ``start_step`` batches resumes
exactly where a checkpoint was taken.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["GlobalBatchSampler", "SampleKey", "sample_seed"]

SampleKey = tuple[int, int]
"""``(dataset index, epoch)``: what the sampler hands the dataset, so augmentation can be seeded per sample."""


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed for one sample's augmentation, independent of workers, ranks and batch order."""
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**31 - 1)


class GlobalBatchSampler(Sampler[list[SampleKey]]):
    """Yields this rank's share of each global batch as :data:`SampleKey` lists (drops an incomplete last batch).

    Args:
        length: Dataset size.
        global_batch_size: Samples per optimisation step over all processes; divisible by ``world_size``.
        seed: Shuffling seed.
        rank: This process's rank.
        world_size: Number of processes.
        weights: Per-sample weights: each epoch then draws ``length`` samples with replacement in proportion to
            them (a class-balanced sampler) instead of a permutation.
    """

    def __init__(
        self,
        length: int,
        global_batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: torch.Tensor | None = None,
    ) -> None:
        if global_batch_size % world_size:
            raise ValueError(f"batch size {global_batch_size} is not divisible by {world_size} processes")
        if length < global_batch_size:
            raise ValueError(f"{length} samples are fewer than one batch of {global_batch_size}")
        self.length, self.global_batch_size, self.seed = length, global_batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch's permutation and the step to start from (resuming mid-epoch)."""
        self.epoch, self.start_step = epoch, start_step

    def steps_per_epoch(self) -> int:
        """Full global batches per epoch."""
        return self.length // self.global_batch_size

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step

    def __iter__(self) -> Iterator[list[SampleKey]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = torch.multinomial(self.weights, self.length, replacement=True, generator=generator).tolist()
        for step in range(self.start_step, self.steps_per_epoch()):
            batch = order[step * self.global_batch_size : (step + 1) * self.global_batch_size]
            yield [(index, self.epoch) for index in batch[self.rank :: self.world_size]]
