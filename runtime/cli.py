"""``hema-infer``: classify white-blood-cell images beside the microscope (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from hema.runtime.backends import BACKENDS, open_engine
from hema.runtime.classify import classify_files
from hema.runtime.default_model import resolve_model_path
from hema.runtime.discovery import find_cell_images
from hema.runtime.engine import Engine, ModelError
from hema.runtime.manifest import manifest_path
from hema.runtime.reports import CsvCellWriter, format_summary, summarise, write_summary

__all__ = ["app"]

app = typer.Typer(
    help="Classify single white-blood-cell images with an exported hema model (the embedded default model "
    "unless --model is given).",
    no_args_is_help=True,
    add_completion=False,
)

ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help="Exported hema model: .onnx, OpenVINO .xml or TensorRT .engine. Default: the model embedded in hema.",
    ),
]
BackendOption = Annotated[
    str,
    typer.Option(
        help=f"Inference engine: auto (the fastest installed for the model) or one of {', '.join(BACKENDS)}.",
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
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def classify(
    paths: Annotated[list[Path], typer.Argument(help="Cell image files and/or folders (searched recursively).")],
    model: ModelOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for cells.csv and summary.json.")] = Path(
        "hema-report"
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per model call.")] = 32,
    workers: Annotated[int, typer.Option(min=1, help="Threads decoding images.")] = 4,
    threads: Annotated[int, typer.Option(min=0, help="Inference threads (0: all cores).")] = 0,
    backend: BackendOption = "auto",
    unverified: UnverifiedOption = False,
) -> None:
    """Classify every cell image and write one row per file to OUT/cells.csv and counts to OUT/summary.json.

    Files that cannot be read get a row with status "error" and the reason; the others are classified.
    Exit code: 0 all files classified, 1 some files could not be read, 2 no usable model or no input.
    """
    engine = _load(model, backend, threads, unverified, classifier=True)
    typer.echo(f"model: {engine.path} on {engine.describe()}", err=True)
    inputs = find_cell_images(paths)
    for missing in inputs.missing:
        typer.echo(f"error: no such file or folder: {missing}", err=True)
    if not inputs.images:
        typer.echo("error: no image files found in the given paths", err=True)
        raise typer.Exit(2)
    if inputs.skipped:
        typer.echo(
            f"skipping {len(inputs.skipped)} file(s) without an image suffix, e.g. {inputs.skipped[0]}", err=True
        )

    results = []
    with (
        CsvCellWriter(out / "cells.csv", engine.card.class_names) as writer,
        tqdm(total=len(inputs.images), unit="cell", desc="classifying", disable=None) as progress,
    ):
        for result in classify_files(engine, inputs.images, batch_size, workers, on_batch=progress.update):
            writer.write(result)
            results.append(result)

    summary = summarise(results, engine.card.class_names, str(engine.path), skipped=len(inputs.skipped))
    write_summary(summary, out / "summary.json")
    for result in results:
        if result.status == "error":
            typer.echo(f"error: {result.path}: {result.error}", err=True)
    typer.echo(format_summary(summary))
    typer.echo(f"wrote {out / 'cells.csv'} and {out / 'summary.json'}")
    if summary["errors"] or inputs.missing:
        raise typer.Exit(1)


@app.command()
def info(model: ModelOption = None, backend: BackendOption = "auto", unverified: UnverifiedOption = False) -> None:
    """Print the model's path, the engine that runs it, and its model card (classes, input size, metrics)."""
    engine = _load(model, backend, unverified=unverified)
    typer.echo(f"model: {engine.path}")
    typer.echo(f"engine: {engine.describe()}")
    typer.echo(engine.card.to_json())
