"""Command-line options shared by ``hema-train ssl``, ``supervised`` and ``adapt``.

Every option defaults to ``None`` so that :func:`hema.train.run.config_files.build_config` can tell an option that
was given (it overrides the TOML file) from one that was not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "Amp",
    "Arch",
    "Backbone",
    "BatchNorm",
    "ConfigFile",
    "Device",
    "MaxSteps",
    "Resume",
    "Seed",
    "TimeBudget",
    "Workers",
    "run_setting_overrides",
]

ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML file with any setting; options override it.")]
Backbone = Annotated[str | None, typer.Option(help="timm name (efficientnet_lite0: ImageNet) or checkpoint file.")]
Arch = Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")]
BatchNorm = Annotated[str | None, typer.Option(help="frozen (default), train, or sync (SyncBatchNorm, multi-GPU).")]
Device = Annotated[str | None, typer.Option(help="auto, cpu or cuda (torchrun sets the GPU of each process).")]
Amp = Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")]
Workers = Annotated[int | None, typer.Option(help="Data-loading processes per training process.")]
Seed = Annotated[int | None, typer.Option(help="Seed for initialisation, data order and augmentation.")]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after this many steps (smoke runs; --resume continues).")]
TimeBudget = Annotated[float | None, typer.Option(help="Stop after this many minutes (--resume continues).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt.")]


def run_setting_overrides(
    batchnorm: str | None,
    device: str | None,
    amp: bool | None,
    workers: int | None,
    seed: int | None,
    max_steps: int | None,
    time_budget: float | None,
    resume: bool,
) -> dict[str, Any]:
    """The :class:`~hema.train.run.settings.RunSettings` part of a command's overrides."""
    return {
        "batchnorm": batchnorm,
        "device": device,
        "amp": amp,
        "workers": workers,
        "seed": seed,
        "max_steps": max_steps,
        "time_budget_minutes": time_budget,
        "resume": resume or None,
    }
