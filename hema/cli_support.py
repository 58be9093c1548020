"""What the three command-line tools share: one option vocabulary, user errors as exit 2, provenance.

The vocabulary (README, "Command-line vocabulary"): ``-d/--data`` labelled cells ``DIR/<class>/**/<image>``;
``--cells`` a lab's unlabelled cells, any folder structure; ``--eval`` labelled cells scored instead of the test
split of ``--data``; ``--split`` the part of a folder used (hema's content-hash split); ``-m/--model`` an exported
hema model; ``-o/--out`` what a command writes; ``-b/--batch-size``; ``--workers`` data-loading processes
(training); ``--threads`` threads (runtime). Old spellings stay as hidden options that warn (:func:`renamed`).
This module imports only typer: every ``--help`` answers without loading torch or onnx.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from hema.runtime.engines.base import ModelError

__all__ = [
    "batch_size_option",
    "command_line",
    "data_option",
    "hidden_alias",
    "model_option",
    "out_option",
    "renamed",
    "split_option",
    "user_errors_exit_2",
]


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


def data_option(help: str) -> Any:
    """``-d/--data``: labelled cells, ``DIR/<class>/**/<image>``."""
    return typer.Option("--data", "-d", help=help)


def model_option(help: str) -> Any:
    """``-m/--model``: an exported hema model."""
    return typer.Option("--model", "-m", help=help)


def out_option(help: str) -> Any:
    """``-o/--out``: the file or folder a command writes."""
    return typer.Option("--out", "-o", help=help)


def batch_size_option(help: str = "Images per forward pass.") -> Any:
    """``-b/--batch-size``."""
    return typer.Option("--batch-size", "-b", min=1, help=help)


def split_option(help: str) -> Any:
    """``--split``; annotate the parameter ``hema.train.data.folders.Split``: typer shows and enforces the choice."""
    return typer.Option("--split", help=help)


def hidden_alias(flag: str) -> Any:
    """An old spelling kept so that existing scripts still run; hidden from ``--help``, warns when used."""
    return typer.Option(flag, hidden=True)


def renamed(value: Result | None, old_value: Result | None, *, old: str, new: str) -> Result | None:
    """The value given under ``new``, or, when the old spelling ``old`` was used, that one (with a note on stderr).

    The old spelling wins when both are given: it can only have been typed, while ``value`` may be a default.
    """
    if old_value is None:
        return value
    typer.echo(f"note: {old} is deprecated; use {new}", err=True)
    return old_value
