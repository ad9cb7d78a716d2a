"""One exception type for everything the user can fix; the CLI prints it as one line (and
:func:`first_line`, the one line of another exception that such a message quotes)."""
from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or setup. The message names the file and the fix."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text (at most ``limit`` characters), else its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
