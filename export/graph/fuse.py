"""Join the backbone and head graphs into one self-contained ONNX model carrying its model card."""

from __future__ import annotations

import onnx
from onnx import helper

from hema.export.graph.backbone import IR_VERSION
from hema.runtime.card import CARD_METADATA_KEY, ModelCard
from hema.runtime.engines.base import EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT

__all__ = ["attach_card", "fuse_backbone_and_head", "read_card"]

_SHARED_NAMES = {EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT, ""}


def _prefixed(name: str) -> str:
    return name if name in _SHARED_NAMES else f"head/{name}"


def fuse_backbone_and_head(backbone: onnx.ModelProto, head: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: ``image`` -> backbone -> ``embedding`` -> head -> ``probabilities``; both are outputs.

    The head's node and tensor names are prefixed with ``head/`` so they cannot clash with the backbone's.
    """
    head_graph = onnx.GraphProto()
    head_graph.CopyFrom(head.graph)
    for node in head_graph.node:
        node.name = _prefixed(node.name or node.op_type)
        node.input[:] = [_prefixed(name) for name in node.input]
        node.output[:] = [_prefixed(name) for name in node.output]
    for tensor in head_graph.initializer:
        tensor.name = _prefixed(tensor.name)
    for info in head_graph.value_info:
        info.name = _prefixed(info.name)

    outputs = [next(o for o in head_graph.output if o.name == PROBABILITIES_OUTPUT)]
    outputs += [next(o for o in backbone.graph.output if o.name == EMBEDDING_OUTPUT)]
    graph = helper.make_graph(
        [*backbone.graph.node, *head_graph.node],
        "hema_cell_classifier",
        list(backbone.graph.input),
        outputs,
        initializer=[*backbone.graph.initializer, *head_graph.initializer],
        value_info=[*backbone.graph.value_info, *head_graph.value_info],
    )
    opsets: dict[str, int] = {}
    for opset in [*backbone.opset_import, *head.opset_import]:
        opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items())],
        ir_version=IR_VERSION,
        producer_name="hema",
    )
    onnx.checker.check_model(model)
    return model


def attach_card(model: onnx.ModelProto, card: ModelCard) -> onnx.ModelProto:
    """Store the card as JSON under :data:`~hema.runtime.card.CARD_METADATA_KEY` (replacing any earlier one)."""
    kept = [prop for prop in model.metadata_props if prop.key != CARD_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=CARD_METADATA_KEY, value=card.to_json())
    model.doc_string = f"hema white-blood-cell classifier: {', '.join(card.class_names)}"
    return model


def read_card(model: onnx.ModelProto) -> ModelCard:
    """The card in an ONNX model's metadata.

    Raises:
        ValueError: If the model carries none.
    """
    for prop in model.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            return ModelCard.from_json(prop.value)
    raise ValueError(f"the ONNX model carries no hema model card ({CARD_METADATA_KEY!r}): export it with hema-export")
