"""What a ``hema-infer review`` session is set up with: address, access token, user, target count, classes, keys.

Besides the model's classes, a technologist can put a cell into one of the lab's extra classes, cells the model
cannot name: :data:`DEFAULT_EXTRA_CLASSES`, or the lines of a file given with ``--extra-classes`` (one class per
line; blank lines and lines starting with ``#`` are skipped; a model class listed there is offered once).
Every class gets one key (:func:`class_keys`): ``1``-``9``, ``0``, then letters, leaving out the keys the page
uses for itself (:data:`RESERVED_KEYS`).
"""

from __future__ import annotations

import getpass
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_EXTRA_CLASSES",
    "DEFAULT_HOST",
    "DEFAULT_TARGET",
    "RESERVED_KEYS",
    "ReviewError",
    "ReviewSettings",
    "check_class_name",
    "class_keys",
    "default_user",
    "is_loopback",
    "read_extra_classes",
]

DEFAULT_EXTRA_CLASSES = ("blast", "reactive lymphocyte", "plasma cell", "smudge cell", "artefact", "other")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_TARGET = 100
RESERVED_KEYS = frozenset("uf")
"""``u``: undo; ``f``: the cell at full size (arrows move between cells, ``Enter`` opens full size too)."""
_KEY_POOL = "1234567890qwertyiopasdghjklzxcvbnm"
_CLASS_NAME = re.compile(r"[^\x00-\x1f\x7f/\\]{1,64}")


class ReviewError(RuntimeError):
    """The review cannot start: no usable run folder, journal, extra-class file or address (exit code 2)."""


@dataclass(frozen=True)
class ReviewSettings:
    """One review session's settings.

    Attributes:
        host: Address to listen on; anything but a loopback address needs ``token``.
        port: Port to listen on (0: a free one, printed at start).
        token: Access token every request must carry (``None``: no token, loopback only).
        user: Name recorded with every decision.
        target: Cells a slide's differential should reach (the lab's count, usually 100 or 200).
        extra_classes: The lab's classes beyond the model's, in the order offered.
    """

    host: str = DEFAULT_HOST
    port: int = 0
    token: str | None = None
    user: str = ""
    target: int = DEFAULT_TARGET
    extra_classes: tuple[str, ...] = DEFAULT_EXTRA_CLASSES

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ReviewError(
                f"--host {self.host} opens the review to the network: give an access token with --token "
                "(every request must carry it)"
            )
        if self.token is not None and not re.fullmatch(r"[A-Za-z0-9._~-]{16,256}", self.token):
            raise ReviewError("--token must be 16 to 256 letters, digits or . _ ~ - (e.g. openssl rand -hex 16)")
        if self.target < 1:
            raise ReviewError(f"--target must be at least 1 cell, not {self.target}")
        if not self.user.strip():
            raise ReviewError("--user must name the person verifying")
        for name in self.extra_classes:
            check_class_name(name)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_user() -> str:
    """The login name of the person running the review, or ``"unknown"``."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def check_class_name(name: str) -> str:
    """``name`` if it can be a class (and a folder of ``--export-labelled``); else :class:`ReviewError`."""
    if not _CLASS_NAME.fullmatch(name) or name != name.strip() or name.startswith("."):
        raise ReviewError(
            f"{name!r} cannot be a class name: 1 to 64 characters, no slash, backslash or control character, "
            "not starting with '.' or a space"
        )
    return name


def read_extra_classes(path: Path) -> tuple[str, ...]:
    """The classes listed in ``path``, one per line, in order, each once (the model's own are dropped later).

    Raises:
        ReviewError: If the file cannot be read, lists no class, or a line cannot be a class name.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ReviewError(f"cannot read --extra-classes {path}: {error}") from error
    listed = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not listed:
        raise ReviewError(f"--extra-classes {path} lists no class (one class name per line)")
    return tuple(dict.fromkeys(check_class_name(name) for name in listed))


def class_keys(classes: Sequence[str]) -> dict[str, str]:
    """The key that puts a cell into each class: ``1``-``9``, ``0``, then letters not in :data:`RESERVED_KEYS`.

    Raises:
        ReviewError: If there are more classes than keys.
    """
    pool = [key for key in _KEY_POOL if key not in RESERVED_KEYS]
    if len(classes) > len(pool):
        raise ReviewError(f"{len(classes)} classes, but the page has keys for {len(pool)}: list fewer extra classes")
    return dict(zip(classes, pool))
