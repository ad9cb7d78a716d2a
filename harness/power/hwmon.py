"""Generic Linux hwmon power sensors: ``/sys/class/hwmon/hwmon*/power*_input`` (uW) and ``energy*_input`` (uJ).

This covers e.g. an INA219/INA226 on a Raspberry Pi (``name`` = ina219, driver ina2xx) or any
board whose power monitor has a hwmon driver. Power channels are preferred when both kinds
exist, since energy channels of CPU drivers (amd_energy: per core *and* per socket) overlap.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import HarnessError
from .base import (
    Meter,
    MeterError,
    Reading,
    as_names,
    now,
    read_number,
    read_text,
    try_read_all,
    unique_name,
    unreadable_reason,
)


@dataclass
class Sensor:
    key: str      # "<hwmon name>/<label or powerN>"
    path: str
    kind: str     # "power" (uW) or "energy" (uJ)
    hwmon: str    # hwmonN folder
    chip: str     # contents of the name file


def discover(root: str = "/sys", chips: Optional[Sequence[str]] = None) -> List[Sensor]:
    """Every power and energy input under ``root/class/hwmon``, optionally only from the named chips."""
    found: List[Sensor] = []
    taken: List[str] = []
    for hwdir in sorted(glob.glob(os.path.join(root, "class", "hwmon", "hwmon*")), key=_num):
        try:
            chip = read_text(os.path.join(hwdir, "name"))
        except OSError:
            chip = os.path.basename(hwdir)
        if chips and chip not in chips:
            continue
        for kind, unit_files in (("power", ("input", "average")), ("energy", ("input",))):
            seen_idx = set()
            for suffix in unit_files:
                for path in sorted(glob.glob(os.path.join(hwdir, f"{kind}*_{suffix}")), key=_num):
                    match = re.match(rf"{kind}(\d+)_{suffix}$", os.path.basename(path))
                    if not match or match.group(1) in seen_idx:
                        continue  # power1_average only when there is no power1_input
                    idx = match.group(1)
                    seen_idx.add(idx)
                    label_path = os.path.join(hwdir, f"{kind}{idx}_label")
                    label = f"{kind}{idx}"
                    if os.path.exists(label_path):
                        try:
                            label = read_text(label_path) or label
                        except OSError:
                            pass
                    key = unique_name(f"{chip}/{label}", taken, os.path.basename(hwdir))
                    taken.append(key)
                    found.append(Sensor(key=key, path=path, kind=kind, hwmon=os.path.basename(hwdir), chip=chip))
    return found


def _num(path: str) -> Tuple[int, str]:
    digits = re.findall(r"\d+", os.path.basename(path))
    return (int(digits[0]) if digits else -1, path)


class HwmonMeter(Meter):
    name = "hwmon"

    def __init__(self, root: str = "/sys", sensors=None, rails=None, prefer: Optional[str] = None) -> None:
        super().__init__()
        self.root = str(root)
        self.chips = as_names(sensors, "sensors", self.name)
        self.rails = as_names(rails, "rails", self.name)
        if prefer not in (None, "power", "energy"):
            raise HarnessError(f"power meter 'hwmon': prefer must be 'power' or 'energy', got {prefer!r}; "
                               f"fix the device profile")
        self.prefer = prefer
        self._sensors: Optional[List[Sensor]] = None
        self._total: Tuple[str, ...] = ()
        self._total_note = ""
        self.mode = "power"

    def sensors(self) -> List[Sensor]:
        if self._sensors is None:
            every = discover(self.root, self.chips)
            power = [s for s in every if s.kind == "power"]
            energy = [s for s in every if s.kind == "energy"]
            if energy and (self.prefer == "energy" or not power):
                self.mode, chosen = "energy", energy
            else:
                self.mode, chosen = "power", power
            if chosen:  # raises on a configured rail that does not exist, every time it is asked
                self._total, self._total_note = self._pick_total(chosen)
            self._sensors = chosen
        return self._sensors

    def _pick_total(self, sensors: List[Sensor]) -> Tuple[Tuple[str, ...], str]:
        keys = [s.key for s in sensors]
        if self.rails:
            missing = [r for r in self.rails if r not in keys]
            if missing:
                raise HarnessError(f"hwmon ({self.root}/class/hwmon): rail(s) {', '.join(missing)} not found "
                                   f"(rails here: {', '.join(keys)}); fix 'rails' in the device profile's power_meter")
            return tuple(self.rails), "configured rails"
        if self.mode == "energy":
            # Per-socket/package counters already contain the per-core ones: do not count twice.
            whole = [k for k in keys if re.search(r"socket|package", k, re.IGNORECASE)]
            if whole:
                return tuple(whole), "socket/package energy counters"
        if len(keys) == 1:
            return tuple(keys), "the only sensor"
        return tuple(keys), f"sum of all {len(keys)} {self.mode} sensors (set 'rails' if they overlap)"

    def probe(self) -> Tuple[bool, str]:
        sensors = self.sensors()
        if not sensors:
            where = os.path.join(self.root, "class", "hwmon", "hwmon*")
            which = f" from chip(s) {', '.join(self.chips)}" if self.chips else ""
            return False, (f"no power*_input or energy*_input{which} under {where} (no power-monitor hwmon "
                           f"driver: wire an INA219 and load ina2xx, or use another meter)")
        ok, why = try_read_all(s.path for s in sensors)
        if not ok:
            return False, why
        return True, f"{len(sensors)} hwmon {self.mode} sensor(s); total = {self._total_note}"

    def read(self) -> Reading:
        sensors = self.sensors()
        if not sensors:
            raise MeterError(self.probe()[1])
        values: Dict[str, float] = {}
        for s in sensors:
            try:
                values[s.key] = read_number(s.path) / 1e6  # uW -> W, uJ -> J
            except OSError as exc:
                raise MeterError(unreadable_reason(s.path, exc)) from None
        t, wall = now()
        if self.mode == "energy":
            return Reading(t=t, wall=wall, energy_j=values, total_rail=self._total)
        return Reading(t=t, wall=wall, watts=values, total_rail=self._total)

    def info(self) -> Dict[str, object]:
        sensors = self.sensors()
        out = super().info()
        out.update({"root": self.root, "rails": {s.key: s.path for s in sensors},
                    "chips": sorted({s.chip for s in sensors}), "total_rail": list(self._total),
                    "total": self._total_note, "unit": "uW" if self.mode == "power" else "uJ"})
        return out
