"""One ``hema-infer`` run per output folder: an exclusive lock on ``OUT/.hema.lock`` held for the whole run.

``classify`` and ``watch`` both take it before they write anything in ``OUT``, so two runs can never interleave
rows or leave one run's summary beside another's table: the second is refused at once (:class:`OutputError`,
naming the lock and the process holding it). The lock is :func:`fcntl.flock` on the file, so the operating
system releases it when the process ends, however it ends (``kill -9``, a crash in the engine): a lock file left
behind by a killed run never blocks the next one. A run that ends normally removes the file; it does so while
still holding the lock, and a run that locked a file which was removed under it lets it go and tries again, so
two runs can never each hold a lock of their own. The file holds the holder's process id, for the message.

A symbolic link, a hard link or anything but a plain file at the lock's path is refused, never written through.
On Windows, which has no ``fcntl``, no lock is taken. ``flock`` may not lock across machines on a network file
system: give each workstation its own ``--out``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_NAME", "OutputError", "lock_output"]

LOCK_NAME = ".hema.lock"

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class OutputError(RuntimeError):
    """The output folder cannot be used: another run holds it, or it cannot be created, locked or written."""


@contextmanager
def lock_output(out: Path) -> Iterator[Path]:
    """Create ``out`` if needed and hold its lock while inside the block; yield the lock file's path.

    On leaving, the lock file is removed and the lock released; a folder this call created and that is still
    empty (the run stopped before writing anything) is removed too.

    Raises:
        OutputError: If another process holds the lock (the message names the lock and the holder's pid), or
            the folder or its lock file cannot be created or is not what hema made there.
    """
    created = not os.path.lexists(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {out}: {error.strerror or error}") from error
    path = out / LOCK_NAME
    descriptor = _acquire(path, out)
    try:
        yield path
    finally:
        _release(descriptor, path)
        if created:
            try:
                out.rmdir()  # only if empty: nothing was written
            except OSError:
                pass


def _acquire(path: Path, out: Path) -> int | None:
    """Open (or create) the lock file, lock it without waiting and write this process's id; its descriptor."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        return None
    while True:
        try:
            descriptor = os.open(path, _OPEN_FLAGS, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP:
                message = f"{path} is a symbolic link: hema keeps its own lock file there; remove the link"
                raise OutputError(message) from error
            raise OutputError(f"cannot create the lock {path}: {error.strerror or error}") from error
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"cannot lock {path}: {error.strerror or error}") from error
                holder = _holder(descriptor)
                raise OutputError(
                    f"{out} is in use by another hema-infer run ({holder}), which holds its lock {path}: "
                    "wait for that run to end, or give another --out"
                ) from error
            if not _is_at(descriptor, path):  # removed by the run that held it as it ended: take the new one
                os.close(descriptor)
                continue
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
                raise OutputError(f"{path} is not hema's lock file (a link or not a plain file): remove it")
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
            return descriptor
        except BaseException:
            os.close(descriptor)
            raise


def _holder(descriptor: int) -> str:
    """``pid N`` of the process that wrote the lock file, or ``pid unknown``."""
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"


def _is_at(descriptor: int, path: Path) -> bool:
    """Whether the open file is the one now at ``path`` (not removed or replaced since it was opened)."""
    try:
        here = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    there = os.fstat(descriptor)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _release(descriptor: int | None, path: Path) -> None:
    """Remove the lock file while still holding it, then release the lock (closing the file)."""
    if descriptor is None:
        return
    try:
        if _is_at(descriptor, path):
            path.unlink(missing_ok=True)
    except OSError:
        pass  # a lock file left behind is harmless: the lock itself ends with the descriptor
    finally:
        os.close(descriptor)
