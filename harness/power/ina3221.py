"""Jetson INA3221 rail monitors read directly from sysfs (no subprocess, finer sampling than tegrastats).

* JetPack 4 (iio driver ``ina3221x``): ``<root>/bus/i2c/drivers/ina3221x/*/iio:device*/``
  with ``rail_name_N``, ``in_power{N}_input`` (mW), ``in_current{N}_input`` (mA),
  ``in_voltage{N}_input`` (mV).
* JetPack 5+ (hwmon driver ``ina3221``): ``<root>/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/``
  with ``in{N}_label``, ``in{N}_input`` (bus mV) and ``curr{N}_input`` (mA); power = mV x mA.
  Channels labelled ``NC`` (not connected) and ``in7`` (sum of shunt voltages) are skipped.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .base import (
    Meter,
    MeterError,
    Reading,
    as_names,
    now,
    pick_total,
    read_number,
    read_text,
    try_read_all,
    unique_name,
    unreadable_reason,
)


@dataclass
class Channel:
    name: str
    power_path: Optional[str] = None  # mW (JetPack 4)
    volt_path: Optional[str] = None   # mV (JetPack 5)
    curr_path: Optional[str] = None   # mA (JetPack 5)
    driver: str = ""

    def paths(self) -> List[str]:
        return [p for p in (self.power_path, self.volt_path, self.curr_path) if p]

    def read_w(self) -> float:
        if self.power_path:
            return read_number(self.power_path) / 1000.0
        assert self.volt_path and self.curr_path
        return read_number(self.volt_path) * read_number(self.curr_path) / 1e6


def discover(root: str = "/sys") -> List[Channel]:
    """All INA3221 channels under ``root`` (both driver generations), in a stable order."""
    channels: List[Channel] = []
    taken: List[str] = []
    base = os.path.join(root, "bus", "i2c", "drivers")
    for devdir in sorted(glob.glob(os.path.join(base, "ina3221x", "*", "iio:device*"))):
        for label in sorted(glob.glob(os.path.join(devdir, "rail_name_*")), key=_index):
            n = _index(label)
            power = os.path.join(devdir, f"in_power{n}_input")
            if not os.path.exists(power):
                continue
            name = unique_name(_label(label), taken, _device_id(devdir))
            taken.append(name)
            channels.append(Channel(name=name, power_path=power, driver="ina3221x (iio, JetPack 4)"))
    for hwdir in sorted(glob.glob(os.path.join(base, "ina3221", "*", "hwmon", "hwmon*"))):
        for label in sorted(glob.glob(os.path.join(hwdir, "in*_label")), key=_index):
            n = _index(label)
            text = _label(label)
            if n > 3 or text == "NC" or "sum of" in text.lower():
                continue
            volt = os.path.join(hwdir, f"in{n}_input")
            curr = os.path.join(hwdir, f"curr{n}_input")
            if not (os.path.exists(volt) and os.path.exists(curr)):
                continue
            name = unique_name(text, taken, _device_id(hwdir))
            taken.append(name)
            channels.append(Channel(name=name, volt_path=volt, curr_path=curr, driver="ina3221 (hwmon, JetPack 5+)"))
    return channels


def _index(path: str) -> int:
    match = re.search(r"(\d+)(?:_label|_input)?$", os.path.basename(path))
    return int(match.group(1)) if match else -1


def _label(path: str) -> str:
    try:
        return read_text(path)
    except OSError:
        return os.path.basename(path)


def _device_id(path: str) -> str:
    """The I2C address folder (e.g. ``1-0040``) tells two monitors apart."""
    parts = path.split(os.sep)
    for part in parts:
        if re.match(r"^\d+-[0-9a-fA-F]{4}$", part):
            return part
    return os.path.basename(path)


class Ina3221Meter(Meter):
    name = "ina3221"
    mode = "power"

    def __init__(self, root: str = "/sys", rails=None) -> None:
        super().__init__()
        self.root = str(root)
        self.rails = as_names(rails, "rails", self.name)
        self._channels: Optional[List[Channel]] = None
        self._total: Tuple[str, ...] = ()
        self._total_note = ""

    def channels(self) -> List[Channel]:
        if self._channels is None:
            channels = discover(self.root)
            if channels:  # raises on a configured rail that does not exist, every time it is asked
                self._total, self._total_note = pick_total([c.name for c in channels], self.rails,
                                                           f"ina3221 ({self.root}/bus/i2c/drivers)")
            self._channels = channels
        return self._channels

    def probe(self) -> Tuple[bool, str]:
        channels = self.channels()
        if not channels:
            base = os.path.join(self.root, "bus", "i2c", "drivers")
            return False, (f"no INA3221 rails under {base}/ina3221x/*/iio:device*/ (JetPack 4) or "
                           f"{base}/ina3221/*/hwmon/hwmon*/ (JetPack 5+): not a Jetson with INA3221 monitors")
        ok, why = try_read_all(p for c in channels for p in c.paths())
        if not ok:
            return False, why
        return True, f"{len(channels)} INA3221 rails ({channels[0].driver}); total = {self._total_note}"

    def read(self) -> Reading:
        channels = self.channels()
        if not channels:
            raise MeterError(self.probe()[1])
        watts: Dict[str, float] = {}
        for ch in channels:
            try:
                watts[ch.name] = ch.read_w()
            except OSError as exc:
                raise MeterError(unreadable_reason(ch.paths()[0], exc)) from None
        t, wall = now()
        return Reading(t=t, wall=wall, watts=watts, total_rail=self._total)

    def info(self) -> Dict[str, object]:
        out = super().info()
        channels = self.channels()
        out.update({"root": self.root,
                    "driver": channels[0].driver if channels else None,
                    "rails": {c.name: c.paths() for c in channels},
                    "total_rail": list(self._total), "total": self._total_note})
        return out
