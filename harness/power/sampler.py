"""Background power sampling and the exact-window summary the runner reports.

The runner starts a ``PowerSampler`` before warm-up, marks the timed loop with
``window_start()``/``window_end()`` (or ``with sampler.window():``), then ``stop()`` and
``summary()``. The summary covers exactly the window: power samples are integrated by
trapezoids with linear interpolation at the window edges, energy counters are
interpolated at the edges and differenced. Without a sample on each side of an edge the
figures are NaN with the reason: nothing is extrapolated.
"""
from __future__ import annotations

import bisect
import contextlib
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import HarnessError
from .base import NAN, Meter, MeterError, Reading


@dataclass
class PowerSummary:
    """Power over one timed window; ``reason`` is empty when the figures are measured."""

    mean_w: float
    energy_j: float
    duration_s: float
    samples: int
    rails_mean_w: Dict[str, float] = field(default_factory=dict)
    meter: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return math.isfinite(self.mean_w) and math.isfinite(self.energy_j)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def nan_summary(reason: str, meter: str = "", duration_s: float = NAN, samples: int = 0) -> PowerSummary:
    return PowerSummary(NAN, NAN, duration_s, samples, {}, meter, reason)


# --- window arithmetic (pure functions, unit-tested on their own) ------------------------------

def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _bracket(ts: Sequence[float], t0: float, t1: float, interval_s: Optional[float]) -> Tuple[int, int, str]:
    """Indices of the last sample at/before t0 and the first at/after t1, or a reason why there are none."""
    i0 = bisect.bisect_right(ts, t0) - 1
    i1 = bisect.bisect_left(ts, t1)
    if i0 >= 0 and i1 < len(ts):
        return i0, i1, ""
    dur = t1 - t0
    problems = []
    if i0 < 0:
        problems.append("no sample before its start" + (f" (first {_ms(ts[0] - t0)} after it)" if ts else ""))
    if i1 >= len(ts):
        problems.append("no sample after its end" + (f" (last {_ms(t1 - ts[-1])} before it)" if ts else ""))
    if not ts:
        problems = ["no samples at all"]
    head = f"window {_ms(dur)}"
    if interval_s and dur < interval_s:
        head += f" shorter than the sensor's {_ms(interval_s)} interval"
    return -1, -1, f"{head} and no bracketing samples: {'; '.join(problems)}; nothing extrapolated"


def _interp(ts: Sequence[float], vs: Sequence[float], i: int, t: float) -> float:
    """Value at t between samples i and i+1 (t is inside [ts[i], ts[i+1]])."""
    if ts[i] == t or i + 1 >= len(ts):
        return vs[i]
    t_a, t_b = ts[i], ts[i + 1]
    if t_b == t_a:
        return vs[i + 1]
    return vs[i] + (vs[i + 1] - vs[i]) * (t - t_a) / (t_b - t_a)


def integrate_power(ts: Sequence[float], ps: Sequence[float], t0: float, t1: float,
                    interval_s: Optional[float] = None) -> Tuple[float, float, int, str]:
    """Energy (J) and mean power (W) of P(t) over [t0, t1]: trapezoids, edges linearly interpolated.

    Returns (energy_j, mean_w, samples_used, reason); samples must be sorted by time.
    """
    if not t1 > t0:
        return NAN, NAN, 0, f"empty window ({_ms(t1 - t0)})"
    i0, i1, why = _bracket(ts, t0, t1, interval_s)
    if why:
        return NAN, NAN, 0, why
    pts_t = [t0]
    pts_p = [_interp(ts, ps, i0, t0)]
    for k in range(i0 + 1, i1):
        if t0 < ts[k] < t1:
            pts_t.append(ts[k])
            pts_p.append(ps[k])
    pts_t.append(t1)
    pts_p.append(_interp(ts, ps, i1 - 1, t1) if i1 > 0 else ps[i1])
    energy = 0.0
    for k in range(1, len(pts_t)):
        energy += 0.5 * (pts_p[k] + pts_p[k - 1]) * (pts_t[k] - pts_t[k - 1])
    return energy, energy / (t1 - t0), i1 - i0 + 1, ""


