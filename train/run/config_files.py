"""Stage configs: frozen dataclasses with defaults in code, an optional TOML file, command-line overrides.

Old setting names (a field's ``aliases``, see :func:`hema.train.run.settings.setting`) are mapped to the current
ones here, in one place, so TOML files and checkpoints written before a rename still load.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from hema.train.run.settings import setting_info

__all__ = ["build_config", "config_from_dict", "config_to_dict", "read_toml", "renamed_settings"]

Config = TypeVar("Config")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (lists for tuples) fit for TOML, JSON and ``weights_only`` checkpoints."""
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(config).items()
    }


def renamed_settings(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every old setting name replaced by the current field name.

    Raises:
        ValueError: If a setting is given under both its old and its current name.
    """
    renamed = dict(values)
    for field in dataclasses.fields(cls):
        for alias in setting_info(field).aliases:
            if alias in renamed:
                if field.name in renamed:
                    raise ValueError(f"{cls.__name__}: {alias!r} is the old name of {field.name!r}; give only one")
                renamed[field.name] = renamed.pop(alias)
    return renamed


def config_from_dict(cls: type[Config], values: dict[str, Any]) -> Config:
    """Rebuild a config; old names are renamed, lists become tuples again and unknown keys are an error.

    Raises:
        ValueError: If ``values`` has keys the config does not know.
    """
    values = renamed_settings(cls, values)
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
    return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def read_toml(toml_file: Path) -> dict[str, Any]:
    """The settings in a TOML file (a flat table of ``name = value``)."""
    return tomllib.loads(Path(toml_file).read_text(encoding="utf-8"))


def build_config(cls: type[Config], toml_file: Path | None, overrides: dict[str, Any]) -> Config:
    """Defaults, then the TOML file's values, then ``overrides`` (the options given on the command line).

    Old names are renamed before the two are merged, so an option overrides a TOML value under either name.
    """
    values: dict[str, Any] = {}
    if toml_file is not None:
        values.update(renamed_settings(cls, read_toml(toml_file)))
    values.update(renamed_settings(cls, overrides))
    return config_from_dict(cls, values)
