"""Progress bars on stderr (tqdm), quiet when not a terminal unless asked."""
from __future__ import annotations

import os
import sys


def progress(iterable, total=None, desc="", disable=False, leave=True):
    from tqdm.auto import tqdm

    if os.environ.get("HARNESS_NO_PROGRESS"):
        disable = True
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)
