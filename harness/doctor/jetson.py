"""NVIDIA Jetson: the L4T release -> JetPack -> TensorRT table (:data:`L4T_JETPACK`), the TensorRT
versions the harness supports (:data:`TRT_RANGE`), the parsers of ``/etc/nv_tegra_release``,
``nvpmodel -q``, ``jetson_clocks --show`` and the trtexec banner, and the checks built on them
(``l4t``, ``nvpmodel``, ``jetson_clocks`` with the sysfs clocks when that needs root, ``trtexec``)."""
from __future__ import annotations

import os
import re
from typing import Dict, Optional, Tuple

from .context import Context, version_tuple
from .result import Check
from .system import System

TRT_RANGE = ((8, 5), (11,))  # FP16 builds need the named-tensor API of 8.5+; 11 dropped the FP16 builder flag

# L4T release (/etc/nv_tegra_release) -> (JetPack, TensorRT it ships). Source: NVIDIA's JetPack
# archive (developer.nvidia.com/embedded/jetpack-archive) and Jetson Linux release notes.
L4T_JETPACK: Dict[str, Tuple[str, str]] = {
    "32.6.1": ("4.6", "8.0.1"),
    "32.7.1": ("4.6.1", "8.2.1"),
    "32.7.2": ("4.6.2", "8.2.1"),
    "32.7.3": ("4.6.3", "8.2.1"),
    "32.7.4": ("4.6.4", "8.2.1"),
    "35.1.0": ("5.0.2", "8.4.1"),
    "35.2.1": ("5.1", "8.5.2"),
    "35.3.1": ("5.1.1", "8.5.2"),
    "35.4.1": ("5.1.2", "8.5.2"),
    "35.5.0": ("5.1.3", "8.5.2"),
    "36.3.0": ("6.0", "8.6.2"),
    "36.4.0": ("6.1", "10.3.0"),
    "36.4.3": ("6.2", "10.3.0"),
}
# Integrated Jetson GPUs in /sys/class/devfreq: gm20b (Nano), gp10b (TX2), gv11b (Xavier), ga10b (Orin).
GPU_DEVFREQ = re.compile(r"gpu|gm20b|gp10b|gv11b|ga10b", re.IGNORECASE)

_L4T = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")
_NVP_NAME = re.compile(r"NV Power Mode:\s*(\S+)")
_NVP_ID = re.compile(r"^\s*(\d+)\s*$", re.MULTILINE)
_CLK_CPU = re.compile(r"^\s*cpu(\d+):\s+Online=(\d)\s+Governor=(\S+)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+"
                      r"CurrentFreq=(\d+)", re.MULTILINE)
_CLK_UNIT = re.compile(r"^\s*(GPU|EMC)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)"
                       r"(?:\s+FreqOverride=(\d+))?", re.MULTILINE)
_TRT_BANNER = re.compile(r"\[TensorRT v(\d+)\]")


def parse_l4t(text: Optional[str]) -> Optional[Dict[str, object]]:
    """``# R35 (release), REVISION: 2.1, ...`` -> {"release": "35.2.1", "jetpack": "5.1", "tensorrt": "8.5.2"}."""
    if not text:
        return None
    m = _L4T.search(text)
    if not m:
        return None
    rev = m.group(2).strip(".")
    if rev.count(".") == 0:
        rev += ".0"
    release = f"{m.group(1)}.{rev}"
    jetpack, trt = L4T_JETPACK.get(release, (None, None))
    return {"release": release, "jetpack": jetpack, "tensorrt": trt, "line": text.splitlines()[0].strip()}


def parse_nvpmodel(text: Optional[str]) -> Optional[Dict[str, object]]:
    """``NV Power Mode: MAXN`` and the mode number on its own line (NVPM ERROR/WARN lines ignored)."""
    if not text:
        return None
    name = _NVP_NAME.search(text)
    if not name:
        return None
    ident = _NVP_ID.search(text[name.end():])
    fan = re.search(r"NV Fan Mode:\s*(\S+)", text)
    return {"mode": name.group(1), "id": int(ident.group(1)) if ident else None,
            "fan": fan.group(1) if fan else None}


