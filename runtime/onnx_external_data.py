"""Whether an ONNX model keeps tensors outside its own file (ONNX "external data"), without the onnx package.

hema's models are single self-contained files: the manifest hashes the bytes of that file, and the engine is given
those very bytes. A tensor stored in external data would be read by the engine from another file that nothing has
checked (and, for a model loaded from memory, from a path relative to wherever the process runs). Such a model is
refused outright.

The model is walked in protobuf's wire format, reading only the messages that can hold a tensor (``onnx.proto``):
graphs, their nodes' attributes (subgraphs of ``If``/``Loop``/``Scan``, ``Constant`` values), sparse tensors,
functions and training graphs. Tensor payloads are skipped by their length, so a 14 MB model takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["references_external_data"]

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5

# message -> {field number: message type of that (length-delimited) field}; fields not named here are skipped
_MESSAGE_FIELDS: dict[str, dict[int, str]] = {
    "ModelProto": {7: "GraphProto", 20: "TrainingInfoProto", 25: "FunctionProto"},
    "TrainingInfoProto": {1: "GraphProto", 2: "GraphProto"},
    "GraphProto": {1: "NodeProto", 5: "TensorProto", 15: "SparseTensorProto"},
    "FunctionProto": {7: "NodeProto", 11: "AttributeProto"},
    "NodeProto": {5: "AttributeProto"},
    "AttributeProto": {
        5: "TensorProto",
        6: "GraphProto",
        10: "TensorProto",
        11: "GraphProto",
        22: "SparseTensorProto",
        23: "SparseTensorProto",
    },
    "SparseTensorProto": {1: "TensorProto", 2: "TensorProto"},
}
_TENSOR_EXTERNAL_DATA = 13  # TensorProto.external_data: repeated (key, value) entries such as "location"
_TENSOR_DATA_LOCATION = 14  # TensorProto.data_location: DEFAULT = 0, EXTERNAL = 1
_EXTERNAL = 1
_MAX_DEPTH = 64  # nested subgraphs deeper than any real model: a crafted file, not a model


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it."""
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated or invalid varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Each field of one message as ``(field number, wire type, value)``; value is an int or a memoryview."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _varint(data, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("a field runs past the end of its message")
            value, position = data[position : position + length], position + length
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
            value = 0
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(data):
            raise ValueError("a field runs past the end of its message")
        yield number, wire_type, value


def _message_references_external_data(data: memoryview, message: str, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        raise ValueError(f"subgraphs nested more than {_MAX_DEPTH} deep")
    children = _MESSAGE_FIELDS.get(message, {})
    for number, wire_type, value in _fields(data):
        if message == "TensorProto":
            if number == _TENSOR_EXTERNAL_DATA and wire_type == _LENGTH_DELIMITED:
                return True
            if number == _TENSOR_DATA_LOCATION and wire_type == _VARINT and value == _EXTERNAL:
                return True
        elif number in children and wire_type == _LENGTH_DELIMITED:
            if _message_references_external_data(value, children[number], depth + 1):
                return True
    return False


def references_external_data(model: bytes) -> bool:
    """Whether any tensor of a serialized ONNX ``ModelProto`` is stored outside the model's own bytes.

    Args:
        model: The bytes of an ``.onnx`` file.

    Returns:
        ``True`` when a tensor (an initializer, a sparse initializer, a node attribute, in any subgraph or
        function) has ``data_location`` ``EXTERNAL`` or ``external_data`` entries.

    Raises:
        ValueError: If the bytes are not a well-formed protobuf message.
    """
    return _message_references_external_data(memoryview(model), "ModelProto", 0)
