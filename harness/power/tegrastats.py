"""Jetson power from ``tegrastats --interval MS`` run as a subprocess.

Formats (NVIDIA L4T tegrastats appendix; public captures in jetson-stats and the Datadog
agent's Jetson check tests):

* JetPack 4 (L4T r32): ``... GPU 0/0 CPU 311/311 SOC 1087/1087 CV 0/0 VDDRQ 155/155 SYS5V 1088/1088``
  (rail ``current/average`` in mW, no unit).
* JetPack 5/6 (L4T r35/r36): a ``MM-DD-YYYY HH:MM:SS`` prefix and ``NAME 2784mW/2784mW``;
  Xavier keeps its rail names (``GPU 467mW/467mW ... SYS5V 2768mW/2768mW``), Orin uses
  ``VDD_GPU_SOC``/``VDD_CPU_CV``/``VIN_SYS_5V0``, NX/Nano modules add ``VDD_IN``.
  Unconnected channels print as ``NC 0mW/0mW`` and are dropped.

The current value (not the running average) is used: the sampler integrates it over time.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .base import Meter, MeterError, Reading, as_names, now, pick_total

_NUM = r"(\d+(?:\.\d+)?)"
# NAME cur/avg (JP4, followed by a blank so "RAM 2257/31919MB" never matches) or
# NAME curmW/avgmW (JP5+; a bare "NAME curmW" also occurs in some JetPack 6 builds).
RAIL_RE = re.compile(r"(?<![\w@\[])([A-Za-z][A-Za-z0-9_]*)\s+" + _NUM +
                     r"(?:mW(?:/" + _NUM + r"mW)?(?![\w/])|/" + _NUM + r"(?=\s|$))")
TEMP_RE = re.compile(r"(?<![\w@])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?!\w)")
# EMC_FREQ 0% | EMC_FREQ 0%@2133 | GR3D_FREQ 0%@[1377] | GR3D_FREQ 0%@[0,0]
FREQ_RE = re.compile(r"\b([A-Z][A-Z0-9]*)_FREQ\s+(\d+)%(?:@\[?(\d+)[\d,]*\]?)?")
DATE_RE = re.compile(r"^\s*\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}\s+")
# tegrastats prints -256C for a powered-off thermal zone; that is not a temperature.
_OFF_TEMP = -255.0


@dataclass
class TegraLine:
    """The parts of one tegrastats line a power measurement needs."""

    rails_mw: Dict[str, float] = field(default_factory=dict)
    avg_mw: Dict[str, float] = field(default_factory=dict)
    temps_c: Dict[str, float] = field(default_factory=dict)
    extras: Dict[str, float] = field(default_factory=dict)
    fmt: str = ""


def parse_line(line: str) -> TegraLine:
    """Parse one line of either format; rails in mW, temperatures in C, utilisation/frequency extras."""
    out = TegraLine()
    body = DATE_RE.sub("", line, count=1)
    for match in RAIL_RE.finditer(body):
        name, cur, avg_mw, avg_plain = match.groups()
        if name == "NC":  # not-connected INA3221 channel (Orin)
            continue
        out.rails_mw[name] = float(cur)
        avg = avg_mw or avg_plain
        if avg:
            out.avg_mw[name] = float(avg)
        # JetPack 4 prints bare numbers; JetPack 5 and later print mW units.
        out.fmt = "jetpack4 (mW, no unit)" if avg_plain else "jetpack5+ (NAME XmW/YmW)"
    for name, value in TEMP_RE.findall(body):
        temp = float(value)
        if temp > _OFF_TEMP:
            out.temps_c[name] = temp
    for name, util, freq in FREQ_RE.findall(body):
        key = name.lower()
        out.extras[f"{key}_util_pct"] = float(util)
        if freq:
            out.extras[f"{key}_freq_mhz"] = float(freq)
    return out


def to_reading(parsed: TegraLine, t: float, wall: float, rails: Optional[Sequence[str]] = None,
               source: str = "tegrastats") -> Reading:
    total, _ = pick_total(list(parsed.rails_mw), rails, source)
    extras = dict(parsed.extras)
    for name, temp in parsed.temps_c.items():
        extras[f"temp_{name}_c"] = temp
    return Reading(t=t, wall=wall, watts={k: v / 1000.0 for k, v in parsed.rails_mw.items()},
                   total_rail=total, extras=extras)


class TegrastatsMeter(Meter):
    """Runs tegrastats and hands out one reading per printed line (its own pace)."""

    name = "tegrastats"
    mode = "power"

    def __init__(self, path: str = "tegrastats", interval_ms: int = 100, rails=None,
                 timeout_s: Optional[float] = None) -> None:
        super().__init__()
        self.path = str(path)
        self.interval_ms = int(interval_ms)
        if self.interval_ms <= 0:
            raise ValueError("tegrastats interval_ms must be positive")
        self.rails = as_names(rails, "rails", self.name)
        self.pace_s = self.interval_ms / 1000.0
        # A line normally arrives every interval; allow slack for start-up and a loaded CPU.
        self.timeout_s = float(timeout_s) if timeout_s is not None else max(3.0, 10 * self.pace_s)
        self._proc: Optional[subprocess.Popen] = None
        self._queue: "queue.Queue" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self._noise: List[str] = []
        self._seen: Dict[str, object] = {}

    def executable(self) -> Optional[str]:
        if os.sep in self.path:
            return self.path if os.path.isfile(self.path) and os.access(self.path, os.X_OK) else None
        return shutil.which(self.path)

    def probe(self) -> Tuple[bool, str]:
        exe = self.executable()
        if exe is None:
            where = self.path if os.sep in self.path else f"'{self.path}' on PATH"
            return False, (f"no executable tegrastats ({where}): not a Jetson, or set "
                           f"power_meter = {{type = \"tegrastats\", path = \"/usr/bin/tegrastats\"}}")
        return True, f"tegrastats at {exe}"

    def start(self) -> None:
        if self._proc is not None:
            return
        exe = self.executable()
        if exe is None:
            raise MeterError(self.probe()[1])
        try:
            self._proc = subprocess.Popen([exe, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          universal_newlines=True, bufsize=1)
        except OSError as exc:
            raise MeterError(f"cannot run {exe}: {exc}") from None
        self._reader = threading.Thread(target=self._pump, name="tegrastats-reader", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        """Timestamp each line as it arrives, so queueing delay in ``read()`` does not skew time."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            for line in proc.stdout:
                t, wall = now()
                self._queue.put((t, wall, line))
        except (OSError, ValueError):
            pass
        self._queue.put(None)

    def read(self) -> Reading:
        if self._proc is None:
            self.start()
        while True:
            try:
                item = self._queue.get(timeout=self.timeout_s)
            except queue.Empty:
                raise MeterError(f"tegrastats printed no line for {self.timeout_s:.1f} s") from None
            if item is None:
                self._queue.put(None)  # keep reporting EOF to later calls
                rc = self._proc.poll() if self._proc is not None else None
                said = f": {self._noise[-1].strip()}" if self._noise else ""
                raise MeterError(f"tegrastats exited (rc={rc}){said}")
            t, wall, line = item
            parsed = parse_line(line)
            if not parsed.rails_mw:
                self._noise = (self._noise + [line])[-5:]
                continue
            reading = to_reading(parsed, t, wall, self.rails, source=f"tegrastats ({self.path})")
            if not self._seen:
                self._seen = {"rails": sorted(parsed.rails_mw), "total_rail": list(reading.total_rail),
                              "format": parsed.fmt}
            return reading

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=2.0)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None
        self._queue = queue.Queue()

    def info(self) -> Dict[str, object]:
        out = super().info()
        out.update({"path": self.executable() or self.path, "interval_ms": self.interval_ms,
                    "configured_rails": list(self.rails) if self.rails else None})
        out.update(self._seen)
        return out
