"""Text for the terminal: control characters that come from file names are shown escaped, never sent raw.

A file name may hold any character but ``/`` and NUL. Printed raw, ``ESC [2J`` clears the screen, ``ESC ]``
sequences set the window title (or, in some terminals, the clipboard), CR returns to the start of the line so
that the rest overwrites what was printed, BEL rings, and Unicode's direction overrides reverse what follows.
Everything ``hema-infer`` prints (errors, warnings, progress notes) goes through :func:`terminal_safe`, which shows
such characters as Python's ``repr`` does (``\\x1b``, ``\\r``, ``\\u202e``), and bytes of a file name that are not
UTF-8 as ``\\xNN``. Backslashes are left as they are, so Windows paths stay readable.
"""

from __future__ import annotations

import re

__all__ = ["terminal_safe"]

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls (ESC, CR, LF, BEL, CSI ...) and DEL
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # marks and overrides of writing direction
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff]"  # lone surrogates: undecodable bytes of a file name (surrogateescape)
)
_SURROGATE_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in _SURROGATE_ESCAPED_BYTES:
        return f"\\x{code - 0xDC00:02x}"  # the byte the file name holds
    return repr(match.group())[1:-1]


def terminal_safe(text: object, keep_newlines: bool = False) -> str:
    """``text`` with every control character escaped, safe to print to a terminal.

    Args:
        text: A message, a path or a file name (anything: it is made ``str``).
        keep_newlines: Keep ``\\n`` as line breaks (a message of several lines that hema wrote itself). A file
            name's own newlines are escaped: give names to this function on their own, without it.

    Returns:
        The text, each control character written as ``repr`` writes it (``ESC`` as ``\\x1b``).
    """
    value = str(text)
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escaped, line) for line in value.split("\n"))
    return _UNSAFE.sub(_escaped, value)
