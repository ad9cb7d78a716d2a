"""What a run ran on: captured once per run and stored with it.

Everything is read, never assumed: a fact that cannot be read here is left out or set to
None with the reason, so results from a Jetson, a Raspberry Pi and a desktop stay comparable.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace").strip("\x00").strip()
    except OSError:
        return None


def _run(cmd, timeout: float = 5.0) -> Optional[str]:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout or out.stderr).strip() or None


def _cpu_model() -> Optional[str]:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model"):
        for line in text.splitlines():
            if line.lower().startswith(key.lower()) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _versions() -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {"python": sys.version.split()[0]}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "tensorrt", "pycuda", "cv2", "skimage"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "unknown")
        except Exception:  # noqa: BLE001 - an absent or broken library is recorded as absent
            out[name] = None
    return out


EMULATED_ENV = "HARNESS_EMULATED"
_X86_VENDORS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls")


def emulation() -> Optional[str]:
    """Why this process runs under an emulator (its timings are meaningless), or None.

    ``$HARNESS_EMULATED`` says so explicitly (``scripts/emulate-rpi.sh`` sets it to
    ``qemu-user``); otherwise an ARM Python reading an x86 ``/proc/cpuinfo`` is qemu-user
    emulation (qemu passes the host's /proc through)."""
    told = os.environ.get(EMULATED_ENV, "").strip()
    if told and told.lower() not in ("0", "no", "false"):
        return f"{told} (${EMULATED_ENV})"
    machine = platform.machine().lower()
    if machine.startswith(("aarch64", "arm")):
        info = _read("/proc/cpuinfo") or ""
        vendor = next((v for v in _X86_VENDORS if v in info), None)
        if vendor:
            return f"qemu-user: {machine} Python on an x86 host ({vendor} in /proc/cpuinfo)"
    return None


def not_the_device(profile: Dict[str, object], env: Dict[str, object]) -> Optional[str]:
    """Why this host is not the device a profile describes (``--device rpi`` on an x86 desktop), or
    None: a Raspberry Pi or Jetson profile needs an ARM host with that board. An emulated run is
    labelled as emulated instead."""
    if env.get("emulated"):
        return None
    name = str(profile.get("name", "")).lower()
    kind = "rpi" if "rpi" in name or "raspberry" in name else "jetson" if "jetson" in name or "xavier" in name else None
    if kind is None:
        return None
    machine = str(env.get("machine") or "").lower()
    board = str(env.get("board") or "")
    wanted = "a Raspberry Pi" if kind == "rpi" else "a Jetson"
    if not machine.startswith(("aarch64", "arm")):
        return (f"the {profile.get('name')} profile describes {wanted}, but this host is {machine or 'unknown'} "
                f"({env.get('cpu') or 'unknown CPU'}): its figures are this host's, not the device's")
    looks = ("raspberry pi" in board.lower()) if kind == "rpi" else bool(env.get("l4t")) or "jetson" in board.lower()
    if board and not looks:
        return f"the {profile.get('name')} profile describes {wanted}, but this board is {board}"
    return None


def capture() -> Dict[str, object]:
    import psutil

    env: Dict[str, object] = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 2),
        "versions": _versions(),
        "board": _read("/proc/device-tree/model"),
        "emulated": emulation(),
    }
    tegra = _read("/etc/nv_tegra_release")
    if tegra:  # Jetson: L4T release, JetPack, power mode and clocks
        env["l4t"] = tegra.splitlines()[0]
        env["jetpack"] = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
        env["nvpmodel"] = _run(["nvpmodel", "-q"])
        env["jetson_clocks"] = _run(["jetson_clocks", "--show"])
    throttled = _run(["vcgencmd", "get_throttled"])
    if throttled:  # Raspberry Pi: under-voltage / throttling flags
        env["rpi_throttled"] = throttled
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,power.limit,clocks.max.sm", "--format=csv,noheader"])
    if smi:
        env["nvidia_smi"] = smi
    gov = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov:
        env["cpu_governor"] = gov
    return env
