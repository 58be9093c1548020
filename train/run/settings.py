"""Settings every training method shares: where it runs, how it is seeded, budgeted and resumed."""

from __future__ import annotations

from dataclasses import dataclass

from hema.train.run.loop import BATCHNORM_POLICIES

__all__ = ["RunSettings"]


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The part of every stage config that is not about the method itself.

    Attributes:
        batchnorm: ``frozen`` (keep pretrained running statistics; affine parameters still train), ``train``, or
            ``sync`` (SyncBatchNorm across processes under torchrun).
        device: ``auto``, ``cpu`` or ``cuda`` (torchrun picks the GPU of each process).
        amp: Mixed precision on CUDA (bfloat16 where supported, else float16 with gradient scaling).
        workers: Data-loading processes per training process.
        seed: Seed for initialisation, data order and augmentation.
        max_steps: Stop after this many steps in this invocation (a smoke run; ``resume`` continues).
        time_budget_minutes: Stop after this much wall time in this invocation (``resume`` continues).
        resume: Continue from ``out/checkpoint.pt`` if it exists.
    """

    batchnorm: str = "frozen"
    device: str = "auto"
    amp: bool = True
    workers: int = 4
    seed: int = 0
    max_steps: int | None = None
    time_budget_minutes: float | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if self.batchnorm not in BATCHNORM_POLICIES:
            raise ValueError(f"unknown BatchNorm policy {self.batchnorm!r}; choose one of {BATCHNORM_POLICIES}")
