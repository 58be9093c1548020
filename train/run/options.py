"""Command-line options derived from a config dataclass: ``hema-train ssl``, ``supervised`` and ``adapt``.

:func:`config_command` turns every field of a config (see :func:`hema.train.run.settings.setting`) into one
option: ``--field-name`` (or the field's ``flag``), typed by the annotation (``bool`` as ``--x/--no-x``,
``tuple[str, ...]`` as a repeatable option), the real default shown in ``--help``, choices shown and enforced.
``--config run.toml`` may set any field: defaults < TOML file < options actually given on the command line (told
apart with click's parameter source, so an option given with its default value still overrides the file). A field
without a default is a required option unless the TOML file sets it. A field's old names stay accepted as hidden
options that print a one-line deprecation note. Adding a setting is one edit: the field.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any

import typer

from hema.cli_support import user_errors_exit_2
from hema.train.run.config_files import config_from_dict, read_toml, renamed_settings
from hema.train.run.settings import RunSettings, setting_info

__all__ = ["config_command", "option_name"]

CONFIG_HELP = "TOML file with any of these settings (name = value); options given here override it."
_RUN_PANEL = "Run settings (every training command)"
_RUN_FIELDS = {field.name for field in dataclasses.fields(RunSettings)}
_SCALARS = (str, int, float, bool)


def option_name(field: dataclasses.Field) -> str:
    """The long option of a field: its ``flag`` (the part before ``/``) or ``--field-name``."""
    flag = setting_info(field).flag
    return flag.split("/")[0] if flag else "--" + field.name.replace("_", "-")


def _declarations(field: dataclasses.Field, hint: Any) -> list[str]:
    info = setting_info(field)
    if info.flag:
        declarations = [info.flag]
    elif hint is bool:
        kebab = field.name.replace("_", "-")
        declarations = [f"--{kebab}/--no-{kebab}"]
    else:
        declarations = [option_name(field)]
    return declarations + ([info.short] if info.short else [])


def _cli_type(hint: Any) -> tuple[Any, Any, bool]:
    """The typer annotation for a field's type hint, its scalar type, and whether the option repeats."""
    args = typing.get_args(hint)
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [arg for arg in args if arg is not NoneType]
        if len(inner) != 1 or inner[0] not in _SCALARS:
            raise TypeError(f"unsupported setting type {hint!r}: use X | None")
        return inner[0] | None, inner[0], False
    if typing.get_origin(hint) is tuple:
        if len(args) != 2 or args[1] is not Ellipsis or args[0] not in _SCALARS:
            raise TypeError(f"unsupported setting type {hint!r}: use tuple[X, ...]")
        return list[args[0]], args[0], True
    if hint in _SCALARS:
        return hint, hint, False
    raise TypeError(f"unsupported setting type {hint!r}")


def _option(field: dataclasses.Field, hint: Any, *, hidden: bool = False, declarations: list[str] | None = None):
    """The annotation ``Annotated[type, typer.Option(...)]`` and the default of one field's option."""
    info = setting_info(field)
    annotation, scalar, repeats = _cli_type(hint)
    choices = None
    if info.choices:  # an Enum: shown as [a|b|c] in --help and enforced by every typer release
        if scalar is not str:
            raise TypeError(f"setting {field.name!r}: choices need a str field")
        choices = enum.Enum(f"{field.name}_choices", {str(c): str(c) for c in info.choices}, type=str)
        annotation = list[choices] if repeats else choices | None if annotation is not scalar else choices
        scalar = choices
    required = _required(field)
    if required or hidden:  # no default: a value only when given
        default = None
        annotation = annotation if repeats or annotation is not scalar else scalar | None
    else:
        default = list(field.default) if repeats else field.default
        if choices is not None and field.default is not None:
            default = [choices(str(value)) for value in default] if repeats else choices(str(default))
    text = info.help + (" Required (here or in the --config file)." if required else "")
    text += " Repeat for several." if repeats and "Repeat" not in text else ""
    option = typer.Option(
        *(declarations or _declarations(field, hint)),
        help=text,
        hidden=hidden,
        metavar=info.metavar,
        min=info.min if scalar in (int, float) else None,
        rich_help_panel=None if hidden or field.name not in _RUN_FIELDS else _RUN_PANEL,
        show_default=not required and not hidden,
    )
    return Annotated[annotation, option], default


def config_command(config_cls: type, run: Callable[[Any], None], *, name: str) -> Callable[..., None]:
    """A typer command with one option per field of ``config_cls`` (see the module docstring).

    Args:
        config_cls: A frozen config dataclass whose fields are written with :func:`~hema.train.run.settings.setting`.
        run: Called with the built config; its docstring is the command's ``--help``. Bad settings and unreadable
            files (``ValueError``, ``OSError``) end the command with exit code 2.
        name: The command's name, e.g. ``"ssl"``.

    Returns:
        A function for ``app.command()``.
    """
    hints = typing.get_type_hints(config_cls)
    fields = sorted(dataclasses.fields(config_cls), key=lambda field: field.name in _RUN_FIELDS)  # stable
    parameters = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
    deprecated: dict[str, tuple[dataclasses.Field, str]] = {}
    for field in fields:
        annotation, default = _option(field, hints[field.name])
        parameters.append(
            inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    for field in fields:
        for alias in setting_info(field).aliases:
            kebab = alias.replace("_", "-")
            flag = f"--{kebab}/--no-{kebab}" if hints[field.name] is bool else f"--{kebab}"
            annotation, default = _option(field, hints[field.name], hidden=True, declarations=[flag])
            deprecated[f"deprecated_{alias}"] = (field, alias)
            parameters.append(
                inspect.Parameter(
                    f"deprecated_{alias}", inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
                )
            )
    config_option = typer.Option("--config", help=CONFIG_HELP, exists=True, dir_okay=False, metavar="TOML")
    parameters.append(
        inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Path | None, config_option]
        )
    )
    names = [parameter.name for parameter in parameters]
    if len(names) != len(set(names)):
        raise ValueError(f"{config_cls.__name__}: a field or old name collides with another option")

    def command(ctx: typer.Context, **values: Any) -> None:
        given: dict[str, Any] = {}
        for field in fields:
            if _given(ctx, field.name):
                given[field.name] = values[field.name]
        for parameter, (field, alias) in deprecated.items():
            if _given(ctx, parameter):
                old, new = f"--{alias.replace('_', '-')}", option_name(field)
                typer.echo(f"note: {old} is deprecated; use {new}", err=True)
                if field.name in given:
                    ctx.fail(f"give {new} or its old spelling {old}, not both")
                given[field.name] = values[parameter]
        given = {key: _plain(value) for key, value in given.items()}
        toml_file = values["config"]
        from_file = user_errors_exit_2(lambda: renamed_settings(config_cls, read_toml(toml_file))) if toml_file else {}
        missing = [
            option_name(field) for field in fields if _required(field) and field.name not in {**from_file, **given}
        ]
        if missing:
            ctx.fail(f"Missing option{'s' * (len(missing) > 1)} {', '.join(missing)} (or set in the --config file).")
        user_errors_exit_2(lambda: run(config_from_dict(config_cls, {**from_file, **given})))

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__name__ = command.__qualname__ = name
    command.__doc__ = run.__doc__
    command.__module__ = run.__module__
    return command


def _plain(value: Any) -> Any:
    """A command-line value as the config stores it: tuples for lists, strings for choices."""
    if isinstance(value, list | tuple):
        return tuple(_plain(item) for item in value)
    return value.value if isinstance(value, enum.Enum) else value


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed on the command line (not a default; compared by name because some typer
    releases bundle their own click)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
