"""``hema-train ssl``: the command-line face of :func:`hema.train.dino.training.train_dino`."""

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

__all__ = ["ssl"]

Opt = typer.Option


def ssl(
    data: Annotated[list[Path], Opt(help="Folder(s) of cell images; labels are ignored. Repeat for several.")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, metrics.csv, tensorboard/.")],
    config: ConfigFile = None,
    data_split: Annotated[str | None, Opt(help="all, train or test part of the data (content-hash split).")] = None,
    backbone: Backbone = None,
    arch: Arch = None,
    scratch: Annotated[bool, Opt("--scratch", help="Start Lite0 from random weights instead of ImageNet.")] = False,
    global_size: Annotated[int | None, Opt(help="Global crop side (backbone input size).")] = None,
    local_size: Annotated[int | None, Opt(help="Local crop side.")] = None,
    local_crops: Annotated[int | None, Opt(help="Local crops per image.")] = None,
    out_dim: Annotated[int | None, Opt(help="DINO prototypes.")] = None,
    epochs: Annotated[int | None, Opt(help="Epochs (length of all schedules).")] = None,
    batch_size: Annotated[int | None, Opt(help="Images per step over all processes.")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate per 256 images.")] = None,
    warmup_epochs: Annotated[int | None, Opt(help="Learning-rate warm-up epochs.")] = None,
    teacher_temp: Annotated[float | None, Opt(help="Teacher temperature after warm-up.")] = None,
    warmup_teacher_temp: Annotated[float | None, Opt(help="Teacher temperature of the first epoch.")] = None,
    warmup_teacher_temp_epochs: Annotated[int | None, Opt(help="Epochs of teacher-temperature warm-up.")] = None,
    batchnorm: BatchNorm = None,
    device: Device = None,
    amp: Amp = None,
    workers: Workers = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    resume: Resume = False,
) -> None:
    """DINO self-supervised training of a backbone on unlabelled cells.

    The checkpoint feeds `hema-train fewshot --backbone OUT/checkpoint.pt` and `hema-export` unchanged.
    Several GPUs: `torchrun --nproc_per_node 4 -m hema.train.cli ssl ...`.
    """
    from hema.train.dino.training import DINOConfig, train_dino

    overrides = {
        "data": tuple(str(folder) for folder in data),
        "out": str(out),
        "data_split": data_split,
        "backbone": backbone,
        "arch": arch,
        "pretrained": False if scratch else None,
        "global_size": global_size,
        "local_size": local_size,
        "local_crops": local_crops,
        "out_dim": out_dim,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_epochs": warmup_epochs,
        "teacher_temp": teacher_temp,
        "warmup_teacher_temp": warmup_teacher_temp,
        "warmup_teacher_temp_epochs": warmup_teacher_temp_epochs,
        **run_setting_overrides(batchnorm, device, amp, workers, seed, max_steps, time_budget, resume),
    }
    checkpoint = user_errors_exit_2(lambda: train_dino(build_config(DINOConfig, config, overrides)))
    typer.echo(f"wrote {checkpoint}")
