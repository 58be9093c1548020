"""``hema-train supervised``: the command-line face of :func:`hema.train.supervised.finetune.train_supervised`.

Every option is derived from :class:`~hema.train.supervised.config.SupervisedConfig` by
:func:`~hema.train.run.options.config_command`: a new setting is a new field there.
"""

from __future__ import annotations

import typer

from hema.train.run.options import config_command
from hema.train.supervised.config import SupervisedConfig

__all__ = ["supervised"]


def train(config: SupervisedConfig) -> None:
    """Fine-tune a backbone with a linear classifier; early stopping on validation macro-F1.

    OUT/best.pt feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export` unchanged.
    """
    from hema.train.supervised.finetune import train_supervised

    typer.echo(f"best checkpoint: {train_supervised(config)}")


supervised = config_command(SupervisedConfig, train, name="supervised")
