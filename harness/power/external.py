"""An external meter's log (e.g. a USB power meter's CSV), merged with the run by wall-clock time.

Format: one ``timestamp,watts`` row per reading, timestamp in Unix epoch seconds on this
machine's clock (``offset_s`` corrects a logger whose clock differs); an optional header
row naming the columns (``timestamp``/``time``/``t`` and ``watts``/``w``/``power``);
blank lines and ``#`` comments are ignored. The log is read after the run, so it may be
written while the benchmark runs.
"""
from __future__ import annotations

import csv
import math
import os
from typing import Dict, List, Optional, Tuple

from ..errors import HarnessError
from ..numeric import parses_as_number
from .base import Meter, MeterError, Reading
from .sampler import PowerSummary, integrate_power, nan_summary

TIME_COLUMNS = ("timestamp", "time", "t", "epoch", "unix_time", "time_s")
WATT_COLUMNS = ("watts", "w", "power", "power_w")


def load_log(path: str) -> Tuple[List[float], List[float]]:
    """(timestamps, watts) sorted by time; a malformed row is a HarnessError naming file and line."""
    times: List[float] = []
    watts: List[float] = []
    t_col, w_col = 0, 1
    first = True
    try:
        fh = open(path, "r", newline="")
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read the external power log ({exc.strerror}); check the path") from None
    with fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if first:
                first = False
                if not parses_as_number(cells[0]):
                    t_col, w_col = _header(cells, path, lineno)
                    continue
            if len(cells) <= max(t_col, w_col):
                raise HarnessError(f"{path}:{lineno}: expected 'timestamp,watts', got {','.join(cells)!r}; "
                                   f"fix or delete the line")
            try:
                t, w = float(cells[t_col]), float(cells[w_col])
            except ValueError:
                raise HarnessError(f"{path}:{lineno}: expected numbers 'timestamp,watts', got "
                                   f"{','.join(cells)!r}; fix or delete the line") from None
            if not (math.isfinite(t) and math.isfinite(w)):
                raise HarnessError(f"{path}:{lineno}: non-finite value in {','.join(cells)!r}; fix or delete the line")
            times.append(t)
            watts.append(w)
    if times and sorted(times)[len(times) // 2] > 1e11:
        raise HarnessError(f"{path}: timestamps look like milliseconds; the log must use Unix epoch seconds")
    order = sorted(range(len(times)), key=times.__getitem__)
    return [times[i] for i in order], [watts[i] for i in order]


def _header(cells: List[str], path: str, lineno: int) -> Tuple[int, int]:
    lower = [c.lower() for c in cells]
    t_col = next((i for i, c in enumerate(lower) if c in TIME_COLUMNS), None)
    w_col = next((i for i, c in enumerate(lower) if c in WATT_COLUMNS), None)
    if t_col is None or w_col is None:
        raise HarnessError(f"{path}:{lineno}: header {','.join(cells)!r} must name a timestamp column "
                           f"({'/'.join(TIME_COLUMNS)}) and a watts column ({'/'.join(WATT_COLUMNS)}); fix the header")
    return t_col, w_col


class ExternalLogMeter(Meter):
    name = "external"
    mode = "log"

    def __init__(self, path: str, offset_s: float = 0.0) -> None:
        super().__init__()
        if not path:
            raise HarnessError("power meter 'external' needs the log's path: power_meter = \"external:/path/log.csv\"")
        self.path = os.path.expanduser(str(path))
        self.offset_s = float(offset_s)
        self._rows: Optional[int] = None

    def probe(self) -> Tuple[bool, str]:
        if os.path.isfile(self.path):
            return True, f"external log {self.path} (read after the run)"
        folder = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(folder):
            return True, f"external log {self.path} (not written yet; read after the run)"
        return False, f"no folder {folder} for the external power log {self.path}; fix the path in the device profile"

    def read(self) -> Reading:
        raise MeterError("an external log has no live reading; its rows are merged after the run")

    def summarize(self, wall0: float, wall1: float) -> PowerSummary:
        """Power over the wall-clock window [wall0, wall1] from the log rows (edges interpolated)."""
        if not os.path.isfile(self.path):
            return nan_summary(f"no external power log {self.path} (was the meter logging?)", self.name, wall1 - wall0)
        times, watts = load_log(self.path)
        self._rows = len(times)
        times = [t + self.offset_s for t in times]
        if not times:
            return nan_summary(f"external power log {self.path} has no rows", self.name, wall1 - wall0)
        interval = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
        energy, mean, used, why = integrate_power(times, watts, wall0, wall1, interval)
        if why:
            why = f"{why} (log {self.path} covers {times[0]:.3f}..{times[-1]:.3f}, window {wall0:.3f}..{wall1:.3f})"
        return PowerSummary(mean_w=mean, energy_j=energy, duration_s=wall1 - wall0, samples=used,
                            rails_mean_w={"external": mean}, meter=self.name, reason=why)

    def info(self) -> Dict[str, object]:
        out = super().info()
        out.update({"path": self.path, "offset_s": self.offset_s, "rows": self._rows,
                    "clock": "wall-clock epoch seconds"})
        return out
