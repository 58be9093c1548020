"""A signal stack that OpenVINO cannot leave dangling.

OpenVINO's CPU plugin (checked on 2026.x) gives the thread that first uses it in each ``openvino.Core`` a fresh
alternate signal stack. When that plugin is released it unmaps the stack and puts back the one it replaced, but
only if its own is still the thread's current one. Two plugins released in the order they were made (A, B, then
A, B: NNCF makes and drops its own ``Core`` objects while it quantises) leave the thread with the first one's
stack, already unmapped. CPython installs every signal handler with ``SA_ONSTACK``, so the next signal that Python
handles (SIGCHLD once a subprocess or a torch ``DataLoader`` worker ends, SIGINT, SIGTERM) kills the process
with SIGSEGV, or, where that address has been mapped again meanwhile, overwrites what lives there.

:func:`signal_stack_kept` wraps work that may create and release ``Core`` objects; when it ends, the thread gets an
alternate stack owned by this module, which lives as long as the process. The runtime needs none of this: it uses
one ``Core`` for the whole process (:func:`hema.runtime.engines.openvino_engine.openvino_core`).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import sys
import threading
from collections.abc import Iterator

__all__ = ["SIGNAL_STACK_BYTES", "current_signal_stack", "pin_signal_stack", "signal_stack_kept"]

SIGNAL_STACK_BYTES = 64 * 1024  # far above MINSIGSTKSZ with AVX-512 or AMX state (about 11 KiB)
_SS_DISABLE = 2  # <signal.h>: the thread has no alternate signal stack


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_stacks: dict[int, mmap.mmap] = {}  # by thread: two threads must never share one; never unmapped


def _sigaltstack(new: _StackT | None, old: _StackT | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sigaltstack.argtypes = [ctypes.POINTER(_StackT), ctypes.POINTER(_StackT)]
    if libc.sigaltstack(new, old) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack failed")


def current_signal_stack() -> tuple[int, int] | None:
    """The calling thread's alternate signal stack as ``(address, bytes)``, or ``None`` when it has none."""
    stack = _StackT()
    _sigaltstack(None, stack)
    return None if stack.ss_flags & _SS_DISABLE or not stack.ss_sp else (stack.ss_sp, stack.ss_size)


def pin_signal_stack() -> None:
    """Give the calling thread an alternate signal stack that lives as long as the process (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_ident()
    if thread not in _stacks:
        _stacks[thread] = mmap.mmap(-1, SIGNAL_STACK_BYTES)
    memory = _stacks[thread]
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    _sigaltstack(_StackT(address, 0, SIGNAL_STACK_BYTES), None)


@contextlib.contextmanager
def signal_stack_kept() -> Iterator[None]:
    """Run the block, then pin the calling thread's alternate signal stack, whatever OpenVINO did to it."""
    try:
        yield
    finally:
        pin_signal_stack()
