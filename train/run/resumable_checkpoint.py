"""Resumable training checkpoints: a plain config dict and state dicts, loadable with ``weights_only=True``.

Layout (``torch.save`` of a dict of plain types and tensors only)::

    {"config": {... "arch": "efficientnet_lite0" ...},   # the run's frozen config as a plain dict
     "backbone": state_dict,                              # what hema-train fewshot / hema-export load
     "modules": {name: state_dict},                       # student, teacher, heads, ...
     "optimizer": state_dict, "scaler": state_dict,
     "progress": {"epoch": int, "step": int, "step_in_epoch": int, ...}}

``hema.train.backbones.weight_files.read_backbone_weights`` reads the ``backbone`` entry with the architecture from
``config``, so every trained backbone feeds few-shot fitting and export unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from hema.train.backbones.cell_backbone import CellBackbone
from hema.train.run.config_files import config_to_dict

__all__ = ["load_training_checkpoint", "restore_training_state", "save_training_checkpoint", "training_checkpoint"]


def training_checkpoint(
    config: Any,
    method: str,
    backbone: CellBackbone,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the checkpoint dict (layout in the module docstring).

    Args:
        config: The run's frozen config dataclass.
        method: ``dino``, ``supervised`` or ``mdd``.
        backbone: The backbone to hand on to few-shot fitting and export (DINO: the teacher's).
        modules: Every module whose state a resumed run needs (unwrapped from DistributedDataParallel).
        optimizer: The optimiser.
        scaler: The mixed-precision gradient scaler.
        progress: Step counters and anything else the loop needs to continue.
    """
    return {
        "config": {**config_to_dict(config), "method": method, "arch": backbone.info.arch},
        "backbone": backbone.model.state_dict(),
        "backbone_info": backbone.info.to_dict(),
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": progress,
    }


def save_training_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint` without unpickling objects.

    Raises:
        ValueError: If the file is not a hema training checkpoint.
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    missing = {"config", "backbone", "modules", "progress"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path} is not a hema training checkpoint (missing {sorted(missing)})")
    return checkpoint


def restore_training_state(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """Load what :func:`training_checkpoint` saved back into the live objects; returns the saved progress."""
    checkpoint = load_training_checkpoint(path)
    for name, module in modules.items():
        module.load_state_dict(checkpoint["modules"][name])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    return checkpoint["progress"]
