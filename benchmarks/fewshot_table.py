"""Few-shot benchmark: balanced accuracy against labels per class, per head, on hema's fixed split.

Embeddings are extracted once; every (head, N) pair is then fitted on R fresh draws of N labelled cells per
class from the train split and scored on the whole test split. Writes ``fewshot.json``, ``fewshot.md`` (the
table the README quotes) and ``fewshot.png``.

    python benchmarks/fewshot_table.py --data ../shared/data/pbc --out benchmarks/results/x
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.draws import run_fewshot
from hema.train.fewshot.features import open_feature_extractor
from hema.train.fewshot.heads import HeadConfig


def _row(rows: list[dict], head: str, n: int) -> dict:
    return next(row for row in rows if row["head"] == head and row["labels_per_class"] == n)


def _table(rows: list[dict], heads: list[str], shots: list[int], title: str) -> str:
    lines = [f"**{title}**", "", "| labels per class | " + " | ".join(heads) + " |", "|---:|" + "---:|" * len(heads)]
    for n in shots:
        cells = [
            f"{_row(rows, h, n)['balanced_accuracy_mean']:.3f} ± {_row(rows, h, n)['balanced_accuracy_std']:.3f}"
            for h in heads
        ]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], heads: list[str], shots: list[int], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for head in heads:
        means = [_row(rows, head, n)["balanced_accuracy_mean"] for n in shots]
        stds = [_row(rows, head, n)["balanced_accuracy_std"] for n in shots]
        axes.errorbar(shots, means, yerr=stds, marker="o", capsize=3, label=head)
    axes.set(xscale="log", xlabel="labelled cells per class", ylabel="balanced accuracy (test split)", title=title)
    axes.set_xticks(shots, [str(n) for n in shots])
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # not "default": the embedded model's backbone was fine-tuned with every PBC train-split label
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--arch", default=None)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pbc"))
    parser.add_argument("--heads", nargs="+", default=["lr", "knn"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 5, 10, 20, 50])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pool, evaluation = find_labelled_images(args.data, "train"), find_labelled_images(args.data, "test")
    extractor = open_feature_extractor(args.backbone, arch=args.arch)
    started = time.perf_counter()
    pool_features = extractor(pool.paths, desc="train split")
    eval_features = extractor(evaluation.paths, desc="test split")
    extraction_seconds = time.perf_counter() - started

    rows = []
    for head in args.heads:
        for n in args.shots:
            started = time.perf_counter()
            result = run_fewshot(
                pool_features,
                pool.labels,
                pool.class_names,
                eval_features,
                evaluation.labels,
                HeadConfig(kind=head),
                n,
                args.repeats,
            )
            metrics = result.metrics
            rows.append(
                {
                    "head": head,
                    "labels_per_class": n,
                    "repeats": args.repeats,
                    "balanced_accuracy_mean": metrics["balanced_accuracy"]["mean"],
                    "balanced_accuracy_std": metrics["balanced_accuracy"]["std"],
                    "macro_f1_mean": metrics["macro_f1"]["mean"],
                    "macro_f1_std": metrics["macro_f1"]["std"],
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            mean, std = rows[-1]["balanced_accuracy_mean"], rows[-1]["balanced_accuracy_std"]
            print(f"{head:>4} N={n:<3} balanced accuracy {mean:.3f} ± {std:.3f}")

    backbone = extractor.description
    title = f"{backbone.get('arch', args.backbone)} ({backbone.get('source', '')}) on {args.data.name}"
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "backbone": extractor.description,
        "data": str(args.data),
        "train_cells": len(pool),
        "test_cells": len(evaluation),
        "feature_extraction_seconds": round(extraction_seconds, 1),
        "results": rows,
    }
    (args.out / "fewshot.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "fewshot.md").write_text(_table(rows, args.heads, args.shots, title), encoding="utf-8")
    _plot(rows, args.heads, args.shots, title, args.out / "fewshot.png")
    print((args.out / "fewshot.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
