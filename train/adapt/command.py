"""``hema-train adapt``: the command-line face of :func:`hema.train.adapt.training.adapt_mdd`.

Every option is derived from :class:`~hema.train.adapt.config.AdaptConfig` by
:func:`~hema.train.run.options.config_command`: a new setting is a new field there.
"""

from __future__ import annotations

import typer

from hema.train.adapt.config import AdaptConfig
from hema.train.run.options import config_command

__all__ = ["adapt"]


def train(config: AdaptConfig) -> None:
    """MDD domain adaptation from a labelled lab (--data) to another lab's unlabelled cells (--cells).

    OUT/best.pt (chosen without target labels) feeds `hema-train fewshot --backbone OUT/best.pt` and `hema-export`.
    """
    from hema.train.adapt.training import adapt_mdd

    typer.echo(f"best checkpoint (label-free target score): {adapt_mdd(config)}")


adapt = config_command(AdaptConfig, train, name="adapt")
