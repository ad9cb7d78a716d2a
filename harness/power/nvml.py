"""Desktop/server NVIDIA GPU power through NVML (``pynvml`` from the nvidia-ml-py package).

The total-energy counter (mJ since driver load, Volta and newer) is preferred: it integrates
in the driver at full rate. Otherwise ``nvmlDeviceGetPowerUsage`` (mW) is sampled; on many
boards that value is itself a ~1 s moving average, which the info records.
pynvml is imported lazily so the harness runs without it.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable, Dict, Optional, Tuple

from ..errors import HarnessError
from .base import Meter, MeterError, Reading, now


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlMeter(Meter):
    name = "nvml"

    def __init__(self, index: int = 0, prefer: str = "energy") -> None:
        super().__init__()
        if prefer not in ("energy", "power"):
            raise HarnessError(f"power meter 'nvml': prefer must be 'energy' or 'power', got {prefer!r}; "
                               f"fix the device profile")
        self.index = int(index)
        self.prefer = prefer
        self.mode = "energy" if prefer == "energy" else "power"
        self.rail = f"gpu{self.index}"
        self._nv = None
        self._handle = None
        self._probed: Optional[Tuple[bool, str]] = None
        self._facts: Dict[str, object] = {}

    def probe(self) -> Tuple[bool, str]:
        if self._probed is None:
            self._probed = self._open()
        return self._probed

    def _open(self) -> Tuple[bool, str]:
        try:
            nv = importlib.import_module("pynvml")
        except ImportError:
            return False, "pynvml is not installed: pip install nvidia-ml-py"
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return False, f"NVML did not initialise ({exc}): no NVIDIA driver on this machine?"
        self._nv = nv
        try:
            self._handle = nv.nvmlDeviceGetHandleByIndex(self.index)
        except Exception as exc:
            self.close()
            return False, f"NVML has no GPU {self.index} ({exc}): fix 'index' in the device profile's power_meter"
        for fact, call in (("gpu", "nvmlDeviceGetName"), ("driver", "nvmlSystemGetDriverVersion")):
            try:
                fn = getattr(nv, call)
                self._facts[fact] = _text(fn(self._handle) if call.startswith("nvmlDevice") else fn())
            except Exception:
                pass
        if self.prefer == "energy":
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                self.mode = "energy"
                self._pace_counter()
                return True, f"NVML total-energy counter of GPU {self.index}"
            except Exception as exc:
                self._facts["energy_counter"] = f"not supported ({exc})"
        try:
            nv.nvmlDeviceGetPowerUsage(self._handle)
        except Exception as exc:
            self.close()
            return False, f"NVML reports neither energy nor power for GPU {self.index} ({exc})"
        self.mode = "power"
        return True, f"NVML power usage of GPU {self.index} (sampled)"

    def _pace_counter(self) -> None:
        """How often the driver updates the energy counter (it is a step function, not a live integral), timed
        once per GPU and process: the window must span many updates, so ``min_window_s`` is ten of them (at
        least 0.5 s; 2 s where no update was seen in ``COUNTER_PROBE_S``)."""
        if self.index in _COUNTER_PERIOD:
            period = _COUNTER_PERIOD[self.index]
        else:
            period = _COUNTER_PERIOD[self.index] = counter_period(
                lambda: self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle))  # type: ignore[union-attr]
        if period is None:
            self.min_window_s = 2.0
            self._facts["counter_update_s"] = f"no update seen in {COUNTER_PROBE_S:g} s"
        else:
            self.min_window_s = max(0.5, 10.0 * period)
            self._facts["counter_update_s"] = round(period, 4)

    def start(self) -> None:
        self.probe()

    def read(self) -> Reading:
        ok, why = self.probe()
        if not ok or self._nv is None:
            raise MeterError(why)
        try:
            if self.mode == "energy":
                value = float(self._nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)) / 1000.0  # mJ -> J
                t, wall = now()
                return Reading(t=t, wall=wall, energy_j={self.rail: value}, total_rail=(self.rail,))
            value = float(self._nv.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0  # mW -> W
        except Exception as exc:
            raise MeterError(f"NVML read failed on GPU {self.index}: {exc}") from None
        t, wall = now()
        return Reading(t=t, wall=wall, watts={self.rail: value}, total_rail=(self.rail,))

    def close(self) -> None:
        nv, self._nv = self._nv, None
        self._handle = None
        self._probed = None
        if nv is not None:
            try:
                nv.nvmlShutdown()
            except Exception:
                pass

    def info(self) -> Dict[str, object]:
        out = super().info()
        out.update({"index": self.index, "rail": self.rail,
                    "unit": "mJ counter" if self.mode == "energy" else "mW (driver-averaged)"})
        out.update(self._facts)
        return out


COUNTER_PROBE_S = 0.6
_COUNTER_PERIOD: Dict[int, Optional[float]] = {}  # per GPU index, for this process


def counter_period(read: Callable[[], float], limit_s: float = COUNTER_PROBE_S, changes: int = 4,
                   clock: Callable[[], float] = time.perf_counter) -> Optional[float]:
    """The median time between changes of a counter read back-to-back (``changes`` changes, or as many as
    ``limit_s`` gives, at least two), or None where it changed fewer than twice."""
    start = clock()
    last, seen = read(), []
    while len(seen) < changes and clock() - start < limit_s:
        value = read()
        if value != last:
            seen.append(clock())
            last = value
        time.sleep(0.0005)
    gaps = sorted(b - a for a, b in zip(seen, seen[1:]))
    return gaps[len(gaps) // 2] if gaps else None


def gpu_state(index: int = 0) -> Dict[str, object]:
    """GPU temperature and SM/memory clocks through NVML, for the runner's before/after snapshot
    (a card that heats up and throttles during a sweep shows it here). ``reason`` when NVML is absent."""
    try:
        nv = importlib.import_module("pynvml")
    except ImportError:
        return {"reason": "pynvml is not installed: pip install nvidia-ml-py"}
    try:
        nv.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"reason": f"NVML did not initialise ({exc})"}
    out: Dict[str, object] = {}
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(int(index))
        for key, read in (("temp_c", lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)),
                          ("sm_mhz", lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM)),
                          ("mem_mhz", lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_MEM))):
            try:
                out[key] = float(read())
            except Exception as exc:  # noqa: BLE001 - one unsupported reading leaves the others
                out.setdefault("unread", {})[key] = str(exc)
    except Exception as exc:  # noqa: BLE001
        out["reason"] = f"NVML has no GPU {index} ({exc})"
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return out
