"""Turn the errors a user can cause into a one-line message and exit code 2, instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from hema.runtime.engine import ModelError

__all__ = ["user_errors_exit_2"]

Result = TypeVar("Result")


def user_errors_exit_2(run: Callable[[], Result]) -> Result:
    """Call ``run``; bad settings, unreadable files, unusable models and checkpoints end the command with code 2.

    (:class:`~hema.train.checkpoints.CheckpointMismatchError` is a ``ValueError``.)
    """
    try:
        return run()
    except (ValueError, OSError, ModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
