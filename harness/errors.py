"""One exception type for everything the user can fix; the CLI prints it as one line."""
from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input or setup. The message names the file and the fix."""
