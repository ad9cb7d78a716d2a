"""``auto``: the first meter that works on this machine, from a device-specific list.

The reasons of the meters that did not work are kept (``meter.notes["auto"]``) so the
results say why power is NaN, e.g. "rapl: energy_uj is readable by root only ...".
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Sequence

from ..errors import HarnessError
from .base import Meter
from .none import NoneMeter

# Direct sysfs first (cheap, fine-grained), subprocesses and libraries after. On a Jetson, jtop
# (jetson-stats) comes last: it reads the same INA3221 rails through a service that publishes at
# its own interval (1 s by default), so it only serves where the harness's own readers fail
# (a JetPack layout they do not know) and jetson-stats is installed.
CANDIDATES: Dict[str, Sequence[str]] = {
    "cpu": ("rapl", "hwmon"),
    "jetson": ("ina3221", "tegrastats", "jtop"),
    "rpi": ("hwmon",),
    "cuda": ("nvml",),
}


def detect_machine() -> str:
    """Jetson or Raspberry Pi from the device tree, else a plain CPU host."""
    if os.path.exists("/etc/nv_tegra_release"):
        return "jetson"
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(path, "rb") as fh:
                model = fh.read().decode(errors="replace").lower()
        except OSError:
            continue
        if "jetson" in model or "nvidia" in model:
            return "jetson"
        if "raspberry pi" in model:
            return "rpi"
    return "cpu"


def device_kind(device: object = None) -> str:
    """cpu / jetson / rpi / cuda from a device profile (dict), a name, or the machine itself."""
    if device is None:
        return detect_machine()
    if isinstance(device, Mapping):
        explicit = device.get("power_kind")
        if isinstance(explicit, str) and explicit in CANDIDATES:
            return explicit
        name = str(device.get("name", "")).lower()
        if name in CANDIDATES:
            return name
        text = " ".join(str(device.get(k, "")) for k in ("name", "backend", "description")).lower()
    else:
        text = str(device).lower()
        if text in CANDIDATES:
            return text
    if any(w in text for w in ("jetson", "xavier", "orin", "tegra")):
        return "jetson"
    if any(w in text for w in ("rpi", "raspberry")):
        return "rpi"
    if any(w in text for w in ("cuda", "nvidia", "tensorrt")):
        return "cuda"
    return "cpu"


def select_auto(device: object = None, candidates: Optional[Sequence[str]] = None, **options) -> Meter:
    """Probe the candidates in order; return the first that works, else a NoneMeter with every reason.

    Configuration mistakes (HarnessError, e.g. a rail that does not exist) still raise.
    """
    from .factory import build

    kind = device_kind(device)
    if isinstance(candidates, str):
        candidates = (candidates,)
    names = tuple(candidates) if candidates else tuple(CANDIDATES.get(kind, CANDIDATES["cpu"]))
    failed: Dict[str, str] = {}
    for name in names:
        if name == "auto":
            raise HarnessError("power_meter auto: 'auto' cannot be its own candidate; fix the device profile")
        meter = build(name, options, lenient=True)
        try:
            ok, why = meter.probe()
        except HarnessError:
            raise
        except Exception as exc:  # a broken driver must not stop the benchmark
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if ok:
            meter.notes["auto"] = {"device_kind": kind, "chosen": name, "why": why, "failed": dict(failed)}
            return meter
        meter.close()
        failed[name] = why
    reason = "no power meter works here: " + "; ".join(f"{n}: {w}" for n, w in failed.items())
    if not failed:
        reason = "no power meter candidates for this device"
    meter = NoneMeter(reason)
    meter.notes["auto"] = {"device_kind": kind, "chosen": None, "failed": failed}
    return meter
