"""Real training runs on real cells, kept tiny: resume, DistributedDataParallel, loss going down, hand-off.

Every run uses Lite0 from ImageNet at a small input size so the suite stays within CI's budget on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hema.train.adapt.config import AdaptConfig
from hema.train.adapt.training import adapt_mdd
from hema.train.backbones.cell_backbone import create_backbone
from hema.train.data.folders import find_labelled_images
from hema.train.dino.config import DINOConfig
from hema.train.dino.training import train_dino
from hema.train.run.resumable_checkpoint import load_training_checkpoint
from hema.train.supervised.config import SupervisedConfig
from hema.train.supervised.finetune import train_supervised

pytestmark = pytest.mark.slow

TINY_DINO = dict(global_size=64, local_size=32, local_crops=2, out_dim=64, batch_size=4, workers=0, epochs=2)


@pytest.fixture(scope="module")
def tiny_cells(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 train-split cells of each PBC class, as an ImageFolder of symlinks (24 cells)."""
    cells = find_labelled_images(pbc_dir, "train")
    root = tmp_path_factory.mktemp("tiny_cells")
    for index, name in enumerate(cells.class_names):
        folder = root / name
        folder.mkdir()
        for path in [p for p, label in zip(cells.paths, cells.labels) if label == index][:3]:
            (folder / path.name).symlink_to(path)
    return root


def _states_equal(first: dict, second: dict, atol: float) -> None:
    assert first.keys() == second.keys()
    for key in first:
        if first[key].is_floating_point():
            torch.testing.assert_close(first[key], second[key], atol=atol, rtol=0, msg=key)
        else:
            assert torch.equal(first[key], second[key]), key


def test_resumed_dino_run_equals_uninterrupted_run(tiny_cells: Path, tmp_path: Path) -> None:
    whole = train_dino(DINOConfig(cells=(str(tiny_cells),), out=str(tmp_path / "whole"), **TINY_DINO))
    interrupted = DINOConfig(cells=(str(tiny_cells),), out=str(tmp_path / "parts"), max_steps=5, **TINY_DINO)
    train_dino(interrupted)  # stops mid-epoch 1 (6 steps per epoch)
    assert load_training_checkpoint(tmp_path / "parts" / "checkpoint.pt")["progress"]["step"] == 5
    parts = train_dino(DINOConfig(**{**interrupted.__dict__, "max_steps": None, "resume": True}))

    expected, resumed = load_training_checkpoint(whole), load_training_checkpoint(parts)
    assert resumed["progress"]["step"] == expected["progress"]["step"] == 12
    for module in ("student", "teacher", "loss"):
        _states_equal(expected["modules"][module], resumed["modules"][module], atol=1e-6)
    assert not torch.equal(  # training changed the weights: the comparison above is not vacuous
        expected["backbone"]["conv_stem.weight"], create_backbone().model.state_dict()["conv_stem.weight"]
    )


def test_two_process_ddp_run_equals_single_process_run(tiny_cells: Path, tmp_path: Path) -> None:
    arguments = [
        "ssl", "--cells", str(tiny_cells), "--global-size", "64", "--local-size", "32", "--local-crops", "2",
        "--out-dim", "64", "--batch-size", "8", "--epochs", "1", "--warmup-epochs", "0", "--workers", "0",
        "--device", "cpu",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = [sys.executable, "-m", "hema.train.cli", *arguments, "--out", str(tmp_path / "single")]
    subprocess.run(single, check=True, env=environment, capture_output=True)
    ddp = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "hema.train.cli", *arguments, "--out", str(tmp_path / "ddp"),
    ]  # fmt: skip
    finished = subprocess.run(ddp, env=environment, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]

    one = load_training_checkpoint(tmp_path / "single" / "checkpoint.pt")
    two = load_training_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert one["progress"]["step"] == two["progress"]["step"] == 3
    for module in ("teacher", "student", "loss"):
        _states_equal(one["modules"][module], two["modules"][module], atol=2e-5)


def test_supervised_fine_tuning_lowers_the_loss_on_real_cells(tiny_cells: Path, tmp_path: Path) -> None:
    config = SupervisedConfig(
        data=str(tiny_cells), out=str(tmp_path), split="all", val_fraction=0.34, image_size=64,
        batch_size=8, epochs=8, lr=1e-2, schedule="cosine", patience=100, workers=0, label_smoothing=0.0,
    )  # fmt: skip
    best = train_supervised(config)
    losses = np.loadtxt(tmp_path / "metrics.csv", delimiter=",", skiprows=1, usecols=2)
    assert len(losses) == 16
    assert losses[-4:].mean() < 0.7 * losses[:4].mean()
    # the best checkpoint's backbone feeds few-shot fitting and export unchanged
    backbone = create_backbone(str(best))
    saved = load_training_checkpoint(best)
    torch.testing.assert_close(backbone.model.state_dict()["conv_head.weight"], saved["backbone"]["conv_head.weight"])
    assert backbone.info.arch == "efficientnet_lite0" and backbone.info.source == str(best)


def test_mdd_run_scores_the_target_without_its_labels_and_keeps_the_best(
    tiny_cells: Path, bccd_dir: Path, tmp_path: Path
) -> None:
    config = AdaptConfig(
        data=str(tiny_cells), cells=str(bccd_dir / "monocyte"), out=str(tmp_path), split="all",
        image_size=64, epochs=2, iters_per_epoch=2, batch_size=8, workers=0,
    )  # fmt: skip
    best = adapt_mdd(config)
    scores = (tmp_path / "target.csv").read_text().splitlines()
    assert scores[0] == "step,epoch,entropy,snd"  # a flat target folder has no labels to report
    entropies = [float(line.split(",")[2]) for line in scores[1:]]
    assert len(entropies) == 2
    saved = load_training_checkpoint(best)
    assert saved["config"]["method"] == "mdd"
    assert saved["progress"]["best_epoch"] == int(np.argmin(entropies))  # selected by entropy, without labels
    assert set(saved["modules"]["model"]) >= {"grl.iteration", "adversarial_head.0.weight", "bottleneck.0.weight"}
    create_backbone(str(best))  # the adapted backbone feeds few-shot fitting and export unchanged
