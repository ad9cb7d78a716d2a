"""Progress bars on stderr (tqdm), quiet when not a terminal unless asked.

tqdm's default lock holds a multiprocessing RLock, a named semaphore: a measuring child killed
on a timeout (or with its parent) leaves it behind, and Python's resource tracker warns about it
when the run ends. A bar here never spans processes, so a thread lock serves.
"""
from __future__ import annotations

import os
import sys
import threading

_LOCKED = set()


def progress(iterable, total=None, desc="", disable=False, leave=True):
    from tqdm.auto import tqdm

    if tqdm not in _LOCKED:
        tqdm.set_lock(threading.RLock())
        _LOCKED.add(tqdm)
    if os.environ.get("HARNESS_NO_PROGRESS"):
        disable = True
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)
