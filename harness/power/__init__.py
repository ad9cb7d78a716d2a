"""Power measurement for the runner: meters (tegrastats, INA3221, jetson-stats' jtop, hwmon, RAPL, NVML,
an external log), ``auto`` selection, and the window-exact ``PowerSampler``.

Typical use::

    meter = make_meter(profile.get("power_meter", "auto"), device=profile)
    with PowerSampler(meter) as sampler:
        warm_up()
        with sampler.window():
            timed_loop()
    summary = sampler.summary()     # PowerSummary: mean_w, energy_j, ... or NaN with reason
"""
from __future__ import annotations

from .auto import CANDIDATES, device_kind
from .base import Meter, MeterError, Reading
from .external import ExternalLogMeter, load_log
from .factory import METERS, make_meter, select_auto
from .hwmon import HwmonMeter
from .ina3221 import Ina3221Meter
from .jtop import JtopMeter
from .none import NoneMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter
from .sampler import PowerSampler, PowerSummary, integrate_energy, integrate_power
from .tegrastats import TegrastatsMeter, parse_line

__all__ = [
    "CANDIDATES", "METERS", "ExternalLogMeter", "HwmonMeter", "Ina3221Meter", "JtopMeter", "Meter", "MeterError",
    "NoneMeter", "NvmlMeter", "PowerSampler", "PowerSummary", "RaplMeter", "Reading", "TegrastatsMeter",
    "device_kind", "integrate_energy", "integrate_power", "load_log", "make_meter", "parse_line", "select_auto",
]
