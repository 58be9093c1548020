"""``hema-infer review``'s two jobs: serve the review page until stopped, or write the verified cells as a folder.

Serving prints the address (with the token, when there is one) on standard output and notes on standard error,
never opens a browser, and stops on Ctrl-C or SIGTERM: the outputs are written a last time and the journal is
released. Killed outright (``kill -9``), it loses at most the decision in flight: every decision answered as
saved is in the journal, and the next start writes the outputs from it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hema.runtime.terminal import terminal_safe
from hema.runtime.verification.labelled_export import export_labelled
from hema.runtime.verification.server import ReviewServer
from hema.runtime.verification.session import ReviewSession
from hema.runtime.verification.settings import ReviewError, ReviewSettings
from hema.runtime.verification.tally import verdicts

__all__ = ["export_verified", "serve_review"]


class _Stopped(Exception):
    """SIGTERM arrived: stop serving as Ctrl-C does."""


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve_review(
    run_dir: Path, settings: ReviewSettings, *, say: Callable[[str], None], note: Callable[[str], None]
) -> list[Path]:
    """Serve the review of ``run_dir`` until Ctrl-C or SIGTERM; the outputs written at the end.

    Args:
        run_dir: The run folder.
        settings: Address, token, user, target, extra classes.
        say: Prints a line on standard output (the address).
        note: Prints a line on standard error (notes and warnings).

    Raises:
        ReviewError: If the run, its journal or the address cannot be used.
    """
    session = ReviewSession.open(run_dir, settings, warn=note)
    try:
        try:
            server = ReviewServer(session)
        except OSError as error:
            where = f"{settings.host}:{settings.port}"
            raise ReviewError(f"cannot listen on {where}: {error.strerror or error}") from error
        with server:
            for line in session.notes():
                note(f"note: {line}")
            table = session.table
            note(
                f"verifying {sum(cell.classified for cell in table.cells)} cells on {len(table.slides)} slide(s) of "
                f"{terminal_safe(run_dir)} as {terminal_safe(settings.user)}; every decision is saved to "
                f"{terminal_safe(session.journal.path)}"
            )
            say(f"review page: {server.url}")
            note("open it in a browser on this machine; Ctrl-C stops the review")
            with _stop_on_sigterm():
                try:
                    server.serve_forever()
                except (KeyboardInterrupt, _Stopped):
                    pass
    finally:
        written = session.close()
    return written


def export_verified(
    run_dir: Path,
    folder: Path,
    settings: ReviewSettings,
    *,
    include_extra: bool,
    say: Callable[[str], None],
    note: Callable[[str], None],
) -> list[Path]:
    """Write the run's verified cells to ``folder/<class>/<slide>/`` and the verified outputs, without serving.

    Args:
        run_dir: The run folder.
        folder: The labelled folder to make (:func:`~hema.runtime.verification.labelled_export.export_labelled`).
        settings: The review's settings (classes, target).
        include_extra: Also the cells of the lab's extra classes.
        say: Prints a line on standard output (what was written).
        note: Prints a line on standard error (what was left out).

    Returns:
        The verified outputs written.

    Raises:
        ReviewError: If the run or its journal cannot be used (a review of it still running included), or there
            is nothing to export, or the folder exists and is not empty.
    """
    session = ReviewSession.open(run_dir, settings, warn=note)
    try:
        judged = verdicts(session.table, session.journal)
        exported = export_labelled(session.table, judged, folder, include_extra=include_extra)
    finally:
        written = session.close()
    counts = ", ".join(f"{count} {terminal_safe(name)}" for name, count in exported.written.items())
    say(f"wrote {sum(exported.written.values())} verified cells ({counts}) to {terminal_safe(folder)}")
    for name, count in exported.extra_left_out.items():
        note(f"note: {count} {terminal_safe(name)} cell(s) left out: not a class of the model (see --include-extra)")
    if exported.missing:
        note(f"note: {exported.missing} verified cell(s) left out: their image is no longer there")
    return written
