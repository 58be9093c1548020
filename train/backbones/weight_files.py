"""Read backbone weights from local checkpoint files, never unpickling arbitrary objects.

Understood layouts:

* a plain state dict, ``.pth``/``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors``;
* a dict wrapping one under ``state_dict`` or ``model``;
* a DINO / DINOv2 training checkpoint: the ``teacher`` entry, ``backbone.`` prefix stripped, projection heads
  (``head.``, ``dino_head.``, ``ibot_head.``) dropped; this covers DinoBloom checkpoints, whose DINOv2 keys
  (``blocks.N.ls1.gamma``, chunked ``blocks.C.N.``, ``mask_token``, ``register_tokens``) are renamed to timm's
  ``vit_*_patch14`` keys;
* a hema checkpoint: ``{"config": {...}, "backbone": state_dict, ...}`` as written by ``hema-train``, whose config
  names the timm architecture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["BackboneWeights", "CheckpointMismatchError", "load_state_dict_into", "read_backbone_weights"]

_HEAD_PREFIXES = ("head.", "dino_head.", "ibot_head.", "fc.", "classifier.")
_DROPPED_KEYS = {"mask_token"}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the backbone it is loaded into."""


@dataclass(frozen=True)
class BackboneWeights:
    """Backbone weights read from a file.

    Attributes:
        state_dict: Tensors under timm's key names.
        arch: timm architecture named by the checkpoint itself (hema checkpoints), else ``None``.
        layout: Which layout was recognised, for messages and the model card.
        info: What a hema checkpoint records of its backbone (``image_size``, ``stain``, ``view``, ...), else
            empty.
    """

    state_dict: dict[str, torch.Tensor]
    arch: str | None
    layout: str
    info: dict[str, Any] = field(default_factory=dict)


def _load_file(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refused or a broken file: say which file and why
        raise ValueError(f"cannot read checkpoint {path} with weights_only=True: {error}") from error
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(key.startswith(prefix) for key in state):
        return {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _dinov2_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _DROPPED_KEYS:
            continue
        key = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)  # DINOv2 block chunks (FSDP)
        key = "reg_token" if key == "register_tokens" else key
        renamed[key] = value
    return renamed


def read_backbone_weights(path: str | Path) -> BackboneWeights:
    """Read a backbone's weights from a local checkpoint (see the module docstring for the layouts).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file cannot be read without unpickling objects, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    raw = _load_file(path)
    arch = None
    layout = "state dict"
    info: dict[str, Any] = {}
    if isinstance(raw.get("config"), dict) and "backbone" in raw:
        arch = raw["config"].get("arch")
        info = raw["backbone_info"] if isinstance(raw.get("backbone_info"), dict) else {}
        raw, layout = raw["backbone"], "hema checkpoint"
    elif "teacher" in raw:
        raw, layout = raw["teacher"], "DINO teacher"
    elif "state_dict" in raw or "model" in raw:
        raw = raw.get("state_dict", raw.get("model"))
    state = {key: value for key, value in raw.items() if isinstance(value, torch.Tensor)}
    if not state:
        raise ValueError(f"{path} holds no tensors")
    state = _strip(state, "module.")
    state = {key: value for key, value in state.items() if not key.startswith(_HEAD_PREFIXES)}
    state = _strip(state, "backbone.")
    if any(key.startswith("blocks.") and key.endswith("ls1.gamma") for key in state) or "mask_token" in state:
        state, layout = _dinov2_to_timm(state), f"{layout} (DINOv2 / DinoBloom keys)"
    return BackboneWeights(state, arch, layout, info)


def _fit_position_embedding(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resample a ViT's absolute position embedding when the checkpoint was trained at another size."""
    target = getattr(model, "pos_embed", None)
    source = state.get("pos_embed")
    if target is None or source is None or source.shape == target.shape:
        return state
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
    grid = model.patch_embed.grid_size
    resampled = resample_abs_pos_embed(source, new_size=list(grid), num_prefix_tokens=prefix)
    return {**state, "pos_embed": resampled}


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights strictly, explaining a mismatch by the keys that are missing and unexpected.

    Raises:
        CheckpointMismatchError: If keys are missing or unexpected, or shapes differ.
    """
    state = _fit_position_embedding(model, state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or wrong_shape:

        def listing(keys: list[str]) -> str:
            return ", ".join(keys[:12]) + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "") or "none"

        raise CheckpointMismatchError(
            f"{source} does not fit {type(model).__name__}: missing keys: {listing(missing)}; "
            f"unexpected keys: {listing(unexpected)}; shape mismatches: {listing(wrong_shape)}"
        )
    model.load_state_dict(state, strict=True)
