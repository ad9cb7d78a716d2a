"""Jetson power through jetson-stats (``jtop``), where users already run it.

jetson-stats (https://github.com/rbonghi/jetson_stats) runs a service (``jtop.service``) that
reads the module's INA3221 rails and follows each JetPack's sensor layout; its client
``jtop.jtop`` hands out the latest values at the service's interval (default 1 s, coarser than
reading sysfs directly, which is why ``auto`` tries ``ina3221`` and ``tegrastats`` first).

``jetson.power`` in jetson-stats 4.x and later (``jtop/core/power.py``)::

    {"rail": {"GPU": {"volt": 19072, "curr": 80, "power": 1525, "avg": 1525, "online": True, ...}, ...},
     "tot": {"power": 5258, "avg": 5258}}                     # sum of the rails (AGX Xavier, AGX Orin)
     "tot": {"power": 4319, "avg": 4319, "name": "VDD_IN", ...}  # the input rail, moved out of "rail"

volt in mV, curr in mA, power/avg in mW. jetson-stats 3.x returned a tuple ``(total, rails)``
with ``{"cur": mW, "avg": mW}`` per rail; both shapes are read. The total follows the harness's
rule (``pick_total``: VDD_IN / POM_5V_IN when present, else the sum of the rails), which is
jetson-stats' own rule, so the total matches the one ``jtop`` shows.

``jtop`` is imported lazily: the harness runs without jetson-stats installed.
"""
from __future__ import annotations

import importlib
from typing import Dict, Optional, Tuple

from ..errors import HarnessError
from .base import Meter, MeterError, Reading, as_names, now, pick_total

INSTALL = "jetson-stats is not installed: sudo pip3 install -U jetson-stats, then reboot (or log out and in)"
SERVICE = "jetson_stats service not running: sudo systemctl restart jtop.service"


def rails_mw(power) -> Tuple[Dict[str, float], Optional[float]]:
    """(rail -> mW, jtop's own total in mW or None) from ``jetson.power`` of jetson-stats 3.x or 4.x+."""
    rails: Dict[str, float] = {}
    total: Optional[float] = None
    if isinstance(power, tuple) and len(power) == 2:  # jetson-stats 3.x: (total, {name: {"cur", "avg"}})
        tot, per_rail = power
        for name, values in (per_rail or {}).items():
            if isinstance(values, dict) and "cur" in values:
                rails[str(name)] = float(values["cur"])
        if isinstance(tot, dict) and "cur" in tot:
            total = float(tot["cur"])
        return rails, total
    if not isinstance(power, dict):
        return rails, total
    for name, values in (power.get("rail") or {}).items():
        if not isinstance(values, dict) or "power" not in values:
            continue
        if values.get("online") is False:
            continue
        rails[str(name)] = float(values["power"])
    tot = power.get("tot")
    if isinstance(tot, dict) and "power" in tot:
        total = float(tot["power"])
        name = tot.get("name")
        if isinstance(name, str) and name and name not in rails:
            rails[name] = total  # jetson-stats moves VDD_IN / POM_5V_IN out of "rail" into "tot"
    return rails, total


class JtopMeter(Meter):
    """Rail power (W) from a ``jtop`` client; ``read()`` waits for the service's next update."""

    name = "jtop"
    mode = "power"

    def __init__(self, interval: float = 0.5, rails=None) -> None:
        super().__init__()
        self.interval = float(interval)
        if self.interval <= 0:
            raise ValueError("jtop interval must be positive (seconds)")
        self.rails = as_names(rails, "rails", self.name)
        self.pace_s = self.interval
        self._jetson = None
        self._probed: Optional[Tuple[bool, str]] = None
        self._reads = 0
        self._total_note = ""
        self._facts: Dict[str, object] = {}

    def probe(self) -> Tuple[bool, str]:
        if self._probed is None:
            self._probed = self._open()
        return self._probed

    def _open(self) -> Tuple[bool, str]:
        try:
            module = importlib.import_module("jtop")
        except ImportError:
            return False, INSTALL
        client_cls = getattr(module, "jtop", None)
        if client_cls is None:
            return False, ("the installed 'jtop' module has no jtop client class: is it jetson-stats? "
                           "(pip3 show jetson-stats)")
        error_cls = getattr(module, "JtopException", None)
        try:
            client = client_cls(interval=self.interval)
            client.start()
        except Exception as exc:  # noqa: BLE001 - JtopException and socket errors alike
            said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if error_cls is not None and isinstance(exc, error_cls):
                return False, f"{SERVICE} ({said})"
            return False, f"jtop client did not start ({type(exc).__name__}: {said}); {SERVICE}"
        self._jetson = client
        self._facts["jetson_stats"] = str(getattr(module, "__version__", "unknown"))
        try:
            rails, _ = rails_mw(client.power)
        except Exception as exc:  # noqa: BLE001
            self.close()
            return False, f"jtop power not readable ({type(exc).__name__}: {exc})"
        if not rails:
            self.close()
            return False, "jtop reports no power rails on this board (no INA3221 found by jetson-stats)"
        try:
            self._total_note = pick_total(list(rails), self.rails, "jtop")[1]
        except HarnessError:  # a configured rail that does not exist: a profile mistake, raised
            self.close()
            raise
        return True, f"jetson-stats {self._facts['jetson_stats']}: {len(rails)} rails; total = {self._total_note}"

    def start(self) -> None:
        ok, why = self.probe()
        if not ok:
            raise MeterError(why)

    def read(self) -> Reading:
        ok, why = self.probe()
        if not ok or self._jetson is None:
            raise MeterError(why)
        client = self._jetson
        if self._reads:
            # Block until the service publishes its next sample (the first read uses the current one).
            try:
                if not client.ok():
                    raise MeterError("jtop client stopped (service gone?); " + SERVICE)
            except MeterError:
                raise
            except Exception as exc:  # noqa: BLE001 - JtopException raised from the client thread
                raise MeterError(f"jtop: {exc}") from None
        try:
            rails, total = rails_mw(client.power)
        except Exception as exc:  # noqa: BLE001
            raise MeterError(f"jtop power not readable ({type(exc).__name__}: {exc})") from None
        if not rails:
            raise MeterError("jtop reported no power rails")
        self._reads += 1
        t, wall = now()
        total_rail, _ = pick_total(list(rails), self.rails, "jtop")
        extras = {"jtop_total_w": total / 1000.0} if total is not None else {}
        return Reading(t=t, wall=wall, watts={k: v / 1000.0 for k, v in rails.items()},
                       total_rail=total_rail, extras=extras)

    def close(self) -> None:
        client, self._jetson = self._jetson, None
        self._probed = None
        self._reads = 0
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                pass

    def info(self) -> Dict[str, object]:
        out = super().info()
        out.update({"interval_s": self.interval, "unit": "mW (jetson-stats)",
                    "configured_rails": list(self.rails) if self.rails else None})
        out.update(self._facts)
        return out
