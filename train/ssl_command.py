"""``hema-train ssl``: the command-line face of :func:`hema.train.ssl.train_dino`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hema.train.command_errors import user_errors_exit_2
from hema.train.config_files import build_config

__all__ = ["ssl"]

Opt = typer.Option


def ssl(
    data: Annotated[list[Path], Opt(help="Folder(s) of cell images; labels are ignored. Repeat for several.")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, metrics.csv, tensorboard/.")],
    config: Annotated[Optional[Path], Opt(help="TOML file with any DINOConfig setting; options override it.")] = None,
    data_split: Annotated[Optional[str], Opt(help="all, train or test part of the data (content-hash split).")] = None,
    backbone: Annotated[Optional[str], Opt(help="timm name (efficientnet_lite0: ImageNet) or checkpoint file.")] = None,
    arch: Annotated[Optional[str], Opt(help="timm architecture of a checkpoint that does not name it.")] = None,
    scratch: Annotated[bool, Opt("--scratch", help="Start Lite0 from random weights instead of ImageNet.")] = False,
    global_size: Annotated[Optional[int], Opt(help="Global crop side (backbone input size).")] = None,
    local_size: Annotated[Optional[int], Opt(help="Local crop side.")] = None,
    local_crops: Annotated[Optional[int], Opt(help="Local crops per image.")] = None,
    out_dim: Annotated[Optional[int], Opt(help="DINO prototypes.")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (length of all schedules).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Images per step over all processes.")] = None,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate per 256 images.")] = None,
    warmup_epochs: Annotated[Optional[int], Opt(help="Learning-rate warm-up epochs.")] = None,
    teacher_temp: Annotated[Optional[float], Opt(help="Teacher temperature after warm-up.")] = None,
    batchnorm: Annotated[Optional[str], Opt(help="frozen (default), train, or sync (SyncBatchNorm, multi-GPU).")] = None,
    device: Annotated[Optional[str], Opt(help="auto, cpu or cuda (torchrun sets the GPU per process).")] = None,
    amp: Annotated[Optional[bool], Opt("--amp/--no-amp", help="Mixed precision on CUDA.")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loading processes per training process.")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed for initialisation, data order and augmentation.")] = None,
    max_steps: Annotated[Optional[int], Opt(help="Stop after this many steps (smoke runs; --resume continues).")] = None,
    time_budget: Annotated[Optional[float], Opt(help="Stop after this many minutes (--resume continues).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
) -> None:
    """DINO self-supervised training of a backbone on unlabelled cells.

    The checkpoint feeds `hema-train fewshot --backbone OUT/checkpoint.pt` and `hema-export` unchanged.
    Several GPUs: `torchrun --nproc_per_node 4 -m hema.train.cli ssl ...`.
    """
    from hema.train.ssl import DINOConfig, train_dino

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
        "batchnorm": batchnorm,
        "device": device,
        "amp": amp,
        "workers": workers,
        "seed": seed,
        "max_steps": max_steps,
        "time_budget_minutes": time_budget,
        "resume": resume or None,
    }
    checkpoint = user_errors_exit_2(lambda: train_dino(build_config(DINOConfig, config, overrides)))
    typer.echo(f"wrote {checkpoint}")
