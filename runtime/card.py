"""The model card: the JSON document an exported hema model carries in its ONNX metadata.

The card is the contract between export and runtime. It names the classes in output order, states how a
decoded image must be resized before it enters the graph, and records how the model was made and how well
it did, so that a lab can see what it is running with ``hema-infer info``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["CARD_METADATA_KEY", "CARD_SCHEMA_VERSION", "InputSpec", "ModelCard"]

CARD_METADATA_KEY = "hema.model_card"
CARD_SCHEMA_VERSION = 3


@dataclass(frozen=True)
class InputSpec:
    """What the graph's ``image`` input expects.

    Attributes:
        height: Rows of the resized image.
        width: Columns of the resized image.
        resize: How the decoded cell image becomes ``height x width``. ``"stretch"``: the whole image is resized
            to the target size without cropping or padding (single-cell crops are close to square).
        interpolation: Pillow resampling filter used for the resize: ``"bilinear"``, ``"bicubic"`` or
            ``"nearest"``.
        stain: Colour handling before the resize: ``"as-is"``, or ``"standardised"``: background and stain levels
            moved to fixed targets (:func:`hema.runtime.cell_view.standardise_stain`).
        view: What is resized: ``"image"``, the whole decoded image, or ``"cell"``: a square crop of
            ``cell_context`` times the white cell's size, centred on it (:func:`hema.runtime.cell_view.cell_view`;
            implies a standardised stain).
        cell_context: Crop side as a multiple of the cell's larger side, for ``view="cell"``.
        decode_min_side: Reduced decoding (:func:`hema.runtime.preprocessing.decode_cell_image`): an image whose
            shorter side, halved, still has at least this many pixels is decoded at half size (a JPEG in
            libjpeg-turbo's DCT domain, any other format by 2x2 averaging) before the view and the resize;
            0 decodes every image in full.
        mean: Per-channel mean (0-1 scale) subtracted inside the graph. Informational: the runtime never
            normalises, the graph does.
        std: Per-channel standard deviation (0-1 scale) divided inside the graph. Informational.
    """

    height: int
    width: int
    resize: str = "stretch"
    interpolation: str = "bilinear"
    stain: str = "as-is"
    view: str = "image"
    cell_context: float = 2.0
    decode_min_side: int = 0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NHWC"
    dtype: str = "uint8"
    color: str = "RGB"


@dataclass(frozen=True)
class ModelCard:
    """Everything a runtime and a person need to know about an exported model.

    Attributes:
        class_names: Class of each probability column, in output order.
        input: Input image specification.
        backbone: Backbone description (``name``, ``source``, ``embedding_dim``).
        head: Head description (``kind`` and its fitting parameters).
        training_data: Summary of the data the head (and backbone) were fitted on.
        metrics: Measured quality, e.g. ``{"balanced_accuracy": 0.9, "evaluated_on": "..."}``.
        hema_version: Version of hema that exported the model.
        created: ISO-8601 UTC timestamp of the export.
        engines: Engines the graph runs on (``onnxruntime`` always; others only for plain-op heads).
        provenance: The commands that made the model (head fitting, export), to rebuild it.
        precision: Numeric precision of the weights and arithmetic: ``fp32``, ``fp16`` or ``int8``.
        quantisation: For reduced precision: how it was made (method, calibration cells) and its agreement with
            the FP32 model on real cells.
        review: When to flag a cell for review (:mod:`hema.runtime.review`): ``confidence_threshold``,
            ``novelty_threshold``, the rules that chose them and what they flagged on held-back training cells.
            Empty in cards written before review flags existed: such a model flags nothing.
        schema_version: Card format version.
    """

    class_names: tuple[str, ...]
    input: InputSpec
    backbone: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    hema_version: str = ""
    created: str = ""
    engines: tuple[str, ...] = ("onnxruntime",)
    provenance: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    quantisation: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA_VERSION

    def to_json(self) -> str:
        """Serialise the card as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card written by :meth:`to_json`.

        Raises:
            ValueError: If the card is missing required fields or has a newer schema than this runtime reads.
        """
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
            version = raw.get("schema_version", 0)
            if not isinstance(version, int):
                raise TypeError(f"schema_version must be an integer, got {version!r}")
            if version > CARD_SCHEMA_VERSION:
                raise ValueError(
                    f"model card schema {version} is newer than this hema reads ({CARD_SCHEMA_VERSION}): upgrade hema"
                )
            spec = raw.pop("input")
            spec = InputSpec(**{**spec, "mean": tuple(spec["mean"]), "std": tuple(spec["std"])})
            known = {field.name for field in fields(cls)}  # fields added by later versions of the same schema
            return cls(
                **{
                    **{key: value for key, value in raw.items() if key in known},
                    "input": spec,
                    "class_names": tuple(raw["class_names"]),
                    "engines": tuple(raw.get("engines", ("onnxruntime",))),
                }
            )
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"model card is malformed: {error}") from error
