"""Settings every training method shares, and :func:`setting`, the one place a setting's help and choices live.

A config field written with :func:`setting` carries everything the command line needs (help, choices, bounds,
option spelling, old spellings) in its ``dataclasses.field`` metadata; :func:`hema.train.run.options.config_command`
derives the options from it and :func:`check_settings` validates choices and bounds. Torch-free, so ``--help``
stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, get_args

from hema.train.data.folders import SPLITS

__all__ = [
    "BATCHNORM_POLICIES",
    "DEVICES",
    "Device",
    "SPLITS",
    "RunSettings",
    "SettingInfo",
    "check_settings",
    "setting",
    "setting_info",
]

BATCHNORM_POLICIES = ("frozen", "train", "sync")
Device = Literal["auto", "cpu", "cuda"]
DEVICES = get_args(Device)

_KEY = "hema"


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    """What :func:`setting` stores in a field's metadata (under the key ``"hema"``).

    Attributes:
        help: One line for ``--help``.
        choices: The allowed values, or None.
        min: The smallest allowed number, or None.
        flag: Option declaration replacing ``--field-name`` (e.g. ``"--pretrained/--scratch"``), or None.
        short: Short option (e.g. ``"-o"``), or None.
        metavar: Placeholder in ``--help`` (e.g. ``"DIR"``), or None.
        aliases: Old field names: still read from TOML files and checkpoints, and accepted on the command line
            as hidden ``--old-name`` options that print a deprecation note.
    """

    help: str
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    flag: str | None = None
    short: str | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: Sequence[Any] | None = None,
    min: float | None = None,
    flag: str | None = None,
    short: str | None = None,
    metavar: str | None = None,
    aliases: Sequence[str] = (),
) -> Any:
    """A config field with its help, choices and option spelling (a field without ``default`` is required).

    Args:
        default: The default value; omit it for a required setting.
        help: One line for ``--help`` (the default and choices are added to it by the CLI).
        choices: The allowed values.
        min: The smallest allowed number.
        flag: Option declaration replacing ``--field-name``.
        short: Short option, e.g. ``"-o"``.
        metavar: Placeholder in ``--help``, e.g. ``"DIR"``.
        aliases: Old names of this setting (see :class:`SettingInfo`).
    """
    info = SettingInfo(
        help=help,
        choices=tuple(choices) if choices is not None else None,
        min=min,
        flag=flag,
        short=short,
        metavar=metavar,
        aliases=tuple(aliases),
    )
    return dataclasses.field(default=default, metadata={_KEY: info})


def setting_info(field: dataclasses.Field) -> SettingInfo:
    """The :class:`SettingInfo` of a field (a plain field gets one with an empty help)."""
    return field.metadata.get(_KEY, SettingInfo(help=""))


def check_settings(config: Any) -> None:
    """Check every field of a config dataclass against its choices and bounds.

    Raises:
        ValueError: Naming the setting, the value and what is allowed.
    """
    for field in dataclasses.fields(config):
        info, value = setting_info(field), getattr(config, field.name)
        if value is None:
            continue
        if info.choices is not None and value not in info.choices:
            raise ValueError(f"unknown {field.name} {value!r}; choose one of {', '.join(map(str, info.choices))}")
        if info.min is not None and value < info.min:
            raise ValueError(f"{field.name} must be at least {info.min}, not {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The part of every stage config that is not about the method itself: where it runs, seeds, budgets."""

    batchnorm: str = setting(
        "frozen",
        choices=BATCHNORM_POLICIES,
        help="frozen: keep pretrained BatchNorm statistics (affine parameters still train); train: update them; "
        "sync: SyncBatchNorm across processes (multi-GPU).",
    )
    device: str = setting("auto", choices=DEVICES, help="Where to train (torchrun sets the GPU of each process).")
    amp: bool = setting(True, help="Mixed precision on CUDA (bfloat16 where supported, else float16).")
    workers: int = setting(4, min=0, help="Data-loading worker processes per training process.")
    seed: int = setting(0, help="Seed for initialisation, data order and augmentation.")
    max_steps: int | None = setting(None, min=1, help="Stop after this many steps (smoke runs; --resume continues).")
    time_budget_minutes: float | None = setting(
        None, min=0, flag="--time-budget", metavar="MINUTES", help="Stop after this many minutes (--resume continues)."
    )
    resume: bool = setting(False, flag="--resume", help="Continue from OUT/checkpoint.pt if it exists.")

    def __post_init__(self) -> None:
        check_settings(self)
