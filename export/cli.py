"""``hema-export``: write the one ONNX file a workstation runs, then its OpenVINO, INT8 and TensorRT variants.

Every heavy import (onnx, torch, timm, OpenVINO, NNCF) happens inside the command that needs it, so that
``hema-export --help`` answers at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from hema.cli_support import (
    data_option,
    hidden_alias,
    model_option,
    out_option,
    renamed,
    split_option,
    user_errors_exit_2,
)
from hema.export.precision.targets import OpenVinoPrecision, TensorRtPrecision
from hema.runtime.engines.precision_gate import AgreementGate
from hema.train.data.folders import Split

if TYPE_CHECKING:
    from hema.export.fused_model import ExportResult
    from hema.export.precision.reduced_precision import ReducedPrecisionExport

__all__ = ["app"]

Result = TypeVar("Result")

app = typer.Typer(
    help="Export hema models: one self-contained ONNX file (preprocessing, backbone, head, softmax, card), and "
    "from it OpenVINO IR, INT8 and TensorRT engines, each checked against the FP32 model on real cells.",
    no_args_is_help=True,
    add_completion=False,
)

_GATE = AgreementGate()
SourceModel = Annotated[Path | None, model_option("Fused FP32 .onnx from `hema-export onnx`.")]
OldPositionalModel = Annotated[Path | None, typer.Argument(hidden=True, metavar="MODEL", show_default=False)]
BackboneOption = Annotated[
    str | None,
    typer.Option(help="'default', an exported .onnx, a timm name or a checkpoint file. Default: the head's backbone."),
]
ArchOption = Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")]
CheckCells = Annotated[
    Path | None,
    data_option(
        "Labelled cells (one folder per class): their train split calibrates INT8, their test split checks the "
        "result against FP32."
    ),
]
OldPath = Annotated[Path | None, hidden_alias("--calibration")]
OldCheckData = Annotated[Path | None, hidden_alias("--check-data")]
OldParityData = Annotated[Path | None, hidden_alias("--parity-data")]
MinAgreementOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Least share of check cells that must keep their FP32 class.")
]
MaxDropOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Largest balanced-accuracy loss allowed (0.005 = half a point).")
]


@app.callback()
def main() -> None:
    """Export hema models to ONNX."""


def _source(model: Path | None, positional: Path | None) -> Path:
    chosen = renamed(model, positional, old="the positional MODEL", new="--model")
    if chosen is None:
        raise typer.BadParameter("give the model to convert with --model", param_hint="--model")
    return chosen


def _checked(export: Callable[[], Result]) -> Result:
    from hema.export.graph.parity import ParityError
    from hema.export.precision.agreement import AgreementError

    def run() -> Result:
        try:
            return export()
        except (ParityError, AgreementError) as error:  # the model was built but is wrong: nothing is written
            typer.echo(f"error: {error}; nothing was written", err=True)
            raise typer.Exit(1) from error

    return user_errors_exit_2(run)


def _report(result: ExportResult) -> None:
    parity = result.parity
    typer.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB), classes: {', '.join(result.card.class_names)}")
    line = f"parity on {parity.images} real cells: embedding difference {parity.max_embedding_difference:.1e}"
    if parity.max_probability_difference is not None:
        line += f", probability difference {parity.max_probability_difference:.1e}"
        line += f", labels agree {parity.label_agreement:.0%}"
    typer.echo(line)
    typer.echo(f"runs on: {', '.join(result.card.engines)}")


def _report_reduced(result: ReducedPrecisionExport) -> None:
    typer.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.card.precision})")
    if result.agreement is not None:
        typer.echo(f"against FP32: {result.agreement.summary()}")


def _int8_onnx(source: Path, out: Path, cells: Path, check_data: Path | None, gate: AgreementGate) -> None:
    from hema.export.precision.reduced_precision import export_onnx_int8

    _report_reduced(
        _checked(lambda: export_onnx_int8(source, out, calibration=cells, check_data=check_data, gate=gate))
    )


@app.command()
def onnx(
    head: Annotated[Path, typer.Option(help="Folder written by `hema-train fewshot --out`.")],
    out: Annotated[Path, out_option("The .onnx file to write.")],
    backbone: BackboneOption = None,
    arch: ArchOption = None,
    data: Annotated[
        Path | None,
        data_option(
            "Labelled cells to check parity on (and, with --int8, to calibrate and check INT8). "
            "Default: the head's training folder."
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option(help="Also write an INT8 (Q/DQ) copy for ONNX Runtime, OUT stem + .int8.onnx.")
    ] = False,
    min_agreement: MinAgreementOption = _GATE.min_agreement,
    max_accuracy_drop: MaxDropOption = _GATE.max_accuracy_drop,
    parity_data: OldParityData = None,
    calibration: OldPath = None,
    check_data: OldCheckData = None,
) -> None:
    """Fuse preprocessing, backbone, head and softmax into ONE ONNX file that carries its model card.

    The export is compared with torch + scikit-learn on real cells; if predictions disagree nothing is written.
    With --int8, an INT8 copy is quantised on the train split of --data and written only if it agrees with FP32
    on its test split.
    """
    from hema.export.fused_model import export_classifier

    data = renamed(data, parity_data, old="--parity-data", new="--data")
    int8_cells = renamed(data, calibration, old="--calibration", new="--data")
    if int8 and int8_cells is None:
        typer.echo("error: --int8 needs --data (labelled cells whose train split calibrates it)", err=True)
        raise typer.Exit(2)
    _report(_checked(lambda: export_classifier(head, out, backbone=backbone, arch=arch, parity_data=data)))
    if int8:
        gate = AgreementGate(min_agreement, max_accuracy_drop)
        _int8_onnx(out, out.with_name(out.stem + ".int8.onnx"), int8_cells, check_data, gate)


@app.command("onnx-int8")
def onnx_int8(
    out: Annotated[Path, out_option("The INT8 .onnx to write.")],
    model: SourceModel = None,
    data: CheckCells = None,
    min_agreement: MinAgreementOption = _GATE.min_agreement,
    max_accuracy_drop: MaxDropOption = _GATE.max_accuracy_drop,
    positional: OldPositionalModel = None,
    calibration: OldPath = None,
    check_data: OldCheckData = None,
) -> None:
    """Quantise an exported model to INT8 for ONNX Runtime on CPUs without OpenVINO.

    Written only if, on the test split of --data, labels agree with FP32 and balanced accuracy holds.
    """
    cells = renamed(data, calibration, old="--calibration", new="--data")
    if cells is None:
        raise typer.BadParameter("INT8 is calibrated on labelled cells: give --data", param_hint="--data")
    _int8_onnx(_source(model, positional), out, cells, check_data, AgreementGate(min_agreement, max_accuracy_drop))


@app.command()
def openvino(
    out: Annotated[Path, out_option("The OpenVINO .xml to write (its .bin beside it).")],
    model: SourceModel = None,
    precision: Annotated[
        OpenVinoPrecision, typer.Option(help="fp32, fp16 (half-size weights) or int8 (NNCF).")
    ] = "fp32",
    data: CheckCells = None,
    min_agreement: MinAgreementOption = _GATE.min_agreement,
    max_accuracy_drop: MaxDropOption = _GATE.max_accuracy_drop,
    positional: OldPositionalModel = None,
    calibration: OldPath = None,
    check_data: OldCheckData = None,
) -> None:
    """Convert to OpenVINO IR with the model card inside; INT8 calibrated on real cells.

    FP16 and INT8 are written only if they agree with the FP32 ONNX model on the test split of --data.
    """
    from hema.export.precision.openvino_ir import export_openvino

    source = _source(model, positional)
    cells = renamed(data, calibration, old="--calibration", new="--data")
    gate = AgreementGate(min_agreement, max_accuracy_drop)
    _report_reduced(
        _checked(
            lambda: export_openvino(
                source, out, precision=precision, calibration=cells, check_data=check_data or cells, gate=gate
            )
        )
    )


@app.command()
def tensorrt(
    out: Annotated[Path, out_option("The .engine to write (its manifest with the card beside it).")],
    model: SourceModel = None,
    precision: Annotated[TensorRtPrecision, typer.Option(help="fp16, or int8 (needs --data).")] = "fp16",
    data: Annotated[Path | None, data_option("Cells whose train split calibrates INT8.")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest batch the engine accepts.")] = 64,
    optimal_batch: Annotated[int, typer.Option(min=1, help="Batch size the kernels are tuned for.")] = 32,
    timing_cache: Annotated[
        Path | None, typer.Option(help="Timing cache file, read and updated (faster rebuilds).")
    ] = None,
    positional: OldPositionalModel = None,
    calibration: OldPath = None,
) -> None:
    """Build a TensorRT engine (TensorRT 10 or 11, on the NVIDIA GPU it will run on).

    Engines only run on the GPU model and TensorRT version that built them. Check the engine afterwards with
    `hema-export check --model ENGINE --reference MODEL.onnx --data CELLS`.
    """
    from hema.export.precision.tensorrt_build import build_tensorrt_engine

    source = _source(model, positional)
    cells = renamed(data, calibration, old="--calibration", new="--data")
    path = _checked(
        lambda: build_tensorrt_engine(
            source,
            out,
            precision=precision,
            calibration=cells,
            max_batch=max_batch,
            optimal_batch=optimal_batch,
            timing_cache=timing_cache,
        )
    )
    typer.echo(f"wrote {path} and its manifest")


@app.command()
def check(
    reference: Annotated[Path, typer.Option(help="The FP32 .onnx it was made from.")],
    data: Annotated[Path, data_option("Labelled cells, one folder per class.")],
    model: Annotated[Path | None, model_option("Model to check: .onnx, OpenVINO .xml or TensorRT .engine.")] = None,
    split: Annotated[Split, split_option("The part of --data to use.")] = "test",
    backend: Annotated[str, typer.Option(help="Engine for the model: auto or a named one.")] = "auto",
    min_agreement: MinAgreementOption = _GATE.min_agreement,
    max_accuracy_drop: MaxDropOption = _GATE.max_accuracy_drop,
    positional: OldPositionalModel = None,
) -> None:
    """Compare a model with its FP32 reference on real cells: label agreement and balanced accuracy.

    Exit code 0 when within the thresholds, 1 when not, 2 when a model or the data cannot be used.
    """
    from hema.export.precision.agreement import compare_models
    from hema.runtime.engines.backends import open_engine

    candidate = _source(model, positional)

    def compare() -> object:
        return compare_models(open_engine(candidate, backend), open_engine(reference, "onnxruntime"), data, split=split)

    report = user_errors_exit_2(compare)
    typer.echo(f"{report.candidate} against {report.reference}")
    typer.echo(report.summary())
    problems = report.problems(AgreementGate(min_agreement, max_accuracy_drop))
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command("backbone")
def backbone_only(
    backbone: Annotated[str, typer.Option(help="A timm name or checkpoint file (or an exported .onnx).")],
    out: Annotated[Path, out_option("The .onnx file to write.")],
    data: Annotated[Path | None, data_option("Labelled cells to check parity on.")] = None,
    arch: ArchOption = None,
    image_size: Annotated[
        int | None, typer.Option(help="Input side in pixels [default: a checkpoint's own, else 224].")
    ] = None,
    parity_data: OldParityData = None,
) -> None:
    """Export a backbone alone (outputs the embedding), for `hema-train fewshot --backbone FILE.onnx`."""
    from hema.export.fused_model import export_backbone

    cells = renamed(data, parity_data, old="--parity-data", new="--data")
    if cells is None:
        raise typer.BadParameter("parity is checked on labelled cells: give --data", param_hint="--data")
    _report(_checked(lambda: export_backbone(backbone, out, parity_data=cells, arch=arch, image_size=image_size)))
