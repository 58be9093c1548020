"""``hema-train``: few-shot heads on frozen features, and backbone training (DINO, supervised, MDD)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hema.cli_support import command_line, user_errors_exit_2
from hema.train.adapt.command import adapt
from hema.train.data.folders import SPLITS, find_labelled_images
from hema.train.dino.command import ssl
from hema.train.evaluate.command import evaluate
from hema.train.evaluate.metrics import plot_confusion_matrix
from hema.train.fewshot.draws import run_fewshot
from hema.train.fewshot.features import DEFAULT_BACKBONE, open_feature_extractor
from hema.train.fewshot.heads import HEAD_KINDS, HeadConfig
from hema.train.supervised.command import supervised

__all__ = ["app"]

app = typer.Typer(
    help="Train hema models: few-shot heads on frozen features, DINO backbones, fine-tuning, domain adaptation.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Train hema models: few-shot heads on frozen features, DINO backbones, fine-tuning, domain adaptation."""


app.command()(ssl)
app.command()(supervised)
app.command()(adapt)
app.command()(evaluate)


def _split_option(help_text: str) -> object:
    return typer.Option(help=f"{help_text} One of {', '.join(SPLITS)} (hema's fixed content-hash split).")


@app.command()
def fewshot(
    data: Annotated[Path, typer.Option(help="Labelled cells: DATA/<class>/**/<image>.")],
    out: Annotated[Path, typer.Option(help="Folder for head.json + arrays, metrics.json, confusion_matrix.png.")],
    backbone: Annotated[
        str,
        typer.Option(
            help="'default' (the embedded model's backbone, ONNX Runtime, no torch), an exported .onnx, "
            "a timm name (efficientnet_lite0 starts from ImageNet) or a checkpoint file."
        ),
    ] = DEFAULT_BACKBONE,
    arch: Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")] = None,
    head: Annotated[str, typer.Option(help=f"Head: {', '.join(HEAD_KINDS)}.")] = "lr",
    labels_per_class: Annotated[
        int, typer.Option("--labels-per-class", "-n", min=0, help="Labelled cells drawn per class (0: all).")
    ] = 50,
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1, help="Independent draws.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the first draw; repeat r uses seed + r.")] = 0,
    eval_dir: Annotated[
        Path | None,
        typer.Option("--eval", help="Labelled evaluation cells. Default: DATA's test split (pool: its train split)."),
    ] = None,
    data_split: Annotated[str, _split_option("Part of DATA to draw from when --eval is given.")] = "all",
    eval_split: Annotated[str, _split_option("Part of --eval to evaluate on.")] = "all",
    c: Annotated[float, typer.Option(help="Inverse regularisation (lr, linear-svm, svm).")] = 1.0,
    k: Annotated[int, typer.Option(help="Neighbours (knn); capped by the smallest class.")] = 10,
    trees: Annotated[int, typer.Option(help="Trees (rf).")] = 300,
    image_size: Annotated[int, typer.Option(help="Input side for torch backbones.")] = 224,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (torch backbones).")] = "auto",
) -> None:
    """Fit a head on frozen features with N labels per class, R times, and report how well it classifies.

    The head of the first draw is saved (as arrays or ONNX, never a pickle) for `hema-export onnx --head OUT`.
    """

    def prepare() -> tuple:
        if eval_dir is None:  # draw from DATA's train split, score on its test split
            return find_labelled_images(data, "train"), find_labelled_images(data, "test"), "train", data, "test"
        return (
            find_labelled_images(data, data_split),
            find_labelled_images(eval_dir, eval_split),
            data_split,
            eval_dir,
            eval_split,
        )

    config = user_errors_exit_2(lambda: HeadConfig(kind=head, c=c, k=k, trees=trees, seed=seed))
    pool, evaluation, data_split, eval_dir, eval_split = user_errors_exit_2(prepare)
    unknown = sorted(set(evaluation.class_names) - set(pool.class_names))
    if unknown:
        typer.echo(
            f"error: evaluation classes {unknown} are not among the training classes {pool.class_names}", err=True
        )
        raise typer.Exit(2)
    extractor = user_errors_exit_2(lambda: open_feature_extractor(backbone, arch, image_size, batch_size, device))

    typer.echo(f"pool: {len(pool)} cells in {len(pool.class_names)} classes; evaluation: {len(evaluation)} cells")
    pool_features = user_errors_exit_2(lambda: extractor(pool.paths, desc="pool features"))
    eval_features = user_errors_exit_2(lambda: extractor(evaluation.paths, desc="eval features"))
    eval_labels = np.array([pool.class_names.index(evaluation.class_names[label]) for label in evaluation.labels])
    result = run_fewshot(
        pool_features, pool.labels, pool.class_names, eval_features, eval_labels, config, labels_per_class, repeats
    )

    metrics = {
        **result.metrics,
        "backbone": extractor.description,
        "training_data": {"folder": str(data), "split": data_split, "cells": pool.counts()},
        "eval_data": {"folder": str(eval_dir), "split": eval_split, "cells": evaluation.counts()},
    }
    result.head.metadata.update(
        backbone=extractor.description,
        training_data=metrics["training_data"],
        labels_per_class=labels_per_class,
        command=command_line(),
    )
    result.head.save(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    title = f"{head}, {labels_per_class or 'all'} labels/class, {repeats} repeat(s)"
    plot_confusion_matrix(np.array(metrics["confusion_matrix"]), pool.class_names, title, out / "confusion_matrix.png")
    accuracy, f1 = metrics["balanced_accuracy"], metrics["macro_f1"]
    typer.echo(
        f"balanced accuracy {accuracy['mean']:.4f} ± {accuracy['std']:.4f}, macro-F1 {f1['mean']:.4f} ± "
        f"{f1['std']:.4f} over {repeats} draw(s) of {labels_per_class or 'all'} labels per class"
    )
    typer.echo(f"wrote {out}/metrics.json, confusion_matrix.png and the head")


if __name__ == "__main__":  # torchrun --nproc_per_node N -m hema.train.cli ...
    app()
