"""Stage configs: frozen dataclasses with defaults in code, an optional TOML file, command-line overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["build_config", "config_from_dict", "config_to_dict"]

Config = TypeVar("Config")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (lists for tuples) fit for TOML, JSON and ``weights_only`` checkpoints."""
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(config).items()
    }


def config_from_dict(cls: type[Config], values: dict[str, Any]) -> Config:
    """Rebuild a config; lists become tuples again and unknown keys are an error.

    Raises:
        ValueError: If ``values`` has keys the config does not know.
    """
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
    return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def build_config(cls: type[Config], toml_file: Path | None, overrides: dict[str, Any]) -> Config:
    """Defaults, then the TOML file's values, then every override that is not ``None``."""
    values: dict[str, Any] = {}
    if toml_file is not None:
        values.update(tomllib.loads(Path(toml_file).read_text(encoding="utf-8")))
    values.update({key: value for key, value in overrides.items() if value is not None})
    return config_from_dict(cls, values)
