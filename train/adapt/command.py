"""``hema-train adapt``: the command-line face of :func:`hema.train.adapt.training.adapt_mdd`."""

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

__all__ = ["adapt"]

Opt = typer.Option


def adapt(
    source: Annotated[Path, Opt(help="Labelled source lab: SOURCE/<class>/**/<image>.")],
    target: Annotated[Path, Opt(help="Target lab's cells (labels, if any, are used only for reporting).")],
    out: Annotated[Path, Opt(help="Run folder: checkpoint.pt, best.pt, metrics.csv, target.csv.")],
    config: ConfigFile = None,
    source_split: Annotated[str | None, Opt(help="all, train (default) or test part of SOURCE.")] = None,
    target_split: Annotated[str | None, Opt(help="all (default), train or test part of TARGET.")] = None,
    backbone: Backbone = None,
    arch: Arch = None,
    image_size: Annotated[int | None, Opt(help="Input side.")] = None,
    epochs: Annotated[int | None, Opt(help="Epochs; the target is scored after each.")] = None,
    iters_per_epoch: Annotated[int | None, Opt(help="Steps per epoch.")] = None,
    batch_size: Annotated[int | None, Opt(help="Source (and target) images per step.")] = None,
    lr: Annotated[float | None, Opt(help="Learning rate of the new layers (backbone: x0.1).")] = None,
    margin: Annotated[float | None, Opt(help="MDD margin gamma.")] = None,
    trade_off: Annotated[float | None, Opt(help="Transfer-loss weight; 0 trains source-only.")] = None,
    grl_max_iters: Annotated[int | None, Opt(help="Steps over which the gradient reversal warms up.")] = None,
    selection: Annotated[str | None, Opt(help="Label-free score picking best.pt: entropy (default) or snd.")] = None,
    class_weights: Annotated[
        bool | None, Opt("--class-weights/--no-class-weights", help="Inverse-frequency source weights.")
    ] = None,
    batchnorm: BatchNorm = None,
    device: Device = None,
    amp: Amp = None,
    workers: Workers = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    time_budget: TimeBudget = None,
    resume: Resume = False,
) -> None:
    """MDD domain adaptation from a labelled source lab to an unlabelled target lab.

    OUT/best.pt (chosen without target labels) feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export`.
    """
    from hema.train.adapt.training import AdaptConfig, adapt_mdd

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
        "grl_max_iters": grl_max_iters,
        "selection": selection,
        "class_weights": class_weights,
        **run_setting_overrides(batchnorm, device, amp, workers, seed, max_steps, time_budget, resume),
    }
    best = user_errors_exit_2(lambda: adapt_mdd(build_config(AdaptConfig, config, overrides)))
    typer.echo(f"best checkpoint (label-free target score): {best}")
