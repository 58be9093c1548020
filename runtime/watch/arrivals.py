"""Notice cell images as an analyser writes them into a folder, and say when each file is complete.

The folder is polled with :func:`os.scandir` (portable, no inotify). The rules of
:func:`hema.runtime.discovery.find_cell_images` apply: files with an image suffix (any case) in the folder and
its sub-folders, hidden files and folders ignored, symlinked folders not followed. The temporary files an
analyser writes before renaming (``*.tmp``, ``*.part``) have no image suffix, so they are never read.

A file is *settled* once its size and modification time have not changed for ``settle`` seconds and it
is not empty. An empty file is settled only after ``empty_timeout`` seconds (an analyser may create a file and
fill it later); it then gets an error row like any other unreadable image.

A journaled file is watched again as soon as its size or modification time differs from the ones it was read
with: an analyser that finishes a file read too early, or overwrites one, changes both (every write sets the
modification time, in nanoseconds). The inode is not part of the signature: on network shares it is not
stable, and a file replaced by rename already shows a new modification time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hema.runtime.discovery import IMAGE_SUFFIXES

__all__ = ["Arrival", "ArrivalScanner", "Signature", "TEMPORARY_SUFFIXES", "file_signature"]

TEMPORARY_SUFFIXES = frozenset({".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".swp"})

Signature = tuple[int, int]
"""``(size, mtime_ns)`` of a file: when it stops changing, the writer has finished."""


def file_signature(path: Path) -> Signature | None:
    """The file's current signature, or ``None`` if it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class Arrival:
    """A settled image.

    Attributes:
        key: Its path relative to the watched folder, ``/``-separated (the journal key).
        path: The file.
        signature: Its signature when it settled; if it changes before the result is journaled, the file was
            rewritten and must be read again.
    """

    key: str
    path: Path
    signature: Signature


@dataclass
class _Watched:
    path: Path
    signature: Signature
    since: float


class ArrivalScanner:
    """Polls a folder for new images and reports those that have settled.

    Args:
        root: The watched folder.
        settle: Seconds a file's size and modification time must stay unchanged before it is read.
        empty_timeout: Seconds an empty file must stay empty before it is read (and becomes an error row).
        exclude: A folder inside ``root`` not to search (the output folder, when it lies inside the input).
        clock: Monotonic clock in seconds (tests may pass their own).
    """

    def __init__(
        self,
        root: Path,
        settle: float = 2.0,
        empty_timeout: float = 30.0,
        exclude: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.settle = settle
        self.empty_timeout = max(empty_timeout, settle)
        self._exclude = os.path.normcase(os.path.abspath(exclude)) if exclude is not None else None
        self._clock = clock
        self._watched: dict[str, _Watched] = {}
        self.skipped = 0

    @property
    def waiting(self) -> int:
        """Images seen but not yet settled (or settled and not yet taken)."""
        return len(self._watched)

    def poll(self, journaled: Mapping[str, Signature]) -> list[Arrival]:
        """Scan the folder once and return the settled images not journaled as they are now, sorted by key.

        Images returned are still watched until :meth:`forget` is called for them.

        Args:
            journaled: The signature each journaled key was read with; a file that still has it is done.
        """
        now = self._clock()
        present: set[str] = set()
        self.skipped = 0
        for key, path, signature in self._scan():
            if journaled.get(key) == signature:
                continue
            present.add(key)
            watched = self._watched.get(key)
            if watched is None or watched.signature != signature:
                self._watched[key] = _Watched(path, signature, now)
        for key in set(self._watched) - present:  # deleted or renamed away before it was read
            del self._watched[key]
        ready = [
            Arrival(key, watched.path, watched.signature)
            for key, watched in self._watched.items()
            if now - watched.since >= (self.settle if watched.signature[0] > 0 else self.empty_timeout)
        ]
        return sorted(ready, key=lambda arrival: arrival.key)

    def forget(self, key: str) -> None:
        """Stop watching an image: its result is journaled, or it changed after it settled (the next poll then
        sees it as new and waits for it to settle again)."""
        self._watched.pop(key, None)

    def _scan(self) -> list[tuple[str, Path, Signature]]:
        """Every image below the root: ``(key, path, signature)``; counts other files in :attr:`skipped`."""
        found: list[tuple[str, Path, Signature]] = []
        folders: list[tuple[str, str]] = [(os.fspath(self.root), "")]
        while folders:
            folder, prefix = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = list(entries)
            except OSError:  # removed while we looked, or unreadable: seen again next poll
                continue
            for entry in listed:
                if entry.name.startswith("."):
                    continue
                key = prefix + entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if self._exclude is None or os.path.normcase(os.path.abspath(entry.path)) != self._exclude:
                            folders.append((entry.path, key + "/"))
                        continue
                    if not entry.is_file():
                        continue
                    suffix = os.path.splitext(entry.name)[1].lower()
                    if suffix not in IMAGE_SUFFIXES:
                        self.skipped += suffix not in TEMPORARY_SUFFIXES
                        continue
                    stat = entry.stat()
                except OSError:  # vanished between listing and stat
                    continue
                found.append((key, Path(entry.path), (stat.st_size, stat.st_mtime_ns)))
        return found
