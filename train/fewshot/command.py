"""``hema-train fewshot``: fit a head on frozen features with N labels per class, R times, and score it.

Heavy imports (numpy's users, scikit-learn, ONNX Runtime, torch) happen inside the command, so that
``hema-train --help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from hema.cli_support import (
    batch_size_option,
    command_line,
    data_option,
    hidden_alias,
    out_option,
    renamed,
    split_option,
    user_errors_exit_2,
)
from hema.train.data.folders import Split
from hema.train.fewshot.features import DEFAULT_BACKBONE
from hema.train.fewshot.heads import HEAD_KINDS
from hema.train.run.settings import Device

__all__ = ["fewshot"]

HeadKind = Literal[HEAD_KINDS]  # type: ignore[valid-type]  # the choices, shown and enforced by typer


def fewshot(
    data: Annotated[Path, data_option("Labelled cells: DATA/<class>/**/<image>.")],
    out: Annotated[Path, out_option("Folder for head.json + arrays, metrics.json, confusion_matrix.png.")],
    backbone: Annotated[
        str,
        typer.Option(
            help="'default' (the embedded model's backbone, ONNX Runtime, no torch), an exported .onnx, "
            "a timm name (efficientnet_lite0 starts from ImageNet) or a checkpoint file."
        ),
    ] = DEFAULT_BACKBONE,
    arch: Annotated[str | None, typer.Option(help="timm architecture of a checkpoint that does not name it.")] = None,
    head: Annotated[HeadKind, typer.Option(help="Head fitted on the frozen features.")] = "lr",
    labels_per_class: Annotated[
        int, typer.Option("--labels-per-class", "-n", min=0, help="Labelled cells drawn per class (0: all).")
    ] = 50,
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1, help="Independent draws.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the first draw; repeat r uses seed + r.")] = 0,
    eval_dir: Annotated[
        Path | None,
        typer.Option("--eval", help="Labelled evaluation cells. Default: DATA's test split (pool: its train split)."),
    ] = None,
    more_data: Annotated[
        list[Path] | None,
        typer.Option(
            "--more-data",
            help="Labelled cells of another lab added to the pool (same split as DATA's pool; classes joined by "
            "name); the evaluation stays DATA's. Repeat.",
        ),
    ] = None,
    split: Annotated[Split, split_option("Part of DATA to draw from when --eval is given.")] = "all",
    eval_split: Annotated[Split, typer.Option(help="Part of --eval to evaluate on.")] = "all",
    c: Annotated[float, typer.Option(help="Inverse regularisation (lr, linear-svm, svm).")] = 1.0,
    k: Annotated[int, typer.Option(help="Neighbours (knn); capped by the smallest class.")] = 10,
    trees: Annotated[int, typer.Option(help="Trees (rf).")] = 300,
    image_size: Annotated[
        int | None, typer.Option(help="Input side for torch backbones [default: a checkpoint's own, else 224].")
    ] = None,
    batch_size: Annotated[int, batch_size_option()] = 64,
    device: Annotated[Device, typer.Option(help="Where torch backbones run.")] = "auto",
    data_split: Annotated[str | None, hidden_alias("--data-split")] = None,
) -> None:
    """Fit a head on frozen features with N labels per class, R times, and report how well it classifies.

    The head of the first draw is saved (as arrays or ONNX, never a pickle) for `hema-export onnx --head OUT`.
    """

    import numpy as np

    from hema.train.data.folders import find_labelled_images, join_labelled
    from hema.train.evaluate.metrics import plot_confusion_matrix
    from hema.train.fewshot.draws import run_fewshot
    from hema.train.fewshot.features import open_feature_extractor
    from hema.train.fewshot.heads import HeadConfig

    split = renamed(split, data_split, old="--data-split", new="--split")

    def pool_of(part: str):
        return join_labelled([find_labelled_images(folder, part) for folder in (data, *(more_data or []))])

    def prepare() -> tuple:
        if eval_dir is None:  # draw from DATA's train split, score on its test split
            return pool_of("train"), find_labelled_images(data, "test"), "train", data, "test"
        return pool_of(split), find_labelled_images(eval_dir, eval_split), split, eval_dir, eval_split

    config = user_errors_exit_2(lambda: HeadConfig(kind=head, c=c, k=k, trees=trees, seed=seed))
    pool, evaluation, split, eval_dir, eval_split = user_errors_exit_2(prepare)
    unknown = sorted(set(evaluation.class_names) - set(pool.class_names))
    if unknown:
        typer.echo(
            f"error: evaluation classes {unknown} are not among the training classes {pool.class_names}", err=True
        )
        raise typer.Exit(2)
    extractor = user_errors_exit_2(
        lambda: open_feature_extractor(backbone, arch=arch, image_size=image_size, batch_size=batch_size, device=device)
    )

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
        "training_data": {
            "folder": str(data),
            "more_folders": [str(folder) for folder in more_data or []],
            "split": split,
            "cells": pool.counts(),
        },
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
