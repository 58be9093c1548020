"""Few-shot draws, and ``hema-train fewshot`` end to end on real cells with the embedded ONNX backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hema.train.cli import app
from hema.train.fewshot.draws import draw_per_class, run_fewshot
from hema.train.fewshot.heads import FittedHead, HeadConfig

LABELS_PER_CLASS = 5
REPEATS = 3


def test_draw_per_class_counts_and_small_classes() -> None:
    labels = np.array([0] * 20 + [1] * 3 + [2] * 7 + [3] * 5)
    chosen = draw_per_class(labels, 5, np.random.default_rng(0))
    assert len(np.unique(chosen)) == len(chosen)  # without replacement
    assert np.bincount(labels[chosen]).tolist() == [5, 3, 5, 5]  # class 1 has only 3: all of them
    assert set(np.flatnonzero(labels == 1)) <= set(chosen)
    assert list(chosen) == sorted(chosen)


def test_draw_zero_takes_everything() -> None:
    labels = np.array([0, 1, 1, 2, 2, 2])
    assert draw_per_class(labels, 0, np.random.default_rng(0)).tolist() == [0, 1, 2, 3, 4, 5]


def test_different_seeds_draw_differently_and_the_same_seed_repeats() -> None:
    labels = np.repeat(np.arange(4), 50)
    first = draw_per_class(labels, 5, np.random.default_rng(0))
    assert np.array_equal(first, draw_per_class(labels, 5, np.random.default_rng(0)))
    assert not np.array_equal(first, draw_per_class(labels, 5, np.random.default_rng(1)))


def test_run_fewshot_repeats_use_fresh_draws() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    features = (np.eye(3)[labels] * 2.0 + rng.normal(0, 1.0, (90, 3))).astype(np.float32)
    result = run_fewshot(features, labels, ("a", "b", "c"), features, labels, HeadConfig(), 2, 4)
    values = result.metrics["balanced_accuracy"]["per_repeat"]
    assert len(values) == 4 and len(set(values)) > 1
    assert result.metrics["labels_drawn_per_class"] == {"a": 2, "b": 2, "c": 2}
    with pytest.raises(ValueError):
        run_fewshot(features, labels, ("a", "b", "c"), features, labels, HeadConfig(), 2, 0)


@pytest.fixture(scope="module")
def fewshot_run(small_pbc: Path, small_pbc_eval: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("fewshot") / "head"
    args = ["fewshot", "--data", small_pbc, "--eval", small_pbc_eval, "--out", out, "--backbone", "default",
            "--labels-per-class", LABELS_PER_CLASS, "--repeats", REPEATS, "--seed", 0]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result, out


def test_fewshot_cli_exits_0_and_writes_its_files(fewshot_run) -> None:
    result, out = fewshot_run
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in out.iterdir())
    assert names == ["confusion_matrix.png", "head.json", "head.npz", "metrics.json"]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "balanced accuracy" in result.output


def test_fewshot_metrics_json(fewshot_run, pbc_dir: Path) -> None:
    _, out = fewshot_run
    metrics = json.loads((out / "metrics.json").read_text())
    classes = sorted(path.name for path in pbc_dir.iterdir() if path.is_dir())
    assert metrics["class_names"] == classes
    assert metrics["labels_per_class"] == LABELS_PER_CLASS
    assert metrics["repeats"] == REPEATS
    assert metrics["labels_drawn_per_class"] == {name: LABELS_PER_CLASS for name in classes}
    for key in ("balanced_accuracy", "macro_f1"):
        assert set(metrics[key]) >= {"mean", "std", "per_repeat"}
        assert len(metrics[key]["per_repeat"]) == REPEATS
        assert metrics[key]["mean"] == pytest.approx(np.mean(metrics[key]["per_repeat"]), abs=1e-5)
        assert metrics[key]["std"] == pytest.approx(np.std(metrics[key]["per_repeat"]), abs=1e-5)
    assert set(metrics["per_class_recall"]) == set(classes)
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (8, 8)
    assert confusion.sum() == metrics["eval_cells"] * REPEATS == 8 * 4 * REPEATS
    assert metrics["backbone"]["arch"] == "efficientnet_lite0" and "onnx" in metrics["backbone"]
    assert metrics["training_data"]["cells"] == {name: 10 for name in classes}


def test_fewshot_is_clearly_above_chance(fewshot_run) -> None:
    _, out = fewshot_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["balanced_accuracy"]["mean"] >= 0.5, metrics["balanced_accuracy"]  # chance: 1/8


def test_fewshot_head_is_saved_and_loads(fewshot_run) -> None:
    _, out = fewshot_run
    head = FittedHead.load(out)
    assert head.kind == "lr" and head.embedding_dim == 1280 and len(head.class_names) == 8
    assert head.metadata["labels_per_class"] == LABELS_PER_CLASS
    assert head.metadata["training_data"]["split"] == "all"
    with np.load(out / "head.npz", allow_pickle=False) as stored:
        assert stored["weight"].shape == (1280, 8)


def test_eval_classes_not_in_training_exit_2(small_pbc_eval: Path, tmp_path: Path, pbc_dir: Path) -> None:
    pool = tmp_path / "pool"
    for name in ("lymphocyte", "neutrophil"):
        (pool / name).mkdir(parents=True)
        for source in sorted((small_pbc_eval / name).iterdir())[:2]:
            (pool / name / source.name).symlink_to(source.resolve())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["fewshot", "--data", str(pool), "--eval", str(small_pbc_eval), "--out", str(out), "-n", "1", "-r", "1"]
    )
    assert result.exit_code == 2, result.output
    assert "basophil" in result.output and "not among the training classes" in result.output
    assert not out.exists()


def test_missing_data_folder_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["fewshot", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "error" in result.output


def test_more_data_joins_another_labs_cells_to_the_pool_by_class_name(
    small_pbc: Path, small_pbc_eval: Path, bccd_dir: Path, tmp_path: Path
) -> None:
    """BCCD's cells join the pool under PBC's class names; the evaluation stays PBC's."""
    other = tmp_path / "bccd"
    for name in ("lymphocyte", "neutrophil"):
        (other / name).mkdir(parents=True)
        for source in sorted((bccd_dir / name).glob("*.jpg"))[:3]:
            (other / name / source.name).symlink_to(source.resolve())
    out = tmp_path / "head"
    args = ["fewshot", "--data", small_pbc, "--more-data", other, "--eval", small_pbc_eval, "--out", out,
            "--backbone", "default", "-n", "0", "-r", "1"]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    pool = metrics["training_data"]["cells"]
    assert metrics["training_data"]["more_folders"] == [str(other)]
    assert pool["neutrophil"] == len(list((small_pbc / "neutrophil").iterdir())) + 3
    assert sum(metrics["eval_data"]["cells"].values()) == sum(1 for _ in small_pbc_eval.rglob("*.jpg"))
