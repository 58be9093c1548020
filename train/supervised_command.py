"""``hema-train supervised``: the command-line face of :func:`hema.train.supervised.train_supervised`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hema.train.command_errors import user_errors_exit_2
from hema.train.config_files import build_config

__all__ = ["supervised"]

Opt = typer.Option


def supervised(
    data: Annotated[Path, Opt(help="Labelled cells: DATA/<class>/**/<image>.")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, best.pt, metrics.csv, validation.csv.")],
    config: Annotated[Optional[Path], Opt(help="TOML file with any SupervisedConfig setting.")] = None,
    data_split: Annotated[Optional[str], Opt(help="all, train (default) or test part of DATA.")] = None,
    val_fraction: Annotated[Optional[float], Opt(help="Share of each class held out for early stopping.")] = None,
    backbone: Annotated[Optional[str], Opt(help="timm name (efficientnet_lite0: ImageNet) or checkpoint file.")] = None,
    arch: Annotated[Optional[str], Opt(help="timm architecture of a checkpoint that does not name it.")] = None,
    image_size: Annotated[Optional[int], Opt(help="Input side.")] = None,
    epochs: Annotated[Optional[int], Opt(help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Images per step over all processes.")] = None,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate of the classifier (backbone: x0.1).")] = None,
    schedule: Annotated[Optional[str], Opt(help="onecycle (default) or cosine.")] = None,
    balance: Annotated[Optional[str], Opt(help="loss (class-weighted, default), sampler or none.")] = None,
    patience: Annotated[Optional[int], Opt(help="Epochs without better validation macro-F1 before stopping.")] = None,
    batchnorm: Annotated[Optional[str], Opt(help="frozen (default), train or sync.")] = None,
    device: Annotated[Optional[str], Opt(help="auto, cpu or cuda.")] = None,
    amp: Annotated[Optional[bool], Opt("--amp/--no-amp", help="Mixed precision on CUDA.")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loading processes per training process.")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed.")] = None,
    max_steps: Annotated[Optional[int], Opt(help="Stop after this many steps (--resume continues).")] = None,
    time_budget: Annotated[Optional[float], Opt(help="Stop after this many minutes (--resume continues).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
) -> None:
    """Fine-tune a backbone with a linear classifier; early stopping on validation macro-F1.

    OUT/best.pt feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export` unchanged.
    """
    from hema.train.supervised import SupervisedConfig, train_supervised

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
        "batchnorm": batchnorm,
        "device": device,
        "amp": amp,
        "workers": workers,
        "seed": seed,
        "max_steps": max_steps,
        "time_budget_minutes": time_budget,
        "resume": resume or None,
    }
    best = user_errors_exit_2(lambda: train_supervised(build_config(SupervisedConfig, config, overrides)))
    typer.echo(f"best checkpoint: {best}")
