"""Whether a model card fits the graph it comes with: checked when a model is loaded, on every engine.

The runtime trusts the card for two things the graph also fixes: how many classes there are (the columns of
``cells.csv``, the rows of the differential) and the size every cell is resized to before it enters the graph. A
card that belongs to another graph (edited by hand, copied from another model, a TensorRT manifest beside another
engine) would give ragged reports or fail on the first batch, and an input size of 0 or 100,000 pixels a side no
image can be resized to. Such a model is refused when it is loaded, before any cell is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hema.runtime.card import ModelCard
from hema.runtime.engines.base import IMAGE_INPUT, PROBABILITIES_OUTPUT, ModelError

__all__ = ["MAX_INPUT_SIDE", "Shape", "check_card_fits_graph"]

MAX_INPUT_SIDE = 4096
"""The largest image side a card may ask for, in pixels (hema's models take 224; cell crops are a few hundred)."""

Shape = Sequence[int | None] | None
"""A tensor's shape as the graph declares it: ``None`` for a dimension (or a rank) that is only known at run time."""


def _is_pixel_count(side: object) -> bool:
    return isinstance(side, int) and not isinstance(side, bool) and 1 <= side <= MAX_INPUT_SIDE


def _describe(shape: Shape) -> str:
    return "unknown" if shape is None else "(" + ", ".join("?" if side is None else str(side) for side in shape) + ")"


def _check_class_names(card: ModelCard, path: Path) -> None:
    names = card.class_names
    if not names or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ModelError(
            f"{path}: its model card's class names {list(names)!r} are not one distinct, non-empty name per class: "
            "re-export the model with hema-export"
        )


def check_card_fits_graph(
    card: ModelCard, path: Path, inputs: Mapping[str, Shape], outputs: Mapping[str, Shape]
) -> None:
    """Refuse a card that does not describe the graph it was loaded with.

    Args:
        card: The model card.
        path: The model artifact (for messages).
        inputs: Shape of each graph input, by name (``image``: ``(batch, height, width, 3)``).
        outputs: Shape of each graph output, by name (``probabilities``: ``(batch, classes)``).

    Raises:
        ModelError: If the card's input size is not 1 to :data:`MAX_INPUT_SIDE` whole pixels a side, the graph has
            no ``image`` input of the card's size, or the card's class count differs from the number of
            probabilities the graph outputs (or its class names are empty or repeated).
    """
    height, width = card.input.height, card.input.width
    if not (_is_pixel_count(height) and _is_pixel_count(width)):
        raise ModelError(
            f"{path}: its model card's input size {height!r}x{width!r} is not an image size: each side must be a "
            f"whole number from 1 to {MAX_INPUT_SIDE} pixels; re-export the model with hema-export"
        )
    if IMAGE_INPUT not in inputs:
        raise ModelError(
            f"{path}: the graph has no {IMAGE_INPUT!r} input (it has {', '.join(inputs)}): not a hema model"
        )
    image = inputs[IMAGE_INPUT]
    if image is not None and (len(image) != 4 or image[3] not in (None, 3)):
        raise ModelError(f"{path}: the graph's image input has shape {_describe(image)}, not (batch, height, width, 3)")
    if image is not None and (image[1] not in (None, height) or image[2] not in (None, width)):
        raise ModelError(
            f"{path}: its model card says cells are resized to {height}x{width} pixels, but the graph's image input is "
            f"{_describe(image[1:3])[1:-1].replace(', ', 'x')}: the card does not belong to this graph; re-export the "
            "model with hema-export"
        )
    if PROBABILITIES_OUTPUT not in outputs:
        return  # a backbone-only export: no classes (require_classifier refuses it where classes are needed)
    _check_class_names(card, path)
    probabilities = outputs[PROBABILITIES_OUTPUT]
    if probabilities is not None and len(probabilities) != 2:
        raise ModelError(
            f"{path}: the graph's probabilities have shape {_describe(probabilities)}, not (batch, classes)"
        )
    if probabilities is not None and probabilities[1] not in (None, len(card.class_names)):
        raise ModelError(
            f"{path}: its model card names {len(card.class_names)} classes but the graph outputs {probabilities[1]} "
            "class probabilities: the card does not belong to this graph; re-export the model with hema-export"
        )
