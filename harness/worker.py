"""Isolation: model code runs in a child process, so a model that raises, segfaults, hangs or
exhausts memory becomes one failure reason and the sweep goes on.

:func:`run_once` runs one call in a fresh spawned child (a bench measurement: no inherited threads
or CUDA state). :class:`Worker` keeps one spawned child serving calls one after another (the
quality stage: the imports and the LR images are made once, not per model); after a fault it is
restarted for the next call. A call's timeout counts from its start or from the child's last sign
of progress (``tick``), so a large set is not mistaken for a hang while a stuck model is.
Children die with the parent (:mod:`harness.children`).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from typing import Any, Callable, Optional, Tuple

from .errors import HarnessError

Outcome = Tuple[str, Any]  # ("ok", payload) or ("error", reason)


def describe_exception(exc: BaseException) -> str:
    """One line for an unexpected exception in model code: type, first line, and where."""
    if isinstance(exc, HarnessError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError)"
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    first = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {first}{where}"


def oom_kills() -> Optional[int]:
    """The kernel's count of processes its out-of-memory killer ended since boot (``oom_kill`` in
    /proc/vmstat, Linux 4.13 and later: a cgroup's memory limit counts too), else None."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def exit_reason(exitcode: Optional[int], oom_before: Optional[int] = None) -> str:
    """Why a child ended without an answer, from its exit code. For a SIGKILL, ``oom_before`` (the
    :func:`oom_kills` count when the child's task began) tells the kernel's out-of-memory killer from
    a kill by anything else (a user, a batch scheduler): the count went up in between or it did not.
    (The count is the machine's: another process's OOM kill in between also reads as one.)"""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = ""
        if name == "SIGKILL":
            now = oom_kills()
            if oom_before is None or now is None:
                why = " - killed: out of memory, or by another process"
            elif now > oom_before:
                why = " - killed by the kernel's out-of-memory killer (out of memory)"
            else:
                why = " - killed by another process (not the kernel's out-of-memory killer)"
        return f"crashed ({name}){why}"
    return f"child process exited with status {exitcode} without a result"


def timeout_reason(timeout_s: float, what: str, option: str = "--timeout") -> str:
    return f"timed out after {timeout_s:.0f} s {what} (hung?); raise {option} if the model is just slow"


def _wait(conn, proc, timeout_s: float) -> Tuple[Optional[Any], bool]:
    """(message, timed_out): the child's next answer, skipping ``("tick", ...)`` messages, each of
    which restarts the clock."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if conn.poll(0.2):
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return None, False
            if isinstance(message, tuple) and message and message[0] == "tick":
                deadline = time.monotonic() + timeout_s
                continue
            return message, False
        if not proc.is_alive():
            if conn.poll(0.1):
                try:
                    return conn.recv(), False
                except (EOFError, OSError):
                    return None, False
            return None, False
    return None, True


def _kill(proc) -> None:
    if proc.is_alive():
        proc.kill()
    proc.join(5)


def run_once(target: Callable, args: tuple, timeout_s: float, what: str, option: str = "--timeout") -> Outcome:
    """Run ``target(conn, *args)`` in a spawned child that sends one ``(status, payload)``: that
    answer, or ``("error", reason)`` for a timeout, crash or silent exit."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(child,) + tuple(args), daemon=True)
    oom_before = oom_kills()
    proc.start()
    child.close()
    try:
        message, timed_out = _wait(parent, proc, timeout_s)
    except BaseException:  # Ctrl-C (or any error) in the parent: the child goes with it, silently
        _kill(proc)
        raise
    if timed_out:
        _kill(proc)
        return "error", timeout_reason(timeout_s, what, option)
    if message is None:
        proc.join(10)  # a crashing child may still be exiting
        if proc.is_alive():
            _kill(proc)
        return "error", exit_reason(proc.exitcode, oom_before)
    proc.join(10)
    if proc.is_alive():
        _kill(proc)
    return message


def _serve(conn, handler: Callable) -> None:
    """The worker child: answer each task with ``handler(task, state, tick)`` until told to stop."""
    from .children import become_child

    become_child()
    state: dict = {}

    def tick(*info) -> None:
        conn.send(("tick",) + info)

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        try:
            answer: Outcome = ("ok", handler(task, state, tick))
        except BaseException as exc:  # noqa: BLE001 - every failure of model code becomes a reason
            answer = ("error", describe_exception(exc))
        try:
            conn.send(answer)
        except Exception as exc:  # noqa: BLE001 - e.g. an answer that cannot be pickled
            conn.send(("error", f"the answer could not be sent back: {describe_exception(exc)}"))


DISCARDED = "ended by the parent while running (interrupted)"


class Worker:
    """One spawned child serving ``handler(task, state, tick)`` calls one at a time (``handler``
    must be a module-level function; ``state`` is a dict the child keeps between calls). A call
    that raises, crashes, or shows no progress for ``timeout_s`` is an ``("error", reason)``; the
    child is then replaced at the next call. Use as a context manager, or call :meth:`close`.

    :meth:`discard` may come from another thread while a call waits (the parent's main thread,
    interrupted by Ctrl-C or SIGTERM, ends the busy children of its worker threads): it is
    idempotent, and the call then ends at once with the reason :data:`DISCARDED`."""

    def __init__(self, handler: Callable, what: str = "running", option: str = "--timeout"):
        self.handler = handler
        self.what = what
        self.option = option
        self.proc = None
        self.conn = None
        self.restarts = 0
        self.calls = 0  # calls served by the current child
        self._lock = threading.Lock()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        conn, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_serve, args=(child, self.handler), daemon=True)
        proc.start()
        child.close()
        with self._lock:
            self.proc, self.conn = proc, conn
        self.calls = 0

    def _take(self):
        """(proc, conn), leaving none behind: whoever takes them ends them (once)."""
        with self._lock:
            proc, conn = self.proc, self.conn
            self.proc = self.conn = None
        return proc, conn

    def discard(self) -> None:
        """End the child at once (a busy call in another thread then ends as a crash)."""
        proc, conn = self._take()
        if proc is not None:
            _kill(proc)
            conn.close()
            self.restarts += 1

    def call(self, task: Any, timeout_s: float) -> Outcome:
        if self.proc is None or not self.proc.is_alive():
            self.discard()
            self._start()
        proc, conn = self.proc, self.conn
        self.calls += 1
        oom_before = oom_kills()
        try:
            conn.send(task)
            message, timed_out = _wait(conn, proc, timeout_s)
        except (OSError, EOFError):  # a broken pipe, or a child discarded from another thread
            message, timed_out = None, False
        except BaseException:  # Ctrl-C: the child (busy with a model) goes with the parent, at once
            self.discard()
            raise
        if timed_out:
            self.discard()
            return "error", timeout_reason(timeout_s, self.what, self.option)
        if message is None:
            if self.proc is not proc:  # discarded from another thread while this call waited
                return "error", DISCARDED
            proc.join(10)
            reason = exit_reason(proc.exitcode, oom_before)
            self.discard()
            return "error", reason
        return message

    def close(self) -> None:
        proc, conn = self._take()
        if proc is None:
            return
        try:
            conn.send(None)
            proc.join(5)
        except (OSError, ValueError):
            pass
        _kill(proc)
        conn.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
