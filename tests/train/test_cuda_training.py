"""The CUDA path of the training loops: autocast, gradient scaling, pinned memory. Runs only where a GPU is.

CPU-only machines (this project's CI included) skip it; the same loops are tested on CPU in
``test_training_runs.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hema.train.dino.config import DINOConfig
from hema.train.dino.training import train_dino
from hema.train.run.loop import MixedPrecision
from hema.train.run.resumable_checkpoint import load_training_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_mixed_precision_is_on_for_cuda_and_off_for_cpu() -> None:
    assert MixedPrecision(torch.device("cuda")).enabled
    assert not MixedPrecision(torch.device("cpu")).enabled


def test_dino_run_with_amp_on_cuda_trains_and_saves_finite_weights(pbc_dir: Path, tmp_path: Path) -> None:
    config = DINOConfig(
        cells=(str(pbc_dir / "basophil"),), out=str(tmp_path), device="cuda", amp=True, global_size=96,
        local_size=48, local_crops=2, out_dim=256, batch_size=16, epochs=1, warmup_epochs=0, max_steps=5,
    )  # fmt: skip
    saved = load_training_checkpoint(train_dino(config))
    assert saved["progress"]["step"] == 5
    assert all(torch.isfinite(tensor).all() for tensor in saved["backbone"].values() if tensor.is_floating_point())
