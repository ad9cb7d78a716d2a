"""harness.worker.Worker: a child serving calls, ended from another thread while a call waits."""
from __future__ import annotations

import threading
import time

from fixtures.handlers import sleep_for
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
