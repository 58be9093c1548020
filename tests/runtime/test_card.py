"""The model card: the JSON contract between export and runtime."""

from __future__ import annotations

import json

import pytest

from hema.runtime.card import CARD_SCHEMA_VERSION, InputSpec, ModelCard


def _card() -> ModelCard:
    return ModelCard(
        class_names=("basophil", "eosinophil", "lymphocyte"),
        input=InputSpec(height=224, width=200, interpolation="bicubic", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)),
        backbone={"arch": "efficientnet_lite0", "source": "imagenet", "embedding_dim": 1280},
        head={"kind": "lr", "params": {"c": 0.5}},
        training_data={"folder": "pbc", "cells": {"basophil": 3}},
        metrics={"balanced_accuracy": {"mean": 0.9, "std": 0.01}},
        hema_version="1.2.3",
        created="2025-01-01T00:00:00+00:00",
        engines=("onnxruntime", "openvino"),
    )


def test_json_round_trip_restores_an_equal_card() -> None:
    card = _card()
    text = card.to_json()
    restored = ModelCard.from_json(text)
    assert restored == card
    assert isinstance(restored.class_names, tuple) and isinstance(restored.input.mean, tuple)
    assert restored.to_json() == text
    document = json.loads(text)
    assert document["schema_version"] == CARD_SCHEMA_VERSION
    assert document["input"]["height"] == 224 and document["input"]["width"] == 200


def test_card_from_a_newer_schema_is_rejected_with_upgrade_advice() -> None:
    document = json.loads(_card().to_json())
    document["schema_version"] = CARD_SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        ModelCard.from_json(json.dumps(document))


def test_card_of_the_current_schema_without_version_field_still_reads() -> None:
    document = json.loads(_card().to_json())
    del document["schema_version"]
    assert ModelCard.from_json(json.dumps(document)).class_names == _card().class_names


def _without(key: str) -> str:
    document = json.loads(_card().to_json())
    del document[key]
    return json.dumps(document)


def _with(key: str, value: object) -> str:
    document = json.loads(_card().to_json())
    document[key] = value
    return json.dumps(document)


def _input_without(key: str) -> str:
    document = json.loads(_card().to_json())
    del document["input"][key]
    return json.dumps(document)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_without("class_names"), id="no-class-names"),
        pytest.param(_without("input"), id="no-input"),
        pytest.param(_input_without("height"), id="input-without-height"),
        pytest.param(_with("input", None), id="input-null"),
        pytest.param(_with("input", "224x224"), id="input-string"),
        pytest.param("{not json", id="not-json"),
    ],
)
def test_malformed_card_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        ModelCard.from_json(text)


def test_fields_added_within_the_same_schema_version_are_ignored() -> None:
    """A runtime reads cards from a newer hema of the same schema: additive fields do not break it."""
    assert ModelCard.from_json(_with("field_from_a_later_release", {"x": 1})) == _card()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[]", id="json-array"),
        pytest.param(_with("schema_version", "1"), id="schema-version-string"),
    ],
)
def test_malformed_card_of_the_wrong_json_type_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        ModelCard.from_json(text)
