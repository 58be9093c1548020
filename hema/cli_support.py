"""What the three command-line tools share: user errors as exit code 2, and the command line for provenance."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from hema.runtime.engines.base import ModelError

__all__ = ["command_line", "user_errors_exit_2"]

Result = TypeVar("Result")


def user_errors_exit_2(run: Callable[[], Result]) -> Result:
    """Call ``run``; bad settings, unreadable files, unusable models and checkpoints end the command with code 2.

    (:class:`~hema.train.backbones.weight_files.CheckpointMismatchError` is a ``ValueError``.)
    """
    try:
        return run()
    except (ValueError, OSError, ModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def command_line() -> str:
    """This process's command line, program name without its folder, for a card's provenance."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