def integrate_energy(ts: Sequence[float], es: Sequence[float], t0: float, t1: float,
                     interval_s: Optional[float] = None) -> Tuple[float, float, int, str]:
    """Energy (J) and mean power (W) from a cumulative counter: E(t1) - E(t0), edges interpolated."""
    if not t1 > t0:
        return NAN, NAN, 0, f"empty window ({_ms(t1 - t0)})"
    i0, i1, why = _bracket(ts, t0, t1, interval_s)
    if why:
        return NAN, NAN, 0, why
    for k in range(i0, i1):
        if es[k + 1] < es[k]:
            return NAN, NAN, 0, "energy counter went backwards inside the window (reset, or a wrap of unknown range)"
    if es[i1] == es[i0]:  # a counter that updates less often than the window is long reads 0 J: not a measurement
        return NAN, NAN, 0, (f"the energy counter did not change in the window ({_ms(t1 - t0)} between readings "
                             f"{_ms(ts[i1] - ts[i0])} apart): it updates less often; time for longer")
    e0 = _interp(ts, es, i0, t0)
    e1 = _interp(ts, es, i1 - 1, t1) if i1 > 0 else es[i1]
    energy = e1 - e0
    return energy, energy / (t1 - t0), i1 - i0 + 1, ""


def summarize_readings(readings: Sequence[Reading], t0: float, t1: float, mode: str, meter: str = "",
                       interval_s: Optional[float] = None) -> PowerSummary:
    """Summary of readings (sorted by ``t``) over [t0, t1] on the perf_counter clock."""
    counter = mode == "energy"
    integrate = integrate_energy if counter else integrate_power

    def series(get) -> Tuple[List[float], List[float]]:
        ts, vs = [], []
        for r in readings:
            v = get(r)
            if v is not None and math.isfinite(v):
                ts.append(r.t)
                vs.append(v)
        return ts, vs

    ts, vs = series(lambda r: r.total_energy_j() if counter else r.total_w())
    energy, mean, used, why = integrate(ts, vs, t0, t1, interval_s)
    skipped = len(readings) - len(ts)
    if why and skipped and not ts:
        why = f"{why} ({skipped} reading(s) lacked the total rail(s))"
    rails: Dict[str, float] = {}
    names: List[str] = []
    for r in readings:
        for n in (r.energy_j if counter else r.watts):
            if n not in names:
                names.append(n)
    for n in names:
        rts, rvs = series(lambda r, n=n: (r.energy_j if counter else r.watts).get(n))
        _, rail_mean, _, rail_why = integrate(rts, rvs, t0, t1, interval_s)
        rails[n] = rail_mean if not rail_why else NAN
    return PowerSummary(mean_w=mean, energy_j=energy, duration_s=t1 - t0, samples=used, rails_mean_w=rails,
                        meter=meter, reason=why)


# --- the sampler --------------------------------------------------------------------------------

@dataclass
class Window:
    t0: float
    wall0: float
    t1: float = NAN
    wall1: float = NAN