def parse_jetson_clocks(text: Optional[str]) -> Optional[Dict[str, object]]:
    """Locked clocks from ``jetson_clocks --show``: every online CPU at MinFreq == MaxFreq, the GPU
    at MinFreq == MaxFreq and the EMC at CurrentFreq == MaxFreq with FreqOverride=1 (jetson_clocks
    overrides the EMC rate but leaves its MinFreq). None when the output has no clock lines (e.g.
    the 'run as root' error of a non-root call)."""
    if not text:
        return None
    cpus = []
    for m in _CLK_CPU.finditer(text):
        cpus.append({"cpu": int(m.group(1)), "online": m.group(2) == "1", "governor": m.group(3),
                     "min": int(m.group(4)), "max": int(m.group(5)), "cur": int(m.group(6))})
    units: Dict[str, Dict[str, Optional[int]]] = {}
    for m in _CLK_UNIT.finditer(text):
        units[m.group(1)] = {"min": int(m.group(2)), "max": int(m.group(3)), "cur": int(m.group(4)),
                             "override": int(m.group(5)) if m.group(5) is not None else None}
    if not cpus and not units:
        return None
    online = [c for c in cpus if c["online"]]
    cpu_locked = bool(online) and all(c["min"] == c["max"] for c in online)
    gpu = units.get("GPU")
    gpu_locked = gpu is not None and gpu["min"] == gpu["max"]
    emc = units.get("EMC")
    emc_locked = emc is not None and emc["cur"] == emc["max"] and emc["override"] in (None, 1)
    mode = _NVP_NAME.search(text)
    return {"cpus": cpus, "gpu": gpu, "emc": emc, "cpu_locked": cpu_locked, "gpu_locked": gpu_locked,
            "emc_locked": emc_locked, "locked": cpu_locked and gpu_locked and emc_locked,
            "online_cpus": len(online), "mode": mode.group(1) if mode else None}


