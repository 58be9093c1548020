"""``hema-infer``: classify white-blood-cell images beside the microscope (no torch needed).

Exit codes of ``classify`` and ``watch`` (:mod:`hema.runtime.exit_codes`):

- 0: every input classified;
- 1: some inputs could not be read (each has an ``error`` row in ``cells.csv``);
- 2: no usable model, input or output folder, including an ``OUT`` in use by another ``classify`` or ``watch``
  (its lock ``OUT/.hema.lock`` is named with the holder's pid);
- 3: an internal error, a bug in hema: one line names the exception (``HEMA_DEBUG=1`` adds the traceback);
- 130 / 143: stopped by Ctrl-C / SIGTERM before the end.

``classify`` locks ``OUT`` for the whole run and writes its reports under staged names
(``cells.csv.partial``, streamed row by row, ``summary.json.partial``, ``report.html.partial``), moved into place
together only when all are written (:mod:`hema.runtime.reports.run_output`): a run that fails or is stopped leaves
the previous run's ``cells.csv``, ``summary.json`` and ``report.html`` as they were, and its own rows so far in
``OUT/cells.csv.partial``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from hema.cli_support import batch_size_option, hidden_alias, model_option, out_option, renamed
from hema.runtime.classify import CellResult
from hema.runtime.classify_run import classify_into, kept_after_failure, raise_if_stopped
from hema.runtime.default_model import resolve_model_path
from hema.runtime.discovery import InputFiles, find_cell_images
from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.exit_codes import exit_codes
from hema.runtime.manifest import manifest_path
from hema.runtime.politeness import ThreadBudget, lower_priority
from hema.runtime.reports.run_output import StagedReports, claim_output
from hema.runtime.reports.tables import format_summary
from hema.runtime.review import ReviewPolicy
from hema.runtime.terminal import terminal_safe
from hema.runtime.verification.settings import (
    DEFAULT_EXTRA_CLASSES,
    DEFAULT_HOST,
    DEFAULT_TARGET,
    ReviewError,
    ReviewSettings,
    default_user,
    read_extra_classes,
)
from hema.runtime.watch.journal import JournalError
from hema.runtime.watch.watcher import JOURNAL_NAME, StopFlag, WatchSettings, stop_on_signals, watch_folder

__all__ = ["app"]

app = typer.Typer(
    help="Classify single white-blood-cell images with an exported hema model (the embedded default model "
    "unless --model is given).",
    no_args_is_help=True,
    add_completion=False,
)

ModelOption = Annotated[
    Path | None,
    model_option("Exported hema model: .onnx, OpenVINO .xml or TensorRT .engine. Default: the model embedded in hema."),
]
BackendOption = Annotated[
    str,
    typer.Option(
        help=f"Inference engine: auto (the fastest installed for the model) or one of {', '.join(BACKENDS)}.",
    ),
]
BatchSizeOption = Annotated[int, batch_size_option("Images per model call.")]
DecodeThreadsOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Threads decoding images and making thumbnails (more than 1 pays only on machines with cores to spare: "
        "decoding holds Python's lock for most of its work).",
    ),
]
NiceOption = Annotated[
    int,
    typer.Option(
        "--nice",
        min=0,
        max=19,
        help="Lower hema's CPU priority by this much (as the nice command does), for archive runs beside the "
        "analyser's software.",
    ),
]
OldWorkersOption = Annotated[int | None, hidden_alias("--workers")]
ThreadsOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Most threads of any pool hema starts: inference threads, and decoding threads at most this many "
        "(0: inference on all cores).",
    ),
]
UnverifiedOption = Annotated[
    bool,
    typer.Option(
        "--unverified",
        help="Run a model that has no manifest (its sha256 cannot be checked). A model whose files differ from "
        "its manifest is refused anyway.",
    ),
]


def _say(message: str, err: bool = False) -> None:
    """Print ``message`` with control characters escaped: file names in it may hold any (``ESC[2J``, CR).

    A file name put into a one-line message goes through :func:`terminal_safe` on its own, so that its newlines
    are escaped too.
    """
    typer.echo(terminal_safe(message, keep_newlines=True), err=err)


def _load(
    model: Path | None, backend: str = "auto", threads: int = 0, unverified: bool = False, classifier: bool = False
) -> Engine:
    path = resolve_model_path(model)
    try:
        engine = open_engine(path, backend, threads, verify=not unverified or manifest_path(path).is_file())
        for note in engine.passed_over:
            _say(f"note: --backend auto did not run {note}; running {engine.path.name}", err=True)
        if classifier:
            engine.require_classifier()
        return engine
    except ModelError as error:
        _say(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def classify(
    paths: Annotated[list[Path], typer.Argument(help="Cell image files and/or folders (searched recursively).")],
    model: ModelOption = None,
    out: Annotated[Path, out_option("Folder for cells.csv, summary.json and report.html.")] = Path("hema-report"),
    batch_size: BatchSizeOption = 32,
    decode_threads: DecodeThreadsOption = 1,
    threads: ThreadsOption = 0,
    nice: NiceOption = 0,
    backend: BackendOption = "auto",
    unverified: UnverifiedOption = False,
    no_html: Annotated[
        bool, typer.Option("--no-html", help="Do not write report.html (the review page with cell thumbnails).")
    ] = False,
    workers: OldWorkersOption = None,
) -> None:
    """Classify every cell image and write one row per file to OUT/cells.csv and counts to OUT/summary.json.

    OUT/report.html is a review page that opens offline in any browser: the differential count per slide and
    every cell as a thumbnail, grouped by predicted class, cells flagged for review first.
    Files that cannot be read get a row with status "error" and the reason; the others are classified.

    One run at a time per OUT: a run holds OUT/.hema.lock, and another classify or watch into that OUT is refused.
    The reports replace the previous run's all together at the end; until then rows go to OUT/cells.csv.partial,
    so a run that fails or is stopped leaves the previous reports as they were and its rows so far there.

    Exit code: 0 all files classified, 1 some files could not be read, 2 no usable model, input or output folder
    (OUT in use by another run included), 3 internal error (a bug in hema; HEMA_DEBUG=1 prints the traceback),
    130 or 143 stopped by Ctrl-C or SIGTERM.
    """
    budget = ThreadBudget.capped(threads, renamed(decode_threads, workers, old="--workers", new="--decode-threads"))
    lower_priority(nice)
    staged: list[StagedReports] = []
    stop = StopFlag()
    with exit_codes(lambda message: _say(message, err=True), lambda: kept_after_failure(staged)):
        with claim_output(out), stop_on_signals(stop):
            engine = _load(model, backend, budget.engine, unverified, classifier=True)
            _say(f"model: {engine.path} on {engine.describe()}", err=True)
            inputs = _inputs(paths)
            raise_if_stopped(stop)
            with StagedReports(out, engine.card.class_names) as reports:
                staged.append(reports)
                results, summary = classify_into(reports, engine, inputs, stop, batch_size, budget.decode, no_html)
        _say_outcome(engine, results, summary, [out / name for name in reports.names])
        if summary["errors"] or inputs.missing:
            raise typer.Exit(1)


def _inputs(paths: list[Path]) -> InputFiles:
    """The files to classify; exit 2 if a name stands for two folders or there is no image."""
    inputs = find_cell_images(paths)
    for missing in inputs.missing:
        _say(f"error: no such file or folder: {terminal_safe(missing)}", err=True)
    if inputs.clashes:
        for clash in inputs.clashes:
            _say(f"error: {terminal_safe(clash)}", err=True)
        raise typer.Exit(2)
    if not inputs.rows:
        _say("error: no image files found in the given paths", err=True)
        raise typer.Exit(2)
    if inputs.skipped:
        _say(
            f"skipping {len(inputs.skipped)} file(s) without an image suffix, e.g. {terminal_safe(inputs.skipped[0])}",
            err=True,
        )
    return inputs


def _say_outcome(engine: Engine, results: list[CellResult], summary: dict[str, Any], written: list[Path]) -> None:
    """Print the unreadable files, the per-class table, warnings and the reports written."""
    for result in results:
        if result.status == "error":
            _say(f"error: {terminal_safe(result.path)}: {terminal_safe(result.error)}", err=True)
    _say(format_summary(summary))
    if summary["shift_warning"]:
        _say(f"warning: {summary['shift_warning']}", err=True)
    if not ReviewPolicy.from_card(engine.card, engine.output_names).active:
        _say("note: this model carries no review thresholds (exported before review flags): no cell is flagged")
    _say(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")


@app.command()
def info(model: ModelOption = None, backend: BackendOption = "auto", unverified: UnverifiedOption = False) -> None:
    """Print the model's path, the engine that runs it, and its model card (classes, input size, metrics)."""
    engine = _load(model, backend, unverified=unverified)
    _say(f"model: {engine.path}")
    _say(f"engine: {engine.describe()}")
    _say(engine.card.to_json())


@app.command()
def watch(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder the analyser writes cell images into (one sub-folder per slide), searched recursively.",
            exists=True,
            file_okay=False,
        ),
    ],
    out: Annotated[
        Path,
        out_option(
            "Folder for journal.jsonl (every result, saved first), cells.csv and summary.json. Use the same "
            "folder again to go on after a stop or a crash."
        ),
    ],
    model: ModelOption = None,
    batch_size: BatchSizeOption = 32,
    decode_threads: DecodeThreadsOption = 1,
    threads: ThreadsOption = 0,
    nice: NiceOption = 0,
    backend: BackendOption = "auto",
    unverified: UnverifiedOption = False,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between two looks at the folder.")
    ] = 1.0,
    settle: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds a file's size and time must stay unchanged before it is read (the analyser is done).",
        ),
    ] = 2.0,
    empty_timeout: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds an empty (0-byte) file may stay empty before it is reported unreadable."),
    ] = 30.0,
    once: Annotated[
        bool,
        typer.Option("--once", help="Classify what is in the folder now (once it settles), write the reports, exit."),
    ] = False,
    new_journal: Annotated[
        bool,
        typer.Option(
            "--new-journal",
            help="Start a new journal: OUT's journal and its reports are moved to OUT/earlier/<UTC time>/ (nothing "
            "is deleted). Needed to go on in the same OUT with another model.",
        ),
    ] = False,
    workers: OldWorkersOption = None,
) -> None:
    """Watch a folder and classify cell images as they arrive, each exactly once, even across crashes.

    Every result is saved to OUT/journal.jsonl first; cells.csv and summary.json are rewritten from it after each
    batch (at most every few seconds while cells stream in). Started again with the same OUT after a crash, it goes
    on where it stopped; only with the model that started the journal (else --new-journal). Ctrl-C or SIGTERM:
    finish the current batch, write the reports, exit.
    OUT is locked (OUT/.hema.lock) for the whole run, against another watch or a classify into the same OUT.

    Exit code: 0 every image classified, 1 some could not be read, 2 no usable model, or OUT is damaged, in use,
    not a hema journal or another model's, 3 internal error (a bug in hema; HEMA_DEBUG=1 prints the traceback).
    """
    budget = ThreadBudget.capped(threads, renamed(decode_threads, workers, old="--workers", new="--decode-threads"))
    lower_priority(nice)
    with exit_codes(lambda message: _say(message, err=True)):
        with claim_output(out):  # the lock classify takes too: the two never share an OUT
            engine = _load(model, backend, budget.engine, unverified, classifier=True)
            _say(f"model: {engine.path} on {engine.describe()}", err=True)
            _say(f"{'classifying' if once else 'watching'} {folder} (Ctrl-C to stop)", err=True)
            settings = WatchSettings(
                batch_size=batch_size,
                decode_threads=budget.decode,
                poll_interval=poll_interval,
                settle=settle,
                empty_timeout=empty_timeout,
                once=once,
            )
            stop = StopFlag()
            try:
                with stop_on_signals(stop), tqdm(unit="cell", desc="classified", disable=None) as progress:
                    outcome = watch_folder(
                        engine,
                        folder,
                        out,
                        settings,
                        stop,
                        log=lambda message: tqdm.write(terminal_safe(message), file=sys.stderr),
                        on_batch=progress.update,
                        new_journal=new_journal,
                    )
            except JournalError as error:
                _say(f"error: {error}", err=True)
                raise typer.Exit(2) from error
        if outcome.stopped_by:
            _say(f"{outcome.stopped_by}: stopped after the current batch", err=True)
        _say(format_summary(outcome.summary))
        _say(f"wrote {out / JOURNAL_NAME}, {out / 'cells.csv'} and {out / 'summary.json'}")
        if outcome.summary["errors"]:
            raise typer.Exit(1)