class PowerSampler:
    """Reads ``meter`` on a daemon thread every ``interval_s`` (or at the meter's own pace).

    Usage::

        with PowerSampler(meter) as sampler:      # starts sampling (before warm-up)
            warm_up()
            with sampler.window():                # exactly around the timed loop
                timed_loop()
        summary = sampler.summary()
    """

    def __init__(self, meter: Meter, interval_s: float = 0.05, end_wait_s: Optional[float] = None) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self.meter = meter
        self.interval_s = float(interval_s)
        # After the window ends, wait this long for the sample that brackets its end.
        pace = meter.pace_s or self.interval_s
        self.end_wait_s = float(end_wait_s) if end_wait_s is not None else max(1.0, 5 * pace)
        self.readings: List[Reading] = []
        self.errors: List[str] = []
        self.windows: List[Window] = []
        self.reason = ""          # why nothing is measured (probe failed, meter could not start)
        self.probe_note = ""
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self._stopped = False

    # lifecycle

    def start(self) -> "PowerSampler":
        """Probe, read once synchronously (so the window start is bracketed), then sample in the background."""
        if self._started:
            return self
        self._started = True
        if self.meter.mode in ("none", "log"):
            ok, why = self.meter.probe()
            self.probe_note = why
            if not ok:
                self.reason = why
            return self
        ok, why = self.meter.probe()
        self.probe_note = why
        if not ok:
            self.reason = why
            return self
        try:
            self.meter.start()
            first = self.meter.read()
        except HarnessError:
            self.meter.close()
            raise
        except (MeterError, OSError) as exc:
            self.reason = f"{self.meter.name}: {exc}"
            self.meter.close()
            return self
        self.readings.append(first)
        self._thread = threading.Thread(target=self._run, name=f"power-{self.meter.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        paced = self.meter.pace_s is not None
        next_t = time.perf_counter()
        while not self._stop.is_set():
            if not paced:
                next_t += self.interval_s
                delay = next_t - time.perf_counter()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                else:
                    next_t = time.perf_counter()  # fell behind: skip ticks rather than burst
            try:
                reading = self.meter.read()
            except Exception as exc:  # a failed read must never kill the benchmark
                if self._stop.is_set():
                    break
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if paced:  # a paced meter (subprocess) that fails has died
                    break
                continue
            with self._cond:
                self.readings.append(reading)
                self._cond.notify_all()

    def stop(self) -> None:
        """Wait for a sample past the last window's end, then stop the thread and release the meter."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            end = self.windows[-1].t1 if self.windows and math.isfinite(self.windows[-1].t1) else None
            if end is not None:
                deadline = time.perf_counter() + self.end_wait_s
                with self._cond:
                    while (not self.readings or self.readings[-1].t < end) and self._thread.is_alive():
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            break
                        self._cond.wait(min(left, 0.05))
            self._stop.set()
            self.meter.close()  # unblocks a paced read (tegrastats) waiting on its subprocess
            self._thread.join(timeout=max(2.0, self.end_wait_s))
            self._thread = None
        else:
            self.meter.close()

    def __enter__(self) -> "PowerSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # the timed window

    @property
    def min_window_s(self) -> float:
        """The shortest timed window this sampler measures: ten readings, and the meter's own minimum."""
        return max(float(self.meter.min_window_s or 0.0), 10.0 * (self.meter.pace_s or self.interval_s))

    def window_start(self) -> None:
        t, wall = time.perf_counter(), time.time()
        self.windows.append(Window(t0=t, wall0=wall))

    def window_end(self) -> None:
        t, wall = time.perf_counter(), time.time()
        if not self.windows or math.isfinite(self.windows[-1].t1):
            raise RuntimeError("window_end() without window_start()")
        self.windows[-1].t1, self.windows[-1].wall1 = t, wall

    @contextlib.contextmanager
    def window(self) -> Iterator["PowerSampler"]:
        self.window_start()
        try:
            yield self
        finally:
            self.window_end()

    # results

    def summary(self, index: int = -1) -> PowerSummary:
        """Summary of one window (the last by default); stops the sampler first if still running."""
        if not self.windows or not math.isfinite(self.windows[index].t1):
            raise RuntimeError("summary() needs a finished window: call window_start()/window_end() around the loop")
        if not self._stopped:
            self.stop()
        w = self.windows[index]
        name = self.meter.name
        if self.meter.mode == "log" and not self.reason:
            return self.meter.summarize(w.wall0, w.wall1)  # type: ignore[attr-defined]
        if self.reason:
            return nan_summary(self.reason, name, w.t1 - w.t0)
        readings = sorted(self.readings, key=lambda r: r.t)
        out = summarize_readings(readings, w.t0, w.t1, self.meter.mode, name,
                                 interval_s=self.meter.pace_s or self.interval_s)
        if out.reason and self.errors:
            out.reason += f"; read errors: {self.errors[-1]}"
        return out

    def info(self) -> Dict[str, object]:
        """Meter description plus how sampling went, for the results store."""
        out = dict(self.meter.info())
        out.update({"interval_s": self.meter.pace_s or self.interval_s, "readings": len(self.readings),
                    "read_errors": len(self.errors), "probe": self.probe_note})
        if self.errors:
            out["last_error"] = self.errors[-1]
        if self.reason:
            out["reason"] = self.reason
        return out
