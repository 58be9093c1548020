"""``hema-train adapt``: the command-line face of :func:`hema.train.adapt.adapt_mdd`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hema.train.command_errors import user_errors_exit_2
from hema.train.config_files import build_config

__all__ = ["adapt"]

Opt = typer.Option


def adapt(
    source: Annotated[Path, Opt(help="Labelled source lab: SOURCE/<class>/**/<image>.")],
    target: Annotated[Path, Opt(help="Target lab's cells (labels, if any, are used only for reporting).")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, best.pt (best target SND), metrics.csv, target.csv.")],
    config: Annotated[Optional[Path], Opt(help="TOML file with any AdaptConfig setting.")] = None,
    source_split: Annotated[Optional[str], Opt(help="all, train (default) or test part of SOURCE.")] = None,
    target_split: Annotated[Optional[str], Opt(help="all (default), train or test part of TARGET.")] = None,
    backbone: Annotated[Optional[str], Opt(help="timm name (efficientnet_lite0: ImageNet) or checkpoint file.")] = None,
    arch: Annotated[Optional[str], Opt(help="timm architecture of a checkpoint that does not name it.")] = None,
    image_size: Annotated[Optional[int], Opt(help="Input side.")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs; the target is scored after each.")] = None,
    iters_per_epoch: Annotated[Optional[int], Opt(help="Steps per epoch.")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Source (and target) images per step.")] = None,
    lr: Annotated[Optional[float], Opt(help="Learning rate of the new layers (backbone: x0.1).")] = None,
    margin: Annotated[Optional[float], Opt(help="MDD margin gamma.")] = None,
    trade_off: Annotated[Optional[float], Opt(help="Transfer-loss weight; 0 trains source-only.")] = None,
    class_weights: Annotated[Optional[bool], Opt("--class-weights/--no-class-weights", help="Inverse-frequency source weights.")] = None,
    batchnorm: Annotated[Optional[str], Opt(help="Backbone BatchNorm: frozen (default), train or sync.")] = None,
    device: Annotated[Optional[str], Opt(help="auto, cpu or cuda.")] = None,
    amp: Annotated[Optional[bool], Opt("--amp/--no-amp", help="Mixed precision on CUDA.")] = None,
    workers: Annotated[Optional[int], Opt(help="Data-loading processes per domain and process.")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed.")] = None,
    max_steps: Annotated[Optional[int], Opt(help="Stop after this many steps (--resume continues).")] = None,
    time_budget: Annotated[Optional[float], Opt(help="Stop after this many minutes (--resume continues).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue from OUT/checkpoint.pt.")] = False,
) -> None:
    """MDD domain adaptation from a labelled source lab to an unlabelled target lab.

    OUT/best.pt (chosen without target labels) feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export`.
    """
    from hema.train.adapt import AdaptConfig, adapt_mdd

    overrides = {
        "source": str(source),
        "target": str(target),
        "out": str(out),
        "source_split": source_split,
        "target_split": target_split,
        "backbone": backbone,
        "arch": arch,
        "image_size": image_size,
        "epochs": epochs,
        "iters_per_epoch": iters_per_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "margin": margin,
        "trade_off": trade_off,
        "class_weights": class_weights,
        "batchnorm": batchnorm,
        "device": device,
        "amp": amp,
        "workers": workers,
        "seed": seed,
        "max_steps": max_steps,
        "time_budget_minutes": time_budget,
        "resume": resume or None,
    }
    best = user_errors_exit_2(lambda: adapt_mdd(build_config(AdaptConfig, config, overrides)))
    typer.echo(f"best checkpoint (target SND): {best}")
