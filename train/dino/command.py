"""``hema-train ssl``: the command-line face of :func:`hema.train.dino.training.train_dino`.

Every option is derived from :class:`~hema.train.dino.config.DINOConfig` by
:func:`~hema.train.run.options.config_command`: a new setting is a new field there.
"""

from __future__ import annotations

import typer

from hema.train.dino.config import DINOConfig
from hema.train.run.options import config_command

__all__ = ["ssl"]


def train(config: DINOConfig) -> None:
    """DINO self-supervised training of a backbone on a lab's unlabelled cells.

    The checkpoint feeds `hema-train fewshot --backbone OUT/checkpoint.pt` and `hema-export` unchanged.
    Several GPUs: `torchrun --nproc_per_node 4 -m hema.train.cli ssl ...`.
    """
    from hema.train.dino.training import train_dino

    typer.echo(f"wrote {train_dino(config)}")


ssl = config_command(DINOConfig, train, name="ssl")
