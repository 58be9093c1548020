"""One ``hema-infer classify`` run into its output folder: classify, stage every report, move them into place.

The reports are staged and committed by :class:`~hema.runtime.reports.run_output.StagedReports`: rows stream to
``OUT/cells.csv.partial``; ``summary.json`` and ``report.html`` are staged when every cell is classified; all
replace the previous run's together at the end. A stop asked for by SIGINT or SIGTERM
(:class:`~hema.runtime.watch.watcher.StopFlag`) is honoured after the current cell or thumbnail, before the
commit, as :class:`~hema.runtime.exit_codes.Interrupted`.
"""

from __future__ import annotations

from contextlib import closing
from functools import partial
from typing import Any

from tqdm import tqdm

from hema.runtime.classify import CellResult, classify_files
from hema.runtime.discovery import InputFiles
from hema.runtime.engines.base import Engine
from hema.runtime.exit_codes import Interrupted
from hema.runtime.reports.html_page import write_html_report
from hema.runtime.reports.run_output import CELLS_NAME, HTML_NAME, SUMMARY_NAME, StagedReports
from hema.runtime.reports.tables import summarise, write_summary
from hema.runtime.terminal import terminal_safe
from hema.runtime.watch.watcher import StopFlag

__all__ = ["classify_into", "kept_after_failure", "raise_if_stopped"]


def classify_into(
    reports: StagedReports,
    engine: Engine,
    inputs: InputFiles,
    stop: StopFlag,
    batch_size: int,
    decode_threads: int,
    no_html: bool,
) -> tuple[list[CellResult], dict[str, Any]]:
    """Classify, stage every report, and move them into place together; the results and the summary.

    Args:
        reports: The run's staged reports (in a locked output folder).
        engine: A loaded classifier.
        inputs: The files to classify, their slides, and the files known to be unreadable.
        stop: Set by SIGINT or SIGTERM (:func:`~hema.runtime.watch.watcher.stop_on_signals`).
        batch_size: Images per engine call.
        decode_threads: Threads decoding images (and making thumbnails).
        no_html: Make no ``report.html`` (the previous run's is removed with the commit).

    Raises:
        Interrupted: If a stop was asked for before the reports were moved into place.
    """
    check_stop = partial(raise_if_stopped, stop)
    results = []
    with (
        tqdm(total=len(inputs.images), unit="cell", desc="classifying", disable=None) as progress,
        closing(
            classify_files(
                engine,
                inputs.rows,
                batch_size=batch_size,
                decode_threads=decode_threads,
                slides=inputs.slides,
                unreadable=inputs.unreadable,
                on_batch=progress.update,
            )
        ) as cells,
    ):
        for result in cells:
            reports.write(result)
            results.append(result)
            check_stop()

    summary = summarise(results, engine.card.class_names, str(engine.path), skipped=len(inputs.skipped))
    with reports.staging(SUMMARY_NAME) as path:
        write_summary(summary, path)
    if not no_html:
        with (
            reports.staging(HTML_NAME) as path,
            tqdm(total=summary["classified"], unit="cell", desc="report.html", disable=None) as progress,
        ):
            write_html_report(
                path,
                results,
                summary,
                engine.card.class_names,
                f"{engine.path.name} on {engine.describe()}",
                threads=decode_threads,
                on_thumbnail=lambda count: (progress.update(count), check_stop()),
            )
    check_stop()
    reports.commit([CELLS_NAME, SUMMARY_NAME] if no_html else [CELLS_NAME, SUMMARY_NAME, HTML_NAME])
    return results, summary


def raise_if_stopped(stop: StopFlag) -> None:
    """Raise :class:`~hema.runtime.exit_codes.Interrupted` if SIGINT or SIGTERM asked the run to stop."""
    if stop.is_set():
        raise Interrupted(stop.reason, "stopped before the run finished")


def kept_after_failure(staged: list[StagedReports]) -> str:
    """What a failed or stopped classify run left in OUT, for the line after its error (empty if nothing)."""
    if not staged or staged[0].committed:
        return ""
    reports = staged[0]
    return (
        f"note: the reports in {terminal_safe(reports.out)} (if any) were left as they were; the {reports.rows} "
        f"row(s) this run classified are in {terminal_safe(reports.partial(CELLS_NAME))}"
    )