def parse_trtexec_version(text: Optional[str]) -> Optional[str]:
    """``&&&& RUNNING TensorRT.trtexec [TensorRT v8502]`` -> "8.5.2" (10.x banners: v100300 -> 10.3.0)."""
    m = _TRT_BANNER.search(text or "")
    if not m:
        return None
    n = int(m.group(1))
    parts = (n // 10000, n // 100 % 100, n % 100) if n >= 10000 else (n // 1000, n // 100 % 10, n % 100)
    return ".".join(str(p) for p in parts)


def check_l4t(ctx: Context) -> Check:
    text, why = ctx.system.read("/etc/nv_tegra_release")
    if text is None:
        return Check("l4t", "absent", f"not a Jetson ({why})", "run doctor on the Jetson itself, or pick this "
                     "machine's profile (--device cpu/cuda)", True)
    info = parse_l4t(text)
    if info is None:
        return Check("l4t", "wrong", f"/etc/nv_tegra_release not understood: {text.splitlines()[0][:80]!r}",
                     "report it with doctor --capture DIR", True)
    release, jetpack, trt = info["release"], info["jetpack"], info["tensorrt"]
    if jetpack is None:
        return Check("l4t", "info", f"R{release} (a JetPack not in doctor's table)", data=info)
    value = f"R{release} = JetPack {jetpack} (TensorRT {trt})"
    if version_tuple(str(trt))[:2] < TRT_RANGE[0]:
        return Check("l4t", "wrong", value + ": below TensorRT 8.5",
                     "flash JetPack 5.1.x (L4T R35, TensorRT 8.5.2), the last JetPack for AGX Xavier", True, info)
    return Check("l4t", "ok", value, required=True, data=info)


def check_nvpmodel(ctx: Context) -> Check:
    res = ctx.system.run("nvpmodel")
    fix = "sudo nvpmodel -m 0 (MAXN on AGX Xavier; other modules: grep 'POWER_MODEL ID' /etc/nvpmodel.conf)"
    if res.output is None:
        return Check("nvpmodel", "absent", res.why, "JetPack installs nvpmodel (nvidia-l4t-tools)", True)
    info = parse_nvpmodel(res.output)
    if info is None:
        first = (res.output.strip().splitlines() or ["no output"])[0]
        return Check("nvpmodel", "wrong", f"nvpmodel -q not understood: {first[:80]!r}", fix, True)
    value = f"{info['mode']} (mode {info['id']})"
    if str(info["mode"]).upper().startswith("MAXN"):
        return Check("nvpmodel", "ok", value, required=True, data=info)
    return Check("nvpmodel", "wrong", value + ": not MAXN, clocks are capped", fix, True, info)


def _clocks_from_sysfs(sysm: System) -> Optional[Dict[str, object]]:
    """CPU and GPU min/max clocks from sysfs (world-readable), for when jetson_clocks --show needs root."""
    cpus = []
    for gov in sysm.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_max_freq"):
        base = os.path.dirname(gov)
        lo, hi = sysm.text(base + "/scaling_min_freq"), sysm.text(gov)
        if lo and hi and lo.isdigit() and hi.isdigit():
            cpus.append({"cpu": base, "min": int(lo), "max": int(hi)})
    gpus = []
    for node in sysm.glob("/sys/class/devfreq/*"):
        if not GPU_DEVFREQ.search(os.path.basename(node)):
            continue
        lo, hi = sysm.text(node + "/min_freq"), sysm.text(node + "/max_freq")
        if lo and hi and lo.isdigit() and hi.isdigit():
            gpus.append({"node": os.path.basename(node), "min": int(lo), "max": int(hi)})
    if not cpus or not gpus:
        return None
    cpu_locked = all(c["min"] == c["max"] for c in cpus)
    gpu_locked = all(g["min"] == g["max"] for g in gpus)
    return {"cpu_locked": cpu_locked, "gpu_locked": gpu_locked, "emc_locked": None,
            "locked": cpu_locked and gpu_locked, "cpus": cpus, "gpus": gpus, "source": "sysfs"}


def check_jetson_clocks(ctx: Context) -> Check:
    res = ctx.system.run("jetson_clocks")
    fix = "sudo jetson_clocks (after sudo nvpmodel -m 0; it does not persist across a reboot)"
    info = parse_jetson_clocks(res.output)
    if info is not None:
        info["source"] = "jetson_clocks --show"
        parts = [f"CPU {'locked' if info['cpu_locked'] else 'scaling'} ({info['online_cpus']} online)",
                 f"GPU {'locked' if info['gpu_locked'] else 'scaling'}",
                 f"EMC {'locked' if info['emc_locked'] else 'scaling'}"]
        value = ", ".join(parts)
        if info["locked"]:
            return Check("jetson_clocks", "ok", value, required=True, data=info)
        return Check("jetson_clocks", "wrong", value, fix, True, info)
    first = (res.output or "").strip().splitlines()
    why = res.why or (f"jetson_clocks --show: {first[0][:80]!r}" if first else "jetson_clocks --show printed nothing")
    sysfs = _clocks_from_sysfs(ctx.system)
    if sysfs is not None:
        value = (f"CPU {'locked' if sysfs['cpu_locked'] else 'scaling'}, GPU "
                 f"{'locked' if sysfs['gpu_locked'] else 'scaling'} (from sysfs; EMC unknown: {why})")
        sysfs["why"] = why
        if sysfs["locked"]:
            return Check("jetson_clocks", "ok", value, required=True, data=sysfs)
        return Check("jetson_clocks", "wrong", value, fix, True, sysfs)
    fix = ("JetPack installs jetson_clocks (nvidia-l4t-tools)" if res.output is None
           else "run doctor with sudo (jetson_clocks --show needs root)")
    return Check("jetson_clocks", "absent", f"clocks unknown ({why})", fix, True, {"why": why})


def check_trtexec(ctx: Context) -> Check:
    res = ctx.system.run("trtexec")
    if res.output is None:
        return Check("trtexec", "absent", res.why, "JetPack installs /usr/src/tensorrt/bin/trtexec "
                     "(sudo apt install nvidia-jetpack); only the trtexec reference comparison needs it")
    version = parse_trtexec_version(res.output)
    if version is None:
        return Check("trtexec", "wrong", "no '[TensorRT vNNNN]' banner in trtexec --help",
                     "report it with doctor --capture DIR")
    return Check("trtexec", "ok", f"TensorRT {version}", data={"version": version})
