"""The meter interface every power source implements, and small sysfs helpers.

A meter never invents a number: when it cannot read, ``probe()`` says why and the
sampler reports NaN with that reason instead of a guess.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import HarnessError

NAN = float("nan")

# Jetson modules that have a rail for the whole module input name it one of these;
# without one (AGX Xavier, AGX Orin) the rails are disjoint and their sum is the total.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")


class MeterError(RuntimeError):
    """A read failed at run time (sensor vanished, subprocess died): recorded as the reason, not raised."""


@dataclass
class Reading:
    """One reading: instantaneous rail power (W) and/or cumulative energy counters (J).

    ``t`` is ``time.perf_counter()`` (the runner's clock for the timed loop); ``wall`` is
    ``time.time()`` so readings can be matched with logs written by other programs.
    """

    t: float
    watts: Dict[str, float] = field(default_factory=dict)
    energy_j: Dict[str, float] = field(default_factory=dict)
    total_rail: Tuple[str, ...] = ()
    wall: float = NAN
    extras: Dict[str, float] = field(default_factory=dict)

    def total_w(self) -> float:
        return sum_rails(self.watts, self.total_rail)

    def total_energy_j(self) -> float:
        return sum_rails(self.energy_j, self.total_rail)


def sum_rails(values: Dict[str, float], names: Sequence[str]) -> float:
    """Sum of the named rails, NaN if any is missing: a partial total would under-report power."""
    if not names:
        return NAN
    total = 0.0
    for name in names:
        value = values.get(name)
        if value is None or not math.isfinite(value):
            return NAN
        total += value
    return total


def now() -> Tuple[float, float]:
    """(perf_counter, wall-clock) taken together, for timestamps that must match both clocks."""
    return time.perf_counter(), time.time()


class Meter:
    """Base class. ``mode`` tells the sampler how to integrate the readings.

    * ``"power"``: ``read()`` gives rail power in W; the window is integrated by trapezoids.
    * ``"energy"``: ``read()`` gives cumulative counters in J (wrap already undone by the meter).
    * ``"log"``: no live reading; ``summarize(wall0, wall1)`` reads a log after the run.
    * ``"none"``: nothing to measure; the summary is NaN with ``reason``.

    ``pace_s`` is set by meters that produce readings at their own pace (``read()`` blocks
    until the next one, e.g. tegrastats); the sampler then reads back-to-back.

    ``min_window_s`` is the shortest window the meter measures well (several updates of its counter
    or average); the sampler's :attr:`~harness.power.sampler.PowerSampler.min_window_s` also asks
    for ten of its readings, and the runner's timed loop lasts at least that long.
    """

    name = "meter"
    mode = "power"
    pace_s: Optional[float] = None
    min_window_s: float = 0.0

    def __init__(self) -> None:
        # Extra facts for the results store (e.g. which meters ``auto`` tried and why they failed).
        self.notes: Dict[str, object] = {}

    def probe(self) -> Tuple[bool, str]:
        raise NotImplementedError

    def read(self) -> Reading:
        raise NotImplementedError

    def info(self) -> Dict[str, object]:
        out: Dict[str, object] = {"meter": self.name, "mode": self.mode}
        out.update(self.notes)
        return out

    def start(self) -> None:
        """Acquire what reads need (a subprocess, a library handle); plain sysfs meters need nothing."""

    def close(self) -> None:
        """Release what ``start`` acquired; safe to call twice."""

    def __enter__(self) -> "Meter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} mode={self.mode}>"


def pick_total(available: Sequence[str], configured: Optional[Sequence[str]],
               source: str) -> Tuple[Tuple[str, ...], str]:
    """Which rails make up total power, and a note saying why.

    A configured list wins (and must exist: a typo would silently give NaN for a whole
    run, so it is a user error). Otherwise a module input rail (VDD_IN, POM_5V_IN) is the
    total; without one (AGX Xavier: GPU, CPU, SOC, CV, VDDRQ, SYS5V) the rails are summed.
    """
    if configured:
        wanted = tuple(configured)
        missing = [r for r in wanted if r not in available]
        if missing:
            raise HarnessError(f"{source}: rail(s) {', '.join(missing)} not found (rails here: "
                               f"{', '.join(available) or 'none'}); fix 'rails' in the device profile's power_meter")
        return wanted, "configured rails"
    for rail in INPUT_RAILS:
        if rail in available:
            return (rail,), f"{rail} (module input power)"
    return tuple(available), "sum of all rails (no VDD_IN rail on this module)"


def as_names(value: object, option: str, meter: str) -> Optional[Tuple[str, ...]]:
    """A profile's ``rails = "VDD_IN"`` or ``rails = ["A", "B"]`` as a tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise HarnessError(f"power meter '{meter}': '{option}' must be a name or a list of names, got {value!r}; "
                       f"fix the device profile")


def read_text(path) -> str:
    with open(path, "r") as fh:
        return fh.read().strip()


def read_number(path) -> float:
    """First token of a sysfs file as a number (some files append units, e.g. ``32760 ma``)."""
    text = read_text(path)
    token = text.split()[0] if text else ""
    try:
        return float(int(token))
    except ValueError:
        try:
            return float(token)
        except ValueError:
            raise MeterError(f"{path}: expected a number, got {text!r}") from None


def unreadable_reason(path, exc: BaseException) -> str:
    """One line naming the file and what to do about it."""
    if isinstance(exc, PermissionError):
        return (f"{path} is not readable by this user: run as root or "
                f"'sudo chmod a+r {path}' (resets at reboot)")
    if isinstance(exc, FileNotFoundError):
        return f"no {path}"
    return f"cannot read {path}: {exc}"


def try_read_all(paths: Iterable) -> Tuple[bool, str]:
    """Probe helper: read each file once so permission problems show before the run, not during it."""
    for path in paths:
        try:
            read_number(path)
        except (OSError, MeterError) as exc:
            return False, unreadable_reason(path, exc) if isinstance(exc, OSError) else str(exc)
    return True, ""


def unique_name(name: str, taken: List[str], suffix: str) -> str:
    """Two sensors with the same label (two INA219s, NC channels) must not overwrite each other."""
    if name not in taken:
        return name
    candidate = f"{name}@{suffix}"
    n = 2
    while candidate in taken:
        candidate = f"{name}@{suffix}#{n}"
        n += 1
    return candidate
