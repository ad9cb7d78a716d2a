"""CPU energy from Linux powercap RAPL: ``/sys/class/powercap/intel-rapl:N[:M]/energy_uj``.

Counters are cumulative microjoules that wrap at ``max_energy_range_uj``; this meter undoes
the wrap so the sampler sees a monotonic counter (the sampler reads far more often than the
hours a wrap takes). Since Linux 5.10 (CVE-2020-8694) ``energy_uj`` is readable by root only,
which the probe reports with the chmod that fixes it. AMD Zen CPUs use the same interface.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import HarnessError
from .base import Meter, MeterError, Reading, as_names, now, read_number, read_text, unique_name, unreadable_reason


@dataclass
class Domain:
    key: str          # "package-0", "package-0/dram", "psys"
    zone: str         # "intel-rapl:0:2"
    energy_path: str
    range_uj: float   # counter modulus (max_energy_range_uj)
    top: bool         # top-level zone (intel-rapl:N) rather than a subzone


def discover(root: str = "/sys") -> List[Domain]:
    base = os.path.join(root, "class", "powercap")
    zones = [p for p in glob.glob(os.path.join(base, "intel-rapl:*"))
             if re.match(r"^intel-rapl:\d+(:\d+)?$", os.path.basename(p))]
    zones.sort(key=lambda p: [int(x) for x in os.path.basename(p).split(":")[1:]])
    names: Dict[str, str] = {}
    domains: List[Domain] = []
    taken: List[str] = []
    for path in zones:
        zone = os.path.basename(path)
        try:
            name = read_text(os.path.join(path, "name"))
        except OSError:
            name = zone
        names[zone] = name
        parts = zone.split(":")
        top = len(parts) == 2
        key = name if top else f"{names.get(':'.join(parts[:2]), ':'.join(parts[:2]))}/{name}"
        key = unique_name(key, taken, zone)
        taken.append(key)
        try:
            rng = read_number(os.path.join(path, "max_energy_range_uj"))
        except (OSError, MeterError):
            rng = float("inf")  # unknown range: a decrease will show as a counter going backwards
        domains.append(Domain(key=key, zone=zone, energy_path=os.path.join(path, "energy_uj"), range_uj=rng, top=top))
    return domains


def default_total(domains: List[Domain]) -> Tuple[Tuple[str, ...], str]:
    """Packages plus DRAM: disjoint, and together the CPU's share of the board power.

    ``core``/``uncore`` are inside their package and ``psys`` (laptops) contains the packages,
    so adding them would count energy twice; psys is used only when there is no package.
    """
    packages = [d.key for d in domains if d.top and d.key.startswith("package")]
    dram = [d.key for d in domains if d.key.split("/")[-1].startswith("dram")]
    if packages:
        return tuple(packages + dram), "package" + (" + dram" if dram else "") + " domains"
    psys = [d.key for d in domains if d.top and d.key.startswith("psys")]
    if psys:
        return tuple(psys), "psys (platform) domain"
    tops = [d.key for d in domains if d.top]
    return tuple(tops), "all top-level domains"


class RaplMeter(Meter):
    name = "rapl"
    mode = "energy"

    def __init__(self, root: str = "/sys", rails=None) -> None:
        super().__init__()
        self.root = str(root)
        self.rails = as_names(rails, "rails", self.name)
        self._domains: Optional[List[Domain]] = None
        self._total: Tuple[str, ...] = ()
        self._total_note = ""
        self._last: Dict[str, float] = {}
        self._offset: Dict[str, float] = {}
        self.wraps = 0

    def domains(self) -> List[Domain]:
        if self._domains is None:
            domains = discover(self.root)
            if domains:  # raises on a configured domain that does not exist, every time it is asked
                keys = [d.key for d in domains]
                if self.rails:
                    missing = [r for r in self.rails if r not in keys]
                    if missing:
                        raise HarnessError(f"rapl ({self.root}/class/powercap): domain(s) {', '.join(missing)} not "
                                           f"found (domains here: {', '.join(keys)}); fix 'rails' in the device "
                                           f"profile's power_meter")
                    self._total, self._total_note = tuple(self.rails), "configured domains"
                else:
                    self._total, self._total_note = default_total(domains)
            self._domains = domains
        return self._domains

    def probe(self) -> Tuple[bool, str]:
        domains = self.domains()
        if not domains:
            path = os.path.join(self.root, "class", "powercap", "intel-rapl:0", "energy_uj")
            return False, (f"no {path} (not an Intel/AMD CPU with RAPL, a VM or container without powercap, "
                           f"or the intel_rapl_common module is not loaded)")
        for d in domains:
            try:
                read_number(d.energy_path)
            except PermissionError:
                pattern = os.path.join(self.root, "class", "powercap", "intel-rapl:*", "energy_uj")
                return False, (f"{d.energy_path} is readable by root only (Linux >= 5.10): run as root or "
                               f"'sudo chmod a+r {pattern}' (resets at reboot)")
            except (OSError, MeterError) as exc:
                return False, unreadable_reason(d.energy_path, exc) if isinstance(exc, OSError) else str(exc)
        return True, f"{len(domains)} RAPL domains; total = {self._total_note}"

    def read(self) -> Reading:
        domains = self.domains()
        if not domains:
            raise MeterError(self.probe()[1])
        energy: Dict[str, float] = {}
        for d in domains:
            try:
                raw = read_number(d.energy_path)
            except OSError as exc:
                raise MeterError(unreadable_reason(d.energy_path, exc)) from None
            energy[d.key] = self._unwrap(d, raw) / 1e6
        t, wall = now()
        return Reading(t=t, wall=wall, energy_j=energy, total_rail=self._total)

    def _unwrap(self, d: Domain, raw: float) -> float:
        """A counter smaller than the last one has wrapped once past ``max_energy_range_uj``."""
        last = self._last.get(d.key)
        if last is not None and raw < last and d.range_uj != float("inf"):
            self._offset[d.key] = self._offset.get(d.key, 0.0) + d.range_uj
            self.wraps += 1
        self._last[d.key] = raw
        return raw + self._offset.get(d.key, 0.0)

    def info(self) -> Dict[str, object]:
        domains = self.domains()
        out = super().info()
        out.update({"root": self.root,
                    "domains": {d.key: {"zone": d.zone, "path": d.energy_path, "max_energy_range_uj": d.range_uj}
                                for d in domains},
                    "total_rail": list(self._total), "total": self._total_note, "wraps_seen": self.wraps})
        return out
