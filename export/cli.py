"""``hema-export``: write the one ONNX file a workstation runs (and, later, OpenVINO and TensorRT engines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from hema.export.classifier import ExportResult, export_backbone, export_classifier
from hema.export.parity import ParityError
from hema.train.command_errors import user_errors_exit_2

__all__ = ["app"]

app = typer.Typer(
    help="Export hema models to one self-contained ONNX file (preprocessing, backbone, head, softmax, card).",
    no_args_is_help=True,
    add_completion=False,
)

BackboneOption = Annotated[
    str | None,
    typer.Option(help="'default', an exported .onnx, a timm name or a checkpoint file. Default: the head's backbone."),
]
ArchOption = Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")]


@app.callback()
def main() -> None:
    """Export hema models to ONNX."""


def _report(result: ExportResult) -> None:
    parity = result.parity
    typer.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB), classes: {', '.join(result.card.class_names)}")
    line = f"parity on {parity.images} real cells: embedding difference {parity.max_embedding_difference:.1e}"
    if parity.max_probability_difference is not None:
        line += f", probability difference {parity.max_probability_difference:.1e}"
        line += f", labels agree {parity.label_agreement:.0%}"
    typer.echo(line)
    typer.echo(f"runs on: {', '.join(result.card.engines)}")


def _run(export: Callable[[], ExportResult]) -> None:
    def checked() -> ExportResult:
        try:
            return export()
        except ParityError as error:  # the model was built but is wrong: nothing is written
            typer.echo(f"error: {error}; nothing was written", err=True)
            raise typer.Exit(1) from error

    _report(user_errors_exit_2(checked))


@app.command()
def onnx(
    head: Annotated[Path, typer.Option(help="Folder written by `hema-train fewshot --out`.")],
    out: Annotated[Path, typer.Option(help="The .onnx file to write.")],
    backbone: BackboneOption = None,
    arch: ArchOption = None,
    parity_data: Annotated[
        Path | None, typer.Option(help="Labelled cells to check parity on. Default: the head's training folder.")
    ] = None,
) -> None:
    """Fuse preprocessing, backbone, head and softmax into ONE ONNX file that carries its model card.

    The export is compared with torch + scikit-learn on real cells; if predictions disagree nothing is written.
    """
    _run(lambda: export_classifier(head, out, backbone, arch, parity_data))


@app.command("backbone")
def backbone_only(
    backbone: Annotated[str, typer.Option(help="A timm name or checkpoint file (or an exported .onnx).")],
    out: Annotated[Path, typer.Option(help="The .onnx file to write.")],
    parity_data: Annotated[Path, typer.Option(help="Labelled cells to check parity on.")],
    arch: ArchOption = None,
    image_size: Annotated[int, typer.Option(help="Input side in pixels.")] = 224,
) -> None:
    """Export a backbone alone (outputs the embedding), for `hema-train fewshot --backbone FILE.onnx`."""
    _run(lambda: export_backbone(backbone, out, parity_data, arch, image_size))
