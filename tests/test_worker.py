"""harness.worker.Worker: a child serving calls, ended from another thread while a call waits."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from fixtures.handlers import kill_self, sleep_for
from harness.worker import DISCARDED, Worker


def test_a_worker_discarded_from_another_thread_ends_its_waiting_call_at_once():
    """The interrupted quality stage: its main thread ends the workers whose calls other threads wait on.
    The waiting call ends at once with that reason (not a timeout 60 s on, not an exception), a second
    discard is a no-op, and the next call gets a new child."""
    w = Worker(sleep_for)
    try:
        assert w.call(0, 60) == ("ok", 0)
        first = w.proc.pid
        timer = threading.Timer(1.0, w.discard)
        timer.start()
        t0 = time.monotonic()
        status, reason = w.call(30, 60)
        assert (status, reason) == ("error", DISCARDED)
        assert time.monotonic() - t0 < 20
        timer.join()
        w.discard()  # nothing left to end
        assert w.proc is None and w.restarts == 1
        assert w.call(0, 60) == ("ok", 0) and w.proc.pid != first
    finally:
        w.close()
    assert w.proc is None and w.conn is None


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's OOM-kill count is read from /proc/vmstat")
def test_a_sigkilled_child_is_told_apart_from_the_out_of_memory_killer(monkeypatch):
    """A child killed by SIGKILL: the reason says the out-of-memory killer ended it only when the kernel's
    OOM-kill count rose during the call (here it does not; then a count made to rise), and says it does
    not know where the count cannot be read. Every case is one failure, and the next call gets a new child."""
    import harness.worker as worker

    assert worker.oom_kills() is not None  # Linux 4.13+ counts them in /proc/vmstat
    w = Worker(kill_self)
    try:
        status, reason = w.call(0, 60)
        assert status == "error" and reason == (
            "crashed (SIGKILL) - killed by another process (not the kernel's out-of-memory killer)")
        counts = iter([7, 8])  # at the call's start, at the child's death
        monkeypatch.setattr(worker, "oom_kills", lambda: next(counts))
        assert w.call(0, 60) == ("error", "crashed (SIGKILL) - killed by the kernel's out-of-memory killer (out of memory)")
        monkeypatch.setattr(worker, "oom_kills", lambda: None)
        assert w.call(0, 60) == ("error", "crashed (SIGKILL) - killed: out of memory, or by another process")
        assert w.restarts == 3
    finally:
        w.close()
