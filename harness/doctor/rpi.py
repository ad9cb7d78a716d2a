"""Raspberry Pi and the CPU: ``vcgencmd get_throttled`` decoded bit by bit (:data:`THROTTLE_BITS`),
the CPU governor, the temperature (thermal zones, and ``vcgencmd measure_temp`` on a Pi) and the CPU
features ONNX Runtime's kernels use. The last three run on every device; a Pi is where they are
required (a ``performance`` governor, a 64-bit OS with asimd)."""
from __future__ import annotations

import re
from typing import Dict, List, Optional

from .context import Context
from .result import Check
from .system import CommandResult

HOT_C = 80.0  # Raspberry Pi firmware soft-throttles from 80 C (60 C with temp_soft_limit lowered)

# vcgencmd get_throttled bits (Raspberry Pi documentation, "vcgencmd", get_throttled).
THROTTLE_BITS: Dict[int, str] = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "ARM frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}

_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")
_VC_TEMP = re.compile(r"temp=(-?\d+(?:\.\d+)?)'C")


def parse_throttled(text: Optional[str]) -> Optional[Dict[str, object]]:
    """``throttled=0x50000`` -> value 0x50000, flags ["under-voltage has occurred", "throttling has occurred"]."""
    if not text:
        return None
    m = _THROTTLED.search(text)
    if not m:
        return None
    raw = m.group(1)
    value = int(raw, 16) if raw.lower().startswith("0x") else int(raw)
    flags = [label for bit, label in sorted(THROTTLE_BITS.items()) if value & (1 << bit)]
    return {"value": value, "hex": hex(value), "flags": flags, "now": bool(value & 0xF),
            "occurred": bool(value & 0xF0000), "under_voltage": bool(value & 0x10001)}


def parse_vc_temp(text: Optional[str]) -> Optional[float]:
    m = _VC_TEMP.search(text or "")
    return float(m.group(1)) if m else None


def cpu_features(cpuinfo: Optional[str]) -> List[str]:
    """``Features`` (ARM) or ``flags`` (x86) of the first processor in /proc/cpuinfo."""
    for line in (cpuinfo or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("features", "flags"):
            return value.split()
    return []


def check_throttled(ctx: Context) -> Check:
    res = ctx.system.run("vcgencmd_throttled")
    if res.output is None:
        return Check("throttled", "absent", res.why, "sudo apt install libraspberrypi-bin (vcgencmd)", True)
    info = parse_throttled(res.output)
    if info is None:
        first = (res.output.strip().splitlines() or ["no output"])[0]
        fix = "sudo usermod -aG video $USER (vcgencmd needs /dev/vchiq), log in again"
        return Check("throttled", "wrong", f"vcgencmd get_throttled: {first[:80]!r}", fix, True)
    if info["value"] == 0:
        return Check("throttled", "ok", "0x0 (no under-voltage or throttling since boot)", required=True, data=info)
    fixes = []
    if info["under_voltage"]:
        fixes.append("use the official 5.1 V 3 A USB-C supply and a short cable")
    if info["value"] & 0xE000E:
        fixes.append("improve cooling (case airflow, a heatsink)")
    fixes.append("the 'has occurred' flags clear at reboot: reboot, then measure")
    return Check("throttled", "wrong", f"{info['hex']}: {', '.join(info['flags'])}", "; ".join(fixes), True, info)


def check_governor(ctx: Context) -> Check:
    sysm = ctx.system
    govs: Dict[str, List[str]] = {}
    for path in sysm.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"):
        value = sysm.text(path)
        if value:
            cpu = path.split("/")[5]
            govs.setdefault(value, []).append(cpu)
    fix = "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
    if not govs:
        return Check("governor", "absent", "no /sys/devices/system/cpu/cpu*/cpufreq (a VM or container?)",
                     required=False)
    value = ", ".join(f"{g} ({len(cpus)} CPU{'s' if len(cpus) > 1 else ''})" for g, cpus in sorted(govs.items()))
    data = {"governors": govs}
    if ctx.kind == "rpi":
        if set(govs) == {"performance"}:
            return Check("governor", "ok", value, required=True, data=data)
        return Check("governor", "wrong", value + ": the clock follows the load, timings wander", fix, True, data)
    if ctx.kind == "jetson":
        return Check("governor", "info", value + " (jetson_clocks pins the clocks whatever the governor)", data=data)
    return Check("governor", "info", value, data=data)


def check_temperature(ctx: Context) -> Check:
    sysm = ctx.system
    zones: Dict[str, float] = {}
    for zone in sysm.glob("/sys/class/thermal/thermal_zone*"):
        kind, raw = sysm.text(zone + "/type"), sysm.text(zone + "/temp")
        if not kind or not raw:
            continue
        try:
            milli = float(raw.split()[0])
        except ValueError:
            continue
        # -256 C marks a powered-off zone (Orin CV); PMIC zones report a fixed 100 C on Jetsons
        if milli <= -40000 or "pmic" in kind.lower():
            continue
        zones[kind] = milli / 1000.0
    vc = sysm.run("vcgencmd_temp") if ctx.kind == "rpi" else CommandResult(None, "")
    vc_temp = parse_vc_temp(vc.output)
    if vc_temp is not None:
        zones.setdefault("vcgencmd", vc_temp)
    if not zones:
        return Check("temperature", "absent", "no thermal zone readable under /sys/class/thermal")
    hottest = max(zones, key=lambda k: zones[k])
    shown = ", ".join(f"{k} {v:.1f} C" for k, v in sorted(zones.items(), key=lambda kv: -kv[1])[:4])
    data = {"zones_c": zones, "max_c": zones[hottest], "hottest": hottest}
    if zones[hottest] >= HOT_C:
        return Check("temperature", "wrong", shown + f": {hottest} at or above {HOT_C:.0f} C, the SoC throttles",
                     "improve cooling and let the board cool down before measuring", data=data)
    return Check("temperature", "ok", shown, data=data)


def check_cpu_features(ctx: Context) -> Optional[Check]:
    if ctx.target != "cpu":
        return None
    features = cpu_features(ctx.system.text("/proc/cpuinfo"))
    if not features:
        return Check("cpu features", "absent", "no Features/flags line in /proc/cpuinfo")
    fs = set(features)
    data = {"features": features}
    if ctx.kind == "rpi" or "asimd" in fs or "neon" in fs:
        if "asimd" not in fs:
            return Check("cpu features", "wrong", "no asimd: a 32-bit OS (ONNX Runtime's aarch64 NEON kernels "
                         "need 64-bit)", "install Raspberry Pi OS 64-bit", ctx.kind == "rpi", data)
        value = (f"asimd (NEON) yes, asimddp (int8 dot product) {'yes' if 'asimddp' in fs else 'no'}, "
                 f"fphp (FP16 arithmetic) {'yes' if 'fphp' in fs else 'no'}")
        return Check("cpu features", "ok", value, required=ctx.kind == "rpi", data=data)
    present = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in fs]
    return Check("cpu features", "info", ", ".join(present) or "no AVX2 (ONNX Runtime falls back to SSE kernels)",
                 data=data)
