"""``auto``: which meters to try on this machine, in order (``CANDIDATES`` per device kind), and
which kind of device this is. :func:`harness.power.factory.select_auto` probes them in that order.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Sequence

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
