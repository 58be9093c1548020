"""``hema-infer``'s exit codes, and the one place that turns an unexpected exception into exit code 3.

- 0: every input classified;
- 1: some inputs could not be read (each has an ``error`` row);
- 2: no usable model, input or output folder (``OUT`` locked by another run included);
- 3: an internal error, a bug in hema: one line names it (the traceback only with ``HEMA_DEBUG=1``);
- 130 or 143 (128 + the signal's number): stopped by Ctrl-C (SIGINT) or SIGTERM before the end.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import typer

from hema.runtime.reports.output_lock import OutputError
from hema.runtime.terminal import terminal_safe

__all__ = [
    "DEBUG_ENV",
    "EXIT_BUG",
    "EXIT_OK",
    "EXIT_UNREADABLE",
    "EXIT_UNUSABLE",
    "Interrupted",
    "exit_codes",
]

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_UNUSABLE = 2
EXIT_BUG = 3
DEBUG_ENV = "HEMA_DEBUG"
"""Set to ``1`` to print the traceback of an internal error (exit code 3)."""


class Interrupted(Exception):
    """The run was stopped by a signal before it finished; the message says what was kept.

    Args:
        signal_name: ``SIGINT`` or ``SIGTERM``.
        message: What the person needs to know (where the rows classified so far are).
    """

    def __init__(self, signal_name: str, message: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process a signal ended (130: SIGINT, 143: SIGTERM)."""
        return 128 + signal.Signals[self.signal_name].value


def _nothing_kept() -> str:
    return ""


@contextmanager
def exit_codes(say: Callable[[str], None], aftermath: Callable[[], str] = _nothing_kept) -> Iterator[None]:
    """End the command with its documented exit code whatever happens inside the block.

    ``typer.Exit`` and click's own errors pass through. :class:`OutputError` is exit 2, :class:`Interrupted` (and
    a second Ctrl-C, :class:`KeyboardInterrupt`) 128 + the signal's number, any other exception exit 3 with one
    line saying it is a bug in hema (and the traceback before it if ``HEMA_DEBUG=1``).

    Args:
        say: Prints one message to stderr.
        aftermath: Called after a failure: what the run left in its output folder, said after the error when
            not empty.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
        raise  # the command's own exit codes and click's usage errors
    except OutputError as error:
        _fail(say, aftermath, f"error: {error}", EXIT_UNUSABLE, error)
    except Interrupted as error:
        _fail(say, aftermath, f"{error.signal_name}: {error}", error.exit_code, error)
    except KeyboardInterrupt as error:
        _fail(say, aftermath, "interrupted: stopped at once", 128 + signal.SIGINT.value, error)
    except Exception as error:
        if os.environ.get(DEBUG_ENV) == "1":
            say(traceback.format_exc().rstrip())
        line = terminal_safe(f"{type(error).__name__}: {error}")
        message = f"error: internal error, a bug in hema (please report it): {line} ({DEBUG_ENV}=1 shows where)"
        _fail(say, aftermath, message, EXIT_BUG, error)


def _fail(say: Callable[[str], None], aftermath: Callable[[], str], message: str, code: int, error: BaseException):
    say(message)
    if kept := aftermath():
        say(kept)
    raise typer.Exit(code) from error
