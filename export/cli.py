"""``hema-export``: write the one ONNX file a workstation runs, then its OpenVINO, INT8 and TensorRT variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from hema.cli_support import user_errors_exit_2
from hema.export.fused_model import ExportResult, export_backbone, export_classifier
from hema.export.graph.parity import ParityError
from hema.export.precision.agreement import (
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_MIN_AGREEMENT,
    AgreementError,
    compare_models,
)
from hema.export.precision.reduced_precision import ReducedPrecisionExport, export_onnx_int8

__all__ = ["app"]

app = typer.Typer(
    help="Export hema models: one self-contained ONNX file (preprocessing, backbone, head, softmax, card), and "
    "from it OpenVINO IR, INT8 and TensorRT engines, each checked against the FP32 model on real cells.",
    no_args_is_help=True,
    add_completion=False,
)

BackboneOption = Annotated[
    str | None,
    typer.Option(help="'default', an exported .onnx, a timm name or a checkpoint file. Default: the head's backbone."),
]
ArchOption = Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")]
CalibrationOption = Annotated[
    Path | None,
    typer.Option(help="Cell images (folders searched recursively); their train split calibrates INT8."),
]
CheckDataOption = Annotated[
    Path | None,
    typer.Option(
        help="Labelled cells (one folder per class); their test split checks agreement with FP32. "
        "Default: the calibration folder."
    ),
]
MinAgreementOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Least share of check cells that must keep their FP32 class.")
]
MaxDropOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Largest balanced-accuracy loss allowed (0.005 = half a point).")
]


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


def _checked(export: Callable[[], object]) -> object:
    def run() -> object:
        try:
            return export()
        except (ParityError, AgreementError) as error:  # the model was built but is wrong: nothing is written
            typer.echo(f"error: {error}; nothing was written", err=True)
            raise typer.Exit(1) from error

    return user_errors_exit_2(run)


def _run(export: Callable[[], ExportResult]) -> None:
    _report(_checked(export))


def _report_reduced(result: ReducedPrecisionExport) -> None:
    typer.echo(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.card.precision})")
    if result.agreement is not None:
        typer.echo(f"against FP32: {result.agreement.summary()}")


@app.command()
def onnx(
    head: Annotated[Path, typer.Option(help="Folder written by `hema-train fewshot --out`.")],
    out: Annotated[Path, typer.Option(help="The .onnx file to write.")],
    backbone: BackboneOption = None,
    arch: ArchOption = None,
    parity_data: Annotated[
        Path | None, typer.Option(help="Labelled cells to check parity on. Default: the head's training folder.")
    ] = None,
    int8: Annotated[
        bool, typer.Option(help="Also write an INT8 (QDQ) copy for ONNX Runtime, OUT stem + .int8.onnx.")
    ] = False,
    calibration: CalibrationOption = None,
    check_data: CheckDataOption = None,
    min_agreement: MinAgreementOption = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: MaxDropOption = DEFAULT_MAX_ACCURACY_DROP,
) -> None:
    """Fuse preprocessing, backbone, head and softmax into ONE ONNX file that carries its model card.

    The export is compared with torch + scikit-learn on real cells; if predictions disagree nothing is written.
    With --int8, an INT8 copy is quantised on the calibration cells and written only if it agrees with FP32.
    """
    if int8 and calibration is None:
        typer.echo("error: --int8 needs --calibration (cells whose train split calibrates it)", err=True)
        raise typer.Exit(2)
    _run(lambda: export_classifier(head, out, backbone, arch, parity_data))
    if int8:
        target = out.with_name(out.stem + ".int8.onnx")
        _report_reduced(
            _checked(lambda: export_onnx_int8(out, target, calibration, check_data, min_agreement, max_accuracy_drop))
        )


@app.command("onnx-int8")
def onnx_int8(
    model: Annotated[Path, typer.Argument(help="Fused FP32 .onnx from `hema-export onnx`.")],
    out: Annotated[Path, typer.Option(help="The INT8 .onnx to write.")],
    calibration: Annotated[Path, typer.Option(help="Cell images; their train split calibrates INT8.")],
    check_data: CheckDataOption = None,
    min_agreement: MinAgreementOption = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: MaxDropOption = DEFAULT_MAX_ACCURACY_DROP,
) -> None:
    """Quantise an exported model to INT8 for ONNX Runtime on CPUs without OpenVINO.

    Written only if, on the test split of the check cells, labels agree with FP32 and balanced accuracy holds.
    """
    _report_reduced(
        _checked(lambda: export_onnx_int8(model, out, calibration, check_data, min_agreement, max_accuracy_drop))
    )


@app.command()
def openvino(
    model: Annotated[Path, typer.Argument(help="Fused FP32 .onnx from `hema-export onnx`.")],
    out: Annotated[Path, typer.Option(help="The OpenVINO .xml to write (its .bin beside it).")],
    precision: Annotated[str, typer.Option(help="fp32, fp16 (half-size weights) or int8 (NNCF).")] = "fp32",
    calibration: CalibrationOption = None,
    check_data: CheckDataOption = None,
    min_agreement: MinAgreementOption = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: MaxDropOption = DEFAULT_MAX_ACCURACY_DROP,
) -> None:
    """Convert to OpenVINO IR with the model card inside; INT8 calibrated on real cells.

    FP16 and INT8 are written only if they agree with the FP32 ONNX model on the check cells' test split.
    """
    from hema.export.precision.openvino_ir import export_openvino

    _report_reduced(
        _checked(
            lambda: export_openvino(model, out, precision, calibration, check_data, min_agreement, max_accuracy_drop)
        )
    )


@app.command()
def tensorrt(
    model: Annotated[Path, typer.Argument(help="Fused FP32 .onnx from `hema-export onnx`.")],
    out: Annotated[Path, typer.Option(help="The .engine to write (its manifest with the card beside it).")],
    precision: Annotated[str, typer.Option(help="fp16 or int8.")] = "fp16",
    calibration: CalibrationOption = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest batch the engine accepts.")] = 64,
    optimal_batch: Annotated[int, typer.Option(min=1, help="Batch size the kernels are tuned for.")] = 32,
    timing_cache: Annotated[
        Path | None, typer.Option(help="Timing cache file, read and updated (faster rebuilds).")
    ] = None,
) -> None:
    """Build a TensorRT engine (TensorRT 10 or 11, on the NVIDIA GPU it will run on).

    Engines only run on the GPU model and TensorRT version that built them. Check the engine afterwards with
    `hema-export check ENGINE --reference MODEL.onnx --data CELLS`.
    """
    from hema.export.precision.tensorrt_build import build_tensorrt_engine

    path = _checked(
        lambda: build_tensorrt_engine(model, out, precision, calibration, max_batch, optimal_batch, timing_cache)
    )
    typer.echo(f"wrote {path} and its manifest")


@app.command()
def check(
    artifact: Annotated[Path, typer.Argument(help="Model to check: .onnx, OpenVINO .xml or TensorRT .engine.")],
    reference: Annotated[Path, typer.Option(help="The FP32 .onnx it was made from.")],
    data: Annotated[Path, typer.Option(help="Labelled cells, one folder per class.")],
    split: Annotated[str, typer.Option(help="Which of hema's splits of DATA to use: test, train or all.")] = "test",
    backend: Annotated[str, typer.Option(help="Engine for the artifact: auto or a named one.")] = "auto",
    min_agreement: MinAgreementOption = DEFAULT_MIN_AGREEMENT,
    max_accuracy_drop: MaxDropOption = DEFAULT_MAX_ACCURACY_DROP,
) -> None:
    """Compare a model with its FP32 reference on real cells: label agreement and balanced accuracy.

    Exit code 0 when within the thresholds, 1 when not, 2 when a model or the data cannot be used.
    """
    from hema.runtime.engines.backends import open_engine

    def compare() -> object:
        return compare_models(open_engine(artifact, backend), open_engine(reference, "onnxruntime"), data, split)

    report = user_errors_exit_2(compare)
    typer.echo(f"{report.candidate} against {report.reference}")
    typer.echo(report.summary())
    problems = report.problems(min_agreement, max_accuracy_drop)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


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
