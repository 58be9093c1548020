"""``hema-train supervised``: the command-line face of :func:`hema.train.supervised.finetune.train_supervised`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hema.cli_support import user_errors_exit_2
from hema.train.run.config_files import build_config
from hema.train.run.options import (
    Amp,
    Arch,
    Backbone,
    BatchNorm,
    ConfigFile,
    Device,
    MaxSteps,
    Resume,
    Seed,
    TimeBudget,
    Workers,
    run_setting_overrides,
)

__all__ = ["supervised"]

Opt = typer.Option


def supervised(
    data: Annotated[Path, Opt(help="Labelled cells: DATA/<class>/**/<image>.")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, best.pt, metrics.csv, validation.csv.")],
    config: ConfigFile = None,
    data_split: Annotated[str | None, Opt(help="all, train (default) or test part of DATA.")] = None,
    val_fraction: Annotated[float | None, Opt(help="Share of each class held out for early stopping.")] = None,
    backbone: Backbone = None,
    arch: Arch = None,
    image_size: Annotated[int | None, Opt(help="Input side.")] = None,
    epochs: Annotated[int | None, Opt(help="Maximum epochs.")] = None,
    batch_size: Annotated[int | None, Opt(help="Images per step over all processes.")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate of the classifier (backbone: x0.1).")] = None,
    schedule: Annotated[str | None, Opt(help="onecycle (default) or cosine.")] = None,
    balance: Annotated[str | None, Opt(help="loss (class-weighted, default), sampler or none.")] = None,
    patience: Annotated[int | None, Opt(help="Epochs without better validation macro-F1 before stopping.")] = None,
    batchnorm: BatchNorm = None,
    device: Device = None,
    amp: Amp = None,
    workers: Workers = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    resume: Resume = False,
) -> None:
    """Fine-tune a backbone with a linear classifier; early stopping on validation macro-F1.

    OUT/best.pt feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export` unchanged.
    """
    from hema.train.supervised.finetune import SupervisedConfig, train_supervised

    overrides = {
        "data": str(data),
        "out": str(out),
        "data_split": data_split,
        "val_fraction": val_fraction,
        "backbone": backbone,
        "arch": arch,
        "image_size": image_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "schedule": schedule,
        "balance": balance,
        "patience": patience,
        **run_setting_overrides(batchnorm, device, amp, workers, seed, max_steps, time_budget, resume),
    }
    best = user_errors_exit_2(lambda: train_supervised(build_config(SupervisedConfig, config, overrides)))
    typer.echo(f"best checkpoint: {best}")
