"""What every hema training run shares: budget, mixed precision, DDP wrapping, BatchNorm policy, resuming."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hema.train.run.distributed import DistributedContext, is_distributed
from hema.train.run.settings import BATCHNORM_POLICIES

__all__ = ["Budget", "MixedPrecision", "set_train_mode", "unwrap", "wrap_distributed"]


@dataclass
class Budget:
    """Stops a run after ``max_steps`` optimisation steps or ``minutes`` of wall time, whichever comes first.

    A budgeted run is a prefix of the full schedule: it saves a checkpoint that ``--resume`` continues.
    """

    max_steps: int | None = None
    minutes: float | None = None
    started: float = field(default_factory=time.monotonic)
    steps_taken: int = 0

    def exhausted(self) -> bool:
        if self.max_steps is not None and self.steps_taken >= self.max_steps:
            return True
        return self.minutes is not None and time.monotonic() - self.started >= 60.0 * self.minutes


class MixedPrecision:
    """Autocast and gradient scaling on CUDA (bfloat16 where supported, else float16 with a GradScaler).

    On CPU both are disabled and every step is plain float32, so CPU tests check the same code path.
    """

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and self.dtype == torch.float16)

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.enabled)

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[nn.Parameter],
        clip_grad: float | None = None,
        before_step: Callable[[], None] | None = None,
    ) -> float:
        """Backward, unscale, clip, optional gradient surgery, optimiser step. Returns the gradient norm."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        parameters = [parameter for parameter in parameters if parameter.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad if clip_grad else float("inf"))
        if before_step is not None:
            before_step()
        self.scaler.step(optimizer)
        self.scaler.update()
        return float(norm)


def set_train_mode(model: nn.Module, batchnorm: str = "frozen", scope: nn.Module | None = None) -> nn.Module:
    """Training mode, but with BatchNorm running statistics kept fixed when ``batchnorm == "frozen"``.

    Pretrained CNNs lose accuracy when their BatchNorm statistics are re-estimated on cell images alone, so
    hema freezes them by default; the affine BatchNorm parameters still train.

    Args:
        model: The module to put in training mode.
        batchnorm: One of :data:`~hema.train.run.settings.BATCHNORM_POLICIES`.
        scope: Where BatchNorm is frozen (default: all of ``model``), e.g. only the pretrained backbone.
    """
    if batchnorm not in BATCHNORM_POLICIES:
        raise ValueError(f"unknown BatchNorm policy {batchnorm!r}; choose one of {BATCHNORM_POLICIES}")
    model.train()
    if batchnorm == "frozen":
        for module in (scope or model).modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return model


def wrap_distributed(model: nn.Module, context: DistributedContext, batchnorm: str = "frozen") -> nn.Module:
    """DistributedDataParallel around ``model`` under torchrun (SyncBatchNorm for ``"sync"``), else ``model``."""
    if not is_distributed():
        return model
    if batchnorm == "sync":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
