"""``hema-train evaluate``: the command-line face of :func:`hema.train.evaluate.report.run_evaluation`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hema.cli_support import (
    batch_size_option,
    command_line,
    data_option,
    hidden_alias,
    out_option,
    renamed,
    user_errors_exit_2,
)
from hema.train.fewshot.features import DEFAULT_BACKBONE
from hema.train.run.settings import Device

__all__ = ["evaluate"]

Opt = typer.Option


def _list(text: str, what: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise ValueError(f"{what}: give a comma-separated list, got {text!r}")
    return items


def _shots(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in _list(text, "--shots"))
    except ValueError as error:
        raise ValueError(f"--shots: whole numbers separated by commas, got {text!r}") from error


def evaluate(
    data: Annotated[Path, data_option("Training lab: DATA/<class>/<image> (learning curves, heads, saliency).")],
    out: Annotated[Path, out_option("Folder for report.md, report.json and the figures.")],
    eval_dir: Annotated[
        Path | None,
        Opt("--eval", help="A second lab, same layout, scored on the classes both labs share (required)."),
    ] = None,
    backbone: Annotated[
        str, Opt(help="'default' (the embedded model's backbone), an .onnx file, a timm name or a checkpoint.")
    ] = DEFAULT_BACKBONE,
    arch: Annotated[str | None, Opt(help="timm architecture of a checkpoint that does not name it.")] = None,
    repeats: Annotated[int, Opt(min=1, help="Draws per learning-curve point.")] = 5,
    shots: Annotated[str, Opt(help="Labelled cells per class of the learning curves (all labels is added).")] = (
        "1,2,5,10,20,50"
    ),
    heads: Annotated[str, Opt(help="Learning-curve heads: lr, linear-svm, svm, knn, rf.")] = "lr,linear-svm,knn",
    umap_cells: Annotated[int, Opt(min=3, help="Cells in the UMAP map, shared evenly between the labs.")] = 2000,
    gradcam_per_class: Annotated[
        int, Opt(min=0, help="Test cells per class in the saliency grid (Grad-CAM or ViT attention; 0: none).")
    ] = 4,
    seed: Annotated[int, Opt(help="Seed of draws, subsamples and UMAP.")] = 0,
    image_size: Annotated[int, Opt(help="Input side for torch backbones.")] = 224,
    batch_size: Annotated[int, batch_size_option()] = 64,
    device: Annotated[Device, Opt(help="Where torch backbones run.")] = "auto",
    cross_domain: Annotated[Path | None, hidden_alias("--cross-domain")] = None,
) -> None:
    """Write an evaluation report of a backbone: few-shot learning curves, a cross-domain table, a UMAP map,
    confusion matrices and saliency maps.

    Embeddings of both labs are extracted once; every split is hema's fixed content-hash split.
    """
    from hema.train.evaluate.report import EvaluationConfig, run_evaluation

    second_lab = renamed(eval_dir, cross_domain, old="--cross-domain", new="--eval")
    if second_lab is None:
        raise typer.BadParameter("the cross-lab table needs a second lab: give --eval", param_hint="--eval")

    config = user_errors_exit_2(
        lambda: EvaluationConfig(
            data=data,
            cross_domain=second_lab,
            out=out,
            backbone=backbone,
            arch=arch,
            heads=_list(heads, "--heads"),
            shots=_shots(shots),
            repeats=repeats,
            umap_cells=umap_cells,
            saliency_per_class=gradcam_per_class,
            seed=seed,
            image_size=image_size,
            batch_size=batch_size,
            device=device,
        )
    )
    report = user_errors_exit_2(lambda: run_evaluation(config, command_line()))
    lr = report["all_labels_lr"]["balanced_accuracy"]["mean"]
    typer.echo(f"all-labels lr: balanced accuracy {lr:.3f} on the test split")
    for name, score in report["cross_domain"]["results"].items():
        typer.echo(f"cross-domain, {name}: balanced accuracy {score['balanced_accuracy']:.3f}")
    typer.echo(f"wrote {out}/report.md and report.json in {report['seconds']['total']:.0f} s")
