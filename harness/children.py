"""Child processes that never outlive the run that started them.

A measuring (or training) child is tied to its parent twice over: on Linux the kernel sends it
SIGKILL when the parent dies (``PR_SET_PDEATHSIG``, even when the parent was SIGKILLed), and
everywhere a watchdog thread exits it once its parent process is gone (the child is re-parented).
A child also ignores SIGINT: Ctrl-C reaches the whole process group, and the parent, which owns
the sweep, prints one line and ends its children itself.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

_WATCHED_PARENT = None
PR_SET_PDEATHSIG = 1


def _pdeathsig() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent exits (False elsewhere)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Exit this process when ``parent`` is gone, even if it was killed by SIGKILL (kernel signal on
    Linux, and a watchdog thread that polls the parent pid everywhere); idempotent."""
    global _WATCHED_PARENT
    if _WATCHED_PARENT == parent:
        return
    _WATCHED_PARENT = parent
    _pdeathsig()
    if os.getppid() != parent:  # the parent died before the kernel was asked
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def become_child() -> None:
    """What a measuring child does first: die with its parent and leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(os.getppid())
