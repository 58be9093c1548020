"""The evaluation report's saliency section: pick K test cells per class, explain the head's decision, plot.

Saliency needs a torch module. A torch backbone is used as it is. An ONNX backbone has none, with one
exception: when its card says it is timm's ImageNet EfficientNet-Lite0 (the embedded ``default`` model), the
same network is rebuilt with :func:`hema.train.backbones.cell_backbone.create_backbone`, and used only if its
embeddings of
the chosen cells equal the ONNX embeddings within :data:`PARITY_TOLERANCE`. Any other ONNX backbone is skipped,
and the report says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hema.train.backbones.cell_backbone import DEFAULT_ARCH, CellBackbone, create_backbone
from hema.train.data.eval_transform import load_eval_image
from hema.train.evaluate.figures import plot_saliency_grid
from hema.train.evaluate.gradcam import saliency_maps
from hema.train.fewshot.features import FeatureExtractor
from hema.train.fewshot.heads import FittedHead
from hema.train.run.device import resolve_device

__all__ = ["PARITY_TOLERANCE", "choose_per_class", "saliency_section", "torch_module_for"]

PARITY_TOLERANCE = 1e-3
_BATCH = 8


def torch_module_for(extractor: FeatureExtractor) -> tuple[CellBackbone | None, str]:
    """The torch module to explain, and where it came from (or, if ``None``, why there is none)."""
    if extractor.torch_backbone is not None:
        return extractor.torch_backbone, "the torch backbone itself"
    card = extractor.description
    source, size = card.get("source"), int(card.get("image_size", 224))
    if card.get("arch") == DEFAULT_ARCH and source == "imagenet":
        module = create_backbone(DEFAULT_ARCH, image_size=size)
        return module, "ImageNet EfficientNet-Lite0 rebuilt in torch from the ONNX model's card (parity checked)"
    if source not in (None, "imagenet", "scratch") and Path(source).is_file():
        module = create_backbone(source, card.get("arch"), image_size=size)
        return module, f"rebuilt in torch from the checkpoint {source} that the ONNX model's card names"
    return None, (
        f"the backbone is an ONNX model ({card.get('arch')}, source {card.get('source')}) with no torch module "
        "to take gradients or attention from (a checkpoint it names must be on this machine): saliency maps skipped"
    )


def choose_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``per_class`` cells of every class, grouped by class in label order."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return np.concatenate(chosen)


def _explain(
    module: CellBackbone, paths: Sequence[Path], head: FittedHead, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Images, maps, predictions and embeddings of ``paths``, in batches; and the saliency method."""
    target = resolve_device(device)
    module = module.to(target).eval()
    spec = module.info.input_spec()
    images, maps, predicted, embeddings, method = [], [], [], [], ""
    for start in tqdm(range(0, len(paths), _BATCH), desc="saliency maps", unit="batch", disable=None):
        batch = torch.stack([load_eval_image(path, spec) for path in paths[start : start + _BATCH]])
        result = saliency_maps(module, batch.to(target), head.arrays["weight"], head.arrays["bias"])
        images.append(batch.numpy())
        maps.append(result.maps)
        predicted.append(result.predicted)
        embeddings.append(result.embeddings)
        method = result.method
    return np.concatenate(images), np.concatenate(maps), np.concatenate(predicted), np.concatenate(embeddings), method


def saliency_section(
    extractor: FeatureExtractor,
    head: FittedHead,
    paths: Sequence[Path],
    labels: np.ndarray,
    features: np.ndarray,
    per_class: int,
    seed: int,
    out: Path,
    device: str = "auto",
) -> dict[str, Any]:
    """Explain ``per_class`` test cells of every class and write ``out`` (a PNG grid); return the report entry.

    Args:
        extractor: The backbone the features came from.
        head: The all-labels linear head (``weight``, ``bias`` arrays) whose predicted class is explained.
        paths: Test cells.
        labels: Their labels, indices into ``head.class_names``.
        features: Their embeddings from ``extractor`` (checked against the torch module's).
        per_class: Cells per class (K).
        seed: Seed of the choice of cells.
        out: PNG to write.
        device: Torch device.
    """
    if per_class < 1:
        return {"skipped": "--gradcam-per-class 0"}
    module, origin = torch_module_for(extractor)
    if module is None:
        return {"skipped": origin}
    chosen = choose_per_class(labels, per_class, np.random.default_rng(seed))
    try:
        images, maps, predicted, embeddings, method = _explain(module, [paths[i] for i in chosen], head, device)
    except ValueError as error:  # neither a CNN with global pooling nor a timm ViT
        return {"skipped": f"{origin}: {error}", "module": origin}
    difference = float(np.abs(embeddings - features[chosen]).max())
    if difference > PARITY_TOLERANCE:
        return {"skipped": f"{origin}: embeddings differ from the extracted ones by {difference:.2e}", "module": origin}
    names = head.class_names
    truth = [names[label] for label in labels[chosen]]
    predicted_names = [names[index] for index in predicted]
    target = "logit of the LR head's predicted class" if method == "grad-cam" else "none (attention)"
    title = f"{method} ({target}), {extractor.description.get('arch')} ({extractor.description.get('source')})"
    plot_saliency_grid(images, maps, truth, predicted_names, per_class, title, out)
    return {
        "method": method,
        "explained": target,
        "module": origin,
        "max_embedding_difference": difference,
        "file": out.name,
        "cells_per_class": per_class,
        "correct": int(sum(t == p for t, p in zip(truth, predicted_names))),
        "cells": [
            {"path": str(paths[i]), "class": t, "predicted": p} for i, t, p in zip(chosen, truth, predicted_names)
        ],
    }