@app.command()
def review(
    run_dir: Annotated[
        Path, typer.Argument(help="Output folder of hema-infer classify or watch (its cells.csv names the images).")
    ],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to serve on (0: a free one, printed).")] = 0,
    user: Annotated[
        str | None, typer.Option(help="Name recorded with every decision. Default: your login name.")
    ] = None,
    target: Annotated[int, typer.Option(min=1, help="Cells the lab counts per slide (usually 100 or 200).")] = (
        DEFAULT_TARGET
    ),
    extra_classes: Annotated[
        Path | None,
        typer.Option(
            "--extra-classes",
            help="File of the lab's classes beyond the model's, one per line. Default: "
            + ", ".join(DEFAULT_EXTRA_CLASSES),
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to serve on. Anything but 127.0.0.1 opens it to the network: needs --token.")
    ] = DEFAULT_HOST,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="HEMA_REVIEW_TOKEN",
            help="Access token every request must carry (16+ letters or digits, e.g. from openssl rand -hex 16); "
            "the printed address holds it. Better from $HEMA_REVIEW_TOKEN than on the command line.",
        ),
    ] = None,
    export_labelled: Annotated[
        Path | None,
        typer.Option(
            "--export-labelled",
            help="Do not serve: copy the verified cells to DIR/<class>/<slide>/ (a new folder), usable as "
            "hema-train onboard --labelled DIR and hema-train fewshot --data DIR, and exit.",
        ),
    ] = None,
    include_extra: Annotated[
        bool,
        typer.Option(
            "--include-extra",
            help="With --export-labelled: the extra classes too (fewshot learns them; onboard wants model classes).",
        ),
    ] = False,
) -> None:
    """Verify a run's cells in the browser: confirm or correct each cell, then mark each slide verified.

    Serves a page on this machine (the address is printed; no browser is opened): per slide, the cells grouped by
    class with flagged cells first, the live differential against --target, a key per class, undo. Every decision
    is saved to RUN_DIR/verification.jsonl before the page says saved; started again, the review resumes there.
    Writes RUN_DIR/verified.csv, verified_summary.json and the printable verified_report.html.

    Exit code: 0 stopped with Ctrl-C or SIGTERM (or exported), 2 no usable run folder, journal, class file, address
    or export folder, 3 internal error (a bug in hema; HEMA_DEBUG=1 prints the traceback).
    """
    # http.server and the page are imported only to review, so that --help stays light
    from hema.runtime.verification.app import export_verified, serve_review

    def note(line: str) -> None:
        _say(line, err=True)

    with exit_codes(note):
        try:
            extras = DEFAULT_EXTRA_CLASSES if extra_classes is None else read_extra_classes(extra_classes)
            settings = ReviewSettings(host, port, token, user or default_user(), target, extras)
            if export_labelled is None:
                written = serve_review(run_dir, settings, say=_say, note=note)
            else:
                written = export_verified(
                    run_dir, export_labelled, settings, include_extra=include_extra, say=_say, note=note
                )
        except ReviewError as error:
            note(f"error: {error}")
            raise typer.Exit(2) from error
        note(f"wrote {', '.join(terminal_safe(path) for path in written)}")
