"""``hema-infer``: classify white-blood-cell images beside the microscope (no torch needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from hema.cli_support import batch_size_option, hidden_alias, model_option, out_option, renamed
from hema.runtime.classify import classify_files
from hema.runtime.default_model import resolve_model_path
from hema.runtime.discovery import find_cell_images
from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.manifest import manifest_path
from hema.runtime.reports.html_page import write_html_report
from hema.runtime.reports.tables import CsvCellWriter, format_summary, summarise, write_summary
from hema.runtime.review import ReviewPolicy
from hema.runtime.terminal import terminal_safe
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
DecodeThreadsOption = Annotated[int, typer.Option(min=1, help="Threads decoding images.")]
OldWorkersOption = Annotated[int | None, hidden_alias("--workers")]
ThreadsOption = Annotated[int, typer.Option(min=0, help="Inference threads (0: all cores).")]
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
    decode_threads: DecodeThreadsOption = 4,
    threads: ThreadsOption = 0,
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
    Exit code: 0 all files classified, 1 some files could not be read, 2 no usable model or no input.
    """
    decode_threads = renamed(decode_threads, workers, old="--workers", new="--decode-threads")
    engine = _load(model, backend, threads, unverified, classifier=True)
    _say(f"model: {engine.path} on {engine.describe()}", err=True)
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

    results = []
    with (
        CsvCellWriter(out / "cells.csv", engine.card.class_names) as writer,
        tqdm(total=len(inputs.images), unit="cell", desc="classifying", disable=None) as progress,
    ):
        for result in classify_files(
            engine,
            inputs.rows,
            batch_size=batch_size,
            decode_threads=decode_threads,
            slides=inputs.slides,
            unreadable=inputs.unreadable,
            on_batch=progress.update,
        ):
            writer.write(result)
            results.append(result)

    summary = summarise(results, engine.card.class_names, str(engine.path), skipped=len(inputs.skipped))
    write_summary(summary, out / "summary.json")
    written = [out / "cells.csv", out / "summary.json"]
    if not no_html:
        with tqdm(total=summary["classified"], unit="cell", desc="report.html", disable=None) as progress:
            description = f"{engine.path.name} on {engine.describe()}"
            write_html_report(
                out / "report.html",
                results,
                summary,
                engine.card.class_names,
                description,
                threads=decode_threads,
                on_thumbnail=progress.update,
            )
        written.append(out / "report.html")
    for result in results:
        if result.status == "error":
            _say(f"error: {terminal_safe(result.path)}: {terminal_safe(result.error)}", err=True)
    _say(format_summary(summary))
    if summary["shift_warning"]:
        _say(f"warning: {summary['shift_warning']}", err=True)
    if not ReviewPolicy.from_card(engine.card, engine.output_names).active:
        _say("note: this model carries no review thresholds (exported before review flags): no cell is flagged")
    _say(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")
    if summary["errors"] or inputs.missing:
        raise typer.Exit(1)


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
    decode_threads: DecodeThreadsOption = 4,
    threads: ThreadsOption = 0,
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
    Exit code: 0 every image classified, 1 some could not be read, 2 no usable model, or OUT is damaged, in use,
    not a hema journal or another model's.
    """
    decode_threads = renamed(decode_threads, workers, old="--workers", new="--decode-threads")
    engine = _load(model, backend, threads, unverified, classifier=True)
    _say(f"model: {engine.path} on {engine.describe()}", err=True)
    _say(f"{'classifying' if once else 'watching'} {folder} (Ctrl-C to stop)", err=True)
    settings = WatchSettings(
        batch_size=batch_size,
        decode_threads=decode_threads,
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
