"""The harness's clock: one call timed on ``time.perf_counter`` (the power sampler's clock too).

The runner's timed loop, the backends' quick form trial, the self-check's bare loop and the
reports' interleaved medians all time with :func:`seconds`; :func:`interleaved_median_ms` is the
reports' loop. No imports from the rest of the package.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List


def seconds(fn: Callable, *args) -> float:
    """Wall-clock seconds of one call ``fn(*args)``: the clock read right before and right after it."""
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def interleaved_median_ms(calls: Dict[str, Callable[[], object]], runs: int, warmup: int = 1) -> Dict[str, float]:
    """Median wall-clock ms of each call over ``runs`` rounds (at least one), after ``warmup`` calls each.

    Each round times every call once, in turn: a drift of the machine (clock, another process,
    heat) then falls on all of them alike instead of on whichever was timed last, which matters
    when the result is their ratio.
    """
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {key: [] for key in calls}
    for _ in range(max(1, runs)):
        for key, fn in calls.items():
            times[key].append(seconds(fn) * 1e3)
    return {key: float(statistics.median(values)) for key, values in times.items()}
