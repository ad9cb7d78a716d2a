"""``doctor``: is this device ready to measure? One line per check (ok / absent / wrong / info),
with the fix for each that is not ok; ``--capture DIR`` saves what a test needs from the device.

Checks: Python and arch; the venv and bootstrap state; torch, onnxruntime, tensorrt, pycuda
(imported in a child process each, so a broken library cannot take doctor down, and this
module never imports them); CUDA device; every power meter the profile can use, each read once;
on a Jetson the L4T/JetPack release, ``nvpmodel -q``, ``jetson_clocks --show`` (or the clocks in
sysfs when that needs root), TensorRT's fast FP16 and trtexec; on a Raspberry Pi
``vcgencmd get_throttled``, the CPU governor, temperature and the CPU features ONNX Runtime
uses; free disk for engine caches; frames and datasets.

Everything doctor reads goes through a :class:`System`: files under ``root`` (``/`` live, a
capture folder or a fake tree in tests) and commands run live or read from
``commands_dir/<name>.txt``. :func:`capture` writes exactly that layout, so a capture taken on a
device replays through the same parsers (``doctor --replay DIR``; ``tests/test_doctor.py`` replays
every folder under ``tests/fixtures/devices/``).

Exit status (:func:`exit_code`): 1 when a check marked required for the profile is not ok, else 0.
"""
from __future__ import annotations

import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATUSES = ("ok", "absent", "wrong", "info")
CAPTURE_FORMAT = 1
MIN_PYTHON = (3, 8)
DISK_MIN_GB = 2.0          # engine caches, ONNX exports and LR frame caches of a full sweep fit well within this
HOT_C = 80.0               # Raspberry Pi firmware soft-throttles from 80 C (60 C with temp_soft_limit lowered)
ORT_MIN = (1, 12)          # pyproject's lower bound
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

# Commands doctor runs (or reads from a capture's commands/<name>.txt).
COMMANDS: Dict[str, Sequence[str]] = {
    "nvpmodel": ("nvpmodel", "-q"),
    "jetson_clocks": ("jetson_clocks", "--show"),
    "vcgencmd_throttled": ("vcgencmd", "get_throttled"),
    "vcgencmd_temp": ("vcgencmd", "measure_temp"),
    "nvidia_smi": ("nvidia-smi", "-L"),
    "trtexec": ("trtexec", "--help"),
}
TEGRASTATS = "tegrastats"  # commands/tegrastats.txt: raw lines of `tegrastats --interval 100`
EXTRA_BIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/usr/local/bin", "/usr/src/tensorrt/bin")

# What capture() copies (device paths; globs). Small text files only.
SENSOR_GLOBS: Tuple[str, ...] = (
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/name",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_label",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in*_input",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/curr*_input",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/curr*_max",
    "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/curr*_crit",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/name",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power*_input",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_current*_input",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_voltage*_input",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/crit_current_limit_*",
    "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/warn_current_limit_*",
    "/sys/class/hwmon/hwmon*/name",
    "/sys/class/hwmon/hwmon*/*_label",
    "/sys/class/hwmon/hwmon*/*_input",
    "/sys/class/hwmon/hwmon*/*_average",
    "/sys/class/thermal/thermal_zone*/type",
    "/sys/class/thermal/thermal_zone*/temp",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_min_freq",
    "/sys/devices/system/cpu/cpu*/cpufreq/scaling_max_freq",
    "/sys/class/devfreq/*/governor",
    "/sys/class/devfreq/*/min_freq",
    "/sys/class/devfreq/*/max_freq",
    "/sys/class/devfreq/*/cur_freq",
    "/sys/class/powercap/intel-rapl*/name",
    "/sys/class/powercap/intel-rapl*/energy_uj",
    "/sys/class/powercap/intel-rapl*/max_energy_range_uj",
    "/proc/device-tree/model",
    "/etc/nv_tegra_release",
    "/proc/cpuinfo",
)
MAX_FILE_BYTES = 256 * 1024
MAX_FILES = 3000
# Integrated Jetson GPUs in /sys/class/devfreq: gm20b (Nano), gp10b (TX2), gv11b (Xavier), ga10b (Orin).
GPU_DEVFREQ = re.compile(r"gpu|gm20b|gp10b|gv11b|ga10b", re.IGNORECASE)


# --------------------------------------------------------------------------------------- results

@dataclass
class Check:
    """One check: ``status`` is ok / absent / wrong / info; ``fix`` says what to do when not ok;
    ``required`` checks that are not ok make the exit status 1; ``data`` holds the parsed facts."""

    name: str
    status: str
    value: str
    fix: str = ""
    required: bool = False
    data: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "status": self.status, "value": self.value, "fix": self.fix,
                "required": self.required, "data": _jsonable(self.data)}


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def format_lines(checks: Sequence[Check]) -> List[str]:
    """``ok      python          3.8.10 (aarch64)`` ... one line per check, the fix after ``->``."""
    width = max([15] + [len(c.name) for c in checks])
    lines = []
    for c in checks:
        line = f"{c.status:<7} {c.name:<{width}} {c.value}"
        if c.fix and c.status != "ok":
            line += f" -> fix: {c.fix}"
        lines.append(line.rstrip())
    return lines


def exit_code(checks: Sequence[Check]) -> int:
    """1 when any required check is not ok (absent, wrong, or info where ok was needed), else 0."""
    return 1 if any(c.required and not c.ok for c in checks) else 0


# --------------------------------------------------------------------------------------- system

@dataclass
class CommandResult:
    output: Optional[str]   # stdout + stderr, None when the command could not run / is not in the capture
    why: str = ""           # why output is None (absent binary, timeout, not captured)
    rc: Optional[int] = None


class System:
    """Where doctor's facts come from.

    ``root``: files are read at ``root/<device path>`` (``/`` on the device; a capture's ``root/``
    or a fake tree in tests). ``commands_dir``: command outputs are read from ``<name>.txt`` there
    instead of being run. ``live``: this process runs on the machine being checked, so library
    imports, the Python and venv facts, disk space and library meters (NVML, jtop) are checked
    here; a replayed capture is not live and shows those as recorded in its ``capture.json``.
    """

    def __init__(self, root="/", commands_dir=None, live: bool = True, timeout_s: float = 15.0,
                 recorded: Optional[Mapping[str, object]] = None) -> None:
        self.root = Path(root)
        self.commands_dir = Path(commands_dir) if commands_dir is not None else None
        self.live = bool(live)
        self.timeout_s = float(timeout_s)
        self.recorded: Dict[str, object] = dict(recorded or {})  # capture.json of a replayed capture

    @classmethod
    def replay(cls, folder) -> "System":
        """A capture folder written by :func:`capture` (``root/``, ``commands/``, ``capture.json``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise HarnessError(f"--replay {folder}: no such folder; give a folder written by doctor --capture")
        recorded: Dict[str, object] = {}
        meta = folder / "capture.json"
        if meta.is_file():
            try:
                recorded = json.loads(meta.read_text())
            except ValueError as exc:
                raise HarnessError(f"{meta}: not valid JSON ({exc}); was it written by doctor --capture?") from None
        return cls(root=folder / "root", commands_dir=folder / "commands", live=False, recorded=recorded)

    @property
    def replaying(self) -> bool:
        return self.commands_dir is not None

    def path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def sysfs(self) -> str:
        return str(self.path("/sys"))

    def read(self, device_path: str) -> Tuple[Optional[str], str]:
        """(text, "") or (None, why): 'no /x/y', 'permission denied: ...', ..."""
        path = self.path(device_path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES)
        except FileNotFoundError:
            return None, f"no {device_path}"
        except PermissionError:
            return None, f"permission denied: {device_path}"
        except OSError as exc:
            return None, f"cannot read {device_path}: {exc.strerror or exc}"
        return raw.decode("utf-8", errors="replace").replace("\x00", "").strip(), ""

    def text(self, device_path: str) -> Optional[str]:
        return self.read(device_path)[0]

    def glob(self, pattern: str) -> List[str]:
        """Device paths matching ``pattern`` under the root, sorted."""
        root = str(self.root)
        found = glob.glob(str(self.path(pattern)))
        out = []
        for p in found:
            rel = os.path.relpath(p, root)
            out.append("/" + rel.replace(os.sep, "/"))
        return sorted(out)

    def which(self, program: str) -> Optional[str]:
        found = shutil.which(program)
        if found:
            return found
        for folder in EXTRA_BIN_DIRS:
            candidate = os.path.join(folder, program)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    def run(self, name: str) -> CommandResult:
        """The output of command ``name`` (a key of COMMANDS): run live, or read from the capture."""
        argv = list(COMMANDS[name]) if name in COMMANDS else [name]
        if self.commands_dir is not None:
            path = self.commands_dir / f"{name}.txt"
            if path.is_file():
                meta = _recorded_command(self.recorded, name)
                rc = meta.get("rc")
                return CommandResult(path.read_text(errors="replace"), "", rc if isinstance(rc, int) else None)
            why = _recorded_command(self.recorded, name).get("why") or "not in capture"
            return CommandResult(None, f"{' '.join(argv)}: {why}")
        exe = self.which(argv[0])
        if exe is None:
            return CommandResult(None, f"{argv[0]} not found (PATH, {', '.join(EXTRA_BIN_DIRS)})")
        try:
            proc = subprocess.run([exe] + argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return CommandResult(None, f"{' '.join(argv)} did not finish within {self.timeout_s:.0f} s")
        except OSError as exc:
            return CommandResult(None, f"cannot run {exe}: {exc}")
        return CommandResult(proc.stdout.decode("utf-8", errors="replace"), "", proc.returncode)


def _recorded_command(recorded: Mapping[str, object], name: str) -> Dict[str, object]:
    commands = recorded.get("commands") if isinstance(recorded, Mapping) else None
    entry = commands.get(name) if isinstance(commands, Mapping) else None
    return dict(entry) if isinstance(entry, Mapping) else {}


def _recorded_check(system: System, name: str) -> Optional[Dict[str, object]]:
    for entry in system.recorded.get("checks") or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry)
    return None


def _not_in_capture(system: System, name: str, required: bool = False) -> Check:
    """A check that needs this process on the device: in a replay, what the capture recorded."""
    rec = _recorded_check(system, name)
    if rec:
        value = f"not in capture; on the device: {rec.get('status')} {rec.get('value')}"
        return Check(name, "info", value, data={"recorded": rec})
    return Check(name, "info", "not in capture")


# --------------------------------------------------------------------------------------- parsers

_L4T = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")
_NVP_NAME = re.compile(r"NV Power Mode:\s*(\S+)")
_NVP_ID = re.compile(r"^\s*(\d+)\s*$", re.MULTILINE)
_CLK_CPU = re.compile(r"^\s*cpu(\d+):\s+Online=(\d)\s+Governor=(\S+)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+"
                      r"CurrentFreq=(\d+)", re.MULTILINE)
_CLK_UNIT = re.compile(r"^\s*(GPU|EMC)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)"
                       r"(?:\s+FreqOverride=(\d+))?", re.MULTILINE)
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")
_VC_TEMP = re.compile(r"temp=(-?\d+(?:\.\d+)?)'C")
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


def parse_trtexec_version(text: Optional[str]) -> Optional[str]:
    """``&&&& RUNNING TensorRT.trtexec [TensorRT v8502]`` -> "8.5.2" (10.x banners: v100300 -> 10.3.0)."""
    m = _TRT_BANNER.search(text or "")
    if not m:
        return None
    n = int(m.group(1))
    parts = (n // 10000, n // 100 % 100, n % 100) if n >= 10000 else (n // 1000, n // 100 % 10, n % 100)
    return ".".join(str(p) for p in parts)


def cpu_features(cpuinfo: Optional[str]) -> List[str]:
    """``Features`` (ARM) or ``flags`` (x86) of the first processor in /proc/cpuinfo."""
    for line in (cpuinfo or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("features", "flags"):
            return value.split()
    return []


def _version_tuple(text: Optional[str]) -> Tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:3])


# --------------------------------------------------------------------------------------- context

@dataclass
class _Ctx:
    profile: Dict[str, object]
    system: System
    kind: str                       # jetson / rpi / cuda / cpu
    libs: Dict[str, Dict[str, object]] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return str(self.profile.get("backend", "")).lower()

    @property
    def target(self) -> str:
        return str(self.profile.get("target", "")).lower()

    @property
    def precision(self) -> str:
        return str(self.profile.get("precision", "")).lower()

    @property
    def name(self) -> str:
        return str(self.profile.get("name", "?"))


def _kind(profile: Mapping[str, object]) -> str:
    from .power.auto import device_kind

    return device_kind(dict(profile))


# --------------------------------------------------------------------------------------- host checks

def check_python(ctx: _Ctx) -> Check:
    sysm = ctx.system
    if sysm.live:
        from .environment import emulation

        version, machine, emulated = platform.python_version(), platform.machine(), emulation()
    else:
        host = sysm.recorded.get("host") if isinstance(sysm.recorded.get("host"), Mapping) else {}
        version, machine, emulated = host.get("python"), host.get("machine"), host.get("emulated")
        if not version:
            return Check("python", "info", "not in capture")
    value = f"{version} ({machine})"
    data = {"version": version, "machine": machine, "emulated": emulated}
    if _version_tuple(str(version))[:2] < MIN_PYTHON:
        return Check("python", "wrong", value + ": the harness needs Python >= 3.8",
                     "install Python >= 3.8 and run ./scripts/bootstrap.sh (PYTHON=/path/to/python3)", True, data)
    arm = str(machine).lower().startswith(("aarch64", "arm64"))
    if ctx.kind in ("jetson", "rpi") and not arm:
        return Check("python", "wrong", value + f": the {ctx.name} profile runs on an aarch64 device",
                     f"run doctor on the device itself, or pick the profile of this machine (--device cpu/cuda)",
                     True, data)
    if emulated:
        return Check("python", "wrong", value + f", emulated: {emulated}; timings would be meaningless",
                     "run on the real device", True, data)
    return Check("python", "ok", value, required=True, data=data)


def _bootstrap_stamp(prefix: Path) -> Optional[str]:
    """The stamp scripts/bootstrap.sh would write for this venv now (sha256 of its inputs)."""
    import hashlib

    try:
        machine = (prefix / ".harness-machine").read_text().strip()
        torch = (prefix / ".harness-torch").read_text().strip()
        script = (PROJECT_ROOT / "scripts" / "bootstrap.sh").read_bytes()
        pyproject = (PROJECT_ROOT / "pyproject.toml").read_bytes()
    except OSError:
        return None
    m = re.search(rb'torch_version="\$\{HARNESS_TORCH_VERSION:-([^}]*)\}"', script)
    torch_version = os.environ.get("HARNESS_TORCH_VERSION") or (m.group(1).decode() if m else "")
    tail = f"Python {platform.python_version()}\n{machine} {torch_version} torch={torch}\n"
    blob = pyproject + script + tail.encode()
    return hashlib.sha256(blob).hexdigest()


def check_venv(ctx: _Ctx) -> Check:
    if not ctx.system.live:
        return _not_in_capture(ctx.system, "venv")
    prefix = Path(sys.prefix)
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    boot = "./scripts/bootstrap.sh, then .venv/bin/python -m harness doctor"
    if not in_venv:
        return Check("venv", "wrong", f"not in a virtual environment ({sys.executable})", boot)
    data: Dict[str, object] = {"prefix": str(prefix)}
    stamp_file = prefix / ".harness-bootstrap"
    if not stamp_file.is_file():
        return Check("venv", "wrong", f"{prefix}: not made by scripts/bootstrap.sh (no .harness-bootstrap)", boot,
                     data=data)
    machine = (prefix / ".harness-machine").read_text().strip() if (prefix / ".harness-machine").is_file() else "?"
    data["machine"] = machine
    cfg = (prefix / "pyvenv.cfg").read_text() if (prefix / "pyvenv.cfg").is_file() else ""
    system_site = bool(re.search(r"include-system-site-packages\s*=\s*true", cfg, re.IGNORECASE))
    data["system_site_packages"] = system_site
    if ctx.kind == "jetson" and not system_site:
        return Check("venv", "wrong", f"{prefix} hides the system site-packages: JetPack's TensorRT is invisible",
                     "rm -rf .venv && HARNESS_MACHINE=jetson ./scripts/bootstrap.sh (it uses --system-site-packages)",
                     data=data)
    want = _bootstrap_stamp(prefix)
    have = stamp_file.read_text().strip()
    if want is not None and want != have:
        data["stale"] = True
        return Check("venv", "wrong", f"{prefix} (bootstrapped as '{machine}') is older than pyproject.toml or "
                     f"scripts/bootstrap.sh", "./scripts/bootstrap.sh (updates it in place)", data=data)
    return Check("venv", "ok", f"{prefix} (bootstrapped as '{machine}')", data=data)


def check_board(ctx: _Ctx) -> Check:
    sysm = ctx.system
    model = sysm.text("/proc/device-tree/model")
    cpuinfo = sysm.text("/proc/cpuinfo") or ""
    if not model:
        for key in ("Model", "model name", "Hardware"):
            m = re.search(rf"^{key}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
            if m:
                model = m.group(1).strip()
                break
    data = {"model": model}
    if ctx.kind == "rpi":
        if model and "raspberry pi" in model.lower():
            return Check("board", "ok", model, required=True, data=data)
        return Check("board", "wrong", f"{model or 'unknown board'}: not a Raspberry Pi",
                     "run doctor on the Pi, or pick this machine's profile (--device cpu)", True, data)
    return Check("board", "info", model or "unknown (no /proc/device-tree/model, no model name in /proc/cpuinfo)",
                 data=data)


# --------------------------------------------------------------------------------------- libraries

_PROBE = r'''
import json, sys
name = sys.argv[1]
out = {"ok": False}
try:
    if name == "torch":
        import torch
        out["version"] = torch.__version__
        out["cuda_build"] = getattr(torch.version, "cuda", None)
        try:
            out["cuda_available"] = bool(torch.cuda.is_available())
            if out["cuda_available"]:
                out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    elif name == "onnxruntime":
        import onnxruntime as ort
        out["version"] = ort.__version__
        out["providers"] = list(ort.get_available_providers())
        out["device"] = ort.get_device()
    elif name == "tensorrt":
        import tensorrt as trt
        out["version"] = trt.__version__
        try:
            builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
            out["fast_fp16"] = bool(builder.platform_has_fast_fp16)
            out["fast_int8"] = bool(builder.platform_has_fast_int8)
        except Exception as exc:
            out["builder_error"] = "%s: %s" % (type(exc).__name__, exc)
    elif name == "pycuda":
        import pycuda
        out["version"] = getattr(pycuda, "VERSION_TEXT", None)
        import pycuda.driver as cuda
        try:
            cuda.init()
            out["devices"] = [cuda.Device(i).name() for i in range(cuda.Device.count())]
            out["capabilities"] = [".".join(map(str, cuda.Device(i).compute_capability()))
                                   for i in range(cuda.Device.count())]
            out["driver"] = cuda.get_driver_version()
        except Exception as exc:
            out["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    out["ok"] = True
except BaseException as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "")
sys.stdout.write("\n@@doctor@@" + json.dumps(out) + "\n")
'''
LIBRARIES = ("torch", "onnxruntime", "tensorrt", "pycuda")


def probe_library(name: str, timeout_s: float = 120.0) -> Dict[str, object]:
    """Import ``name`` in a child Python (never in this process) and report version and facts."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        return {"ok": False, "missing": True, "error": f"{name} is not installed for {sys.executable}"}
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"importing {name} took over {timeout_s:.0f} s"}
    out = proc.stdout.decode("utf-8", errors="replace")
    marker = out.rfind("@@doctor@@")
    if marker >= 0:
        try:
            return json.loads(out[marker + len("@@doctor@@"):].strip().splitlines()[0])
        except (ValueError, IndexError):
            pass
    err = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
    return {"ok": False, "error": f"importing {name} killed the interpreter (rc={proc.returncode})"
                                  + (f": {err[-1]}" if err else "")}


def probe_libraries(names: Sequence[str] = LIBRARIES) -> Dict[str, Dict[str, object]]:
    """All probes at once (each a child process; torch alone takes seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        results = dict(zip(names, pool.map(probe_library, names)))
    return results


def _lib_missing_fix(ctx: _Ctx, name: str) -> str:
    if name == "torch":
        if ctx.kind == "jetson":
            return "measuring needs no PyTorch; to export or train here install NVIDIA's JetPack torch wheel"
        return "measuring needs no PyTorch (export on a workstation: run-all --onnx-dir); to export here: " \
               "HARNESS_TORCH=1 ./scripts/bootstrap.sh"
    if name == "onnxruntime":
        return "./scripts/bootstrap.sh (onnxruntime is a core dependency)"
    if name == "tensorrt":
        if ctx.kind == "jetson":
            return ("sudo apt install python3-libnvinfer (JetPack), in a venv made with --system-site-packages "
                    "for the system Python 3.8 (HARNESS_MACHINE=jetson ./scripts/bootstrap.sh)")
        return "pip install -e '.[nvidia]' (tensorrt>=8.5,<11 from pypi.nvidia.com), or --backend onnxruntime"
    if name == "pycuda":
        if ctx.kind == "jetson":
            return "PATH=/usr/local/cuda/bin:$PATH pip install pycuda (./scripts/bootstrap.sh does this)"
        return "pip install -e '.[nvidia]' (pycuda builds against the CUDA toolkit: nvcc on PATH)"
    return "./scripts/bootstrap.sh"


def check_libraries(ctx: _Ctx) -> List[Check]:
    sysm = ctx.system
    trt_backend = ctx.backend == "tensorrt"
    required = {"torch": ctx.backend == "torch", "onnxruntime": ctx.backend == "onnxruntime",
                "tensorrt": trt_backend, "pycuda": trt_backend}
    if not sysm.live:
        return [_not_in_capture(sysm, name) for name in LIBRARIES]
    out: List[Check] = []
    for name in LIBRARIES:
        res = ctx.libs.get(name) or {"ok": False, "error": "not probed"}
        req = required[name]
        if not res.get("ok"):
            why = str(res.get("error") or "not importable")
            status = "absent" if res.get("missing") else "wrong"
            value = "not installed" if res.get("missing") else f"not importable ({why})"
            out.append(Check(name, status, value, _lib_missing_fix(ctx, name), req, dict(res)))
            continue
        version = str(res.get("version") or "unknown")
        vt = _version_tuple(version)
        if name == "torch":
            extra = f"CUDA build {res.get('cuda_build')}" if res.get("cuda_build") else "CPU build"
            if res.get("cuda_available"):
                extra += ", GPU " + ", ".join(res.get("devices") or [])
            out.append(Check(name, "ok", f"{version} ({extra})", required=req, data=dict(res)))
        elif name == "onnxruntime":
            providers = list(res.get("providers") or [])
            value = f"{version}, providers {', '.join(providers) or 'none'}"
            if vt[:2] < ORT_MIN:
                out.append(Check(name, "wrong", value + f": older than {ORT_MIN[0]}.{ORT_MIN[1]}",
                                 "pip install -U 'onnxruntime>=1.12' (./scripts/bootstrap.sh)", req, dict(res)))
            elif ctx.backend == "onnxruntime" and ctx.target == "cuda" and "CUDAExecutionProvider" not in providers:
                out.append(Check(name, "wrong", value + ": no CUDAExecutionProvider for target cuda",
                                 "pip install onnxruntime-gpu (matching your CUDA), or use the tensorrt backend",
                                 req, dict(res)))
            else:
                out.append(Check(name, "ok", value, required=req, data=dict(res)))
        elif name == "tensorrt":
            lo, hi = TRT_RANGE
            if not (lo <= vt[:2] and vt[:1] < hi):
                fix = ("JetPack 5.1.x (TensorRT 8.5.2), the last JetPack for AGX Xavier" if ctx.kind == "jetson"
                       else "pip install 'tensorrt>=8.5,<11' (the [nvidia] extra)")
                out.append(Check(name, "wrong", f"{version}: FP16/INT8 engines need TensorRT >= 8.5 and < 11",
                                 fix, req, dict(res)))
            else:
                out.append(Check(name, "ok", version, required=req, data=dict(res)))
        elif name == "pycuda":
            devices = res.get("devices")
            value = version + (f", CUDA devices: {', '.join(devices)}" if devices else
                               f" (CUDA: {res.get('cuda_error') or 'no device'})")
            out.append(Check(name, "ok", value, required=req, data=dict(res)))
    return out


def check_fp16(ctx: _Ctx) -> Optional[Check]:
    """TensorRT's platform_has_fast_fp16 (FP16 profiles on the TensorRT backend)."""
    if ctx.backend != "tensorrt":
        return None
    required = ctx.precision == "fp16"
    if not ctx.system.live:
        return _not_in_capture(ctx.system, "fp16")
    res = ctx.libs.get("tensorrt") or {}
    if not res.get("ok"):
        return Check("fp16", "absent", "unknown: tensorrt is not importable", _lib_missing_fix(ctx, "tensorrt"),
                     required)
    if "fast_fp16" not in res:
        return Check("fp16", "absent", f"unknown: no TensorRT builder ({res.get('builder_error') or 'no GPU'})",
                     "check the CUDA device line above", required, dict(res))
    if res["fast_fp16"]:
        return Check("fp16", "ok", "platform_has_fast_fp16 = True", required=required, data=dict(res))
    return Check("fp16", "wrong", "platform_has_fast_fp16 = False: FP16 engines would not be faster",
                 "use a GPU with fast FP16 (Volta or newer; the Xavier's has it) or --precision fp32",
                 required, dict(res))


def check_cuda_device(ctx: _Ctx) -> Optional[Check]:
    """A CUDA device that CUDA opens (pycuda/torch, live), else nvidia-smi -L, else a Jetson's GPU node."""
    if ctx.target != "cuda" and ctx.kind not in ("jetson", "cuda"):
        return None
    sysm = ctx.system
    required = ctx.target == "cuda" and sysm.live
    if sysm.live:
        for lib in ("pycuda", "torch"):
            devs = (ctx.libs.get(lib) or {}).get("devices")
            if devs:
                return Check("cuda device", "ok", ", ".join(str(d) for d in devs) + f" (via {lib})",
                             required=required, data={"devices": devs, "via": lib})
    smi = sysm.run("nvidia_smi")
    gpus = [ln.strip() for ln in (smi.output or "").splitlines() if re.match(r"\s*GPU \d+:", ln)]
    if gpus:
        return Check("cuda device", "ok", "; ".join(gpus) + " (nvidia-smi -L)", required=required,
                     data={"devices": gpus, "via": "nvidia-smi"})
    nodes = [os.path.basename(p) for p in sysm.glob("/sys/class/devfreq/*") if GPU_DEVFREQ.search(os.path.basename(p))]
    if ctx.kind == "jetson" and sysm.live and not nodes and os.path.exists("/dev/nvhost-ctrl-gpu"):
        nodes = ["/dev/nvhost-ctrl-gpu"]
    if ctx.kind == "jetson" and nodes:
        value = f"integrated GPU {nodes[0]}"
        if not sysm.live:
            return Check("cuda device", "ok", value + " (devfreq node in the capture)", data={"node": nodes[0]})
        pyc = ctx.libs.get("pycuda") or {}
        if pyc.get("ok") and pyc.get("cuda_error"):
            return Check("cuda device", "wrong", value + f", but CUDA does not open it ({pyc['cuda_error']})",
                         "sudo usermod -aG video $USER, then log in again", required, {"node": nodes[0]})
        return Check("cuda device", "absent", value + "; no CUDA library here to open it (pycuda: "
                     f"{pyc.get('error') or 'not installed'})", _lib_missing_fix(ctx, "pycuda"), required,
                     {"node": nodes[0]})
    if not sysm.live:
        if _recorded_check(sysm, "cuda device"):
            return _not_in_capture(sysm, "cuda device")
        return Check("cuda device", "info", f"not in capture ({smi.why or 'no GPU in nvidia-smi -L'})")
    if smi.output is not None:
        first = (smi.output.strip().splitlines() or ["no output"])[0]
        why = f"nvidia-smi -L: {first[:80]}"
    else:
        why = smi.why
    return Check("cuda device", "absent", f"no CUDA device visible ({why})",
                 "install the NVIDIA driver (nvidia-smi -L must list the GPU) and pycuda, or use --device cpu",
                 required)


# --------------------------------------------------------------------------------------- Jetson

def check_l4t(ctx: _Ctx) -> Check:
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
    if _version_tuple(str(trt))[:2] < TRT_RANGE[0]:
        return Check("l4t", "wrong", value + ": below TensorRT 8.5",
                     "flash JetPack 5.1.x (L4T R35, TensorRT 8.5.2), the last JetPack for AGX Xavier", True, info)
    return Check("l4t", "ok", value, required=True, data=info)


def check_nvpmodel(ctx: _Ctx) -> Check:
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


def check_jetson_clocks(ctx: _Ctx) -> Check:
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


def check_trtexec(ctx: _Ctx) -> Check:
    res = ctx.system.run("trtexec")
    if res.output is None:
        return Check("trtexec", "absent", res.why, "JetPack installs /usr/src/tensorrt/bin/trtexec "
                     "(sudo apt install nvidia-jetpack); only the trtexec reference comparison needs it")
    version = parse_trtexec_version(res.output)
    if version is None:
        return Check("trtexec", "wrong", "no '[TensorRT vNNNN]' banner in trtexec --help",
                     "report it with doctor --capture DIR")
    return Check("trtexec", "ok", f"TensorRT {version}", data={"version": version})


# --------------------------------------------------------------------------------------- Pi / CPU

def check_throttled(ctx: _Ctx) -> Check:
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


def check_governor(ctx: _Ctx) -> Check:
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


def check_temperature(ctx: _Ctx) -> Check:
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


def check_cpu_features(ctx: _Ctx) -> Optional[Check]:
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


# --------------------------------------------------------------------------------------- power

def _meter_names(profile: Mapping[str, object], kind: str) -> List[Tuple[str, Dict[str, object]]]:
    """(meter type, options) for every meter the profile can use; on a Jetson all three readers."""
    from .power.auto import CANDIDATES
    from .power.factory import parse_spec

    spec_kind, opts = parse_spec(profile.get("power_meter", "auto"))
    names: List[Tuple[str, Dict[str, object]]] = []
    if spec_kind == "auto":
        names = [(n, dict(opts)) for n in CANDIDATES.get(kind, CANDIDATES["cpu"])]
    elif spec_kind != "none":
        names = [(spec_kind, dict(opts))]
    if kind == "jetson":
        for extra in ("ina3221", "tegrastats", "jtop"):
            if extra not in [n for n, _ in names]:
                names.append((extra, {}))
    return names


def _describe(reading, meter_name: str, energy_rate_w: Optional[float] = None) -> Tuple[str, Dict[str, object]]:
    if energy_rate_w is not None:
        total = energy_rate_w
        rails = {}
    else:
        total = reading.total_w()
        rails = dict(reading.watts)
    data: Dict[str, object] = {"total_w": total, "rails_w": rails, "total_rail": list(reading.total_rail)}
    value = f"{total:.2f} W" if math.isfinite(total) else "NaN W"
    if rails:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in list(rails.items())[:8])
        value += f" ({shown} W)"
    return value, data


def _read_meter(meter, live: bool) -> Tuple[str, Dict[str, object]]:
    """One reading (two for energy counters, 0.3 s apart, when live) as text and facts."""
    first = meter.read()
    if meter.mode == "energy":
        if not live:
            total = first.total_energy_j()
            return f"counter {total:.1f} J (one reading; a capture has no rate)", {"energy_j": total}
        t0 = first.t
        time.sleep(0.3)
        second = meter.read()
        rate = (second.total_energy_j() - first.total_energy_j()) / max(second.t - t0, 1e-9)
        value, data = _describe(second, meter.name, energy_rate_w=rate)
        return value + " (energy counter over 0.3 s)", data
    return _describe(first, meter.name)


def _replayed_tegrastats(sysm: System, rails) -> Check:
    from .power.tegrastats import parse_line, to_reading

    res = sysm.run(TEGRASTATS)
    if res.output is None:
        return Check("power tegrastats", "absent", res.why)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    for ln in lines:
        parsed = parse_line(ln)
        if parsed.rails_mw:
            reading = to_reading(parsed, 0.0, 0.0, rails, source="tegrastats (capture)")
            value, data = _describe(reading, "tegrastats")
            data.update({"lines": len(lines), "format": parsed.fmt})
            return Check("power tegrastats", "ok", value + f"; {len(lines)} captured lines", data=data)
    return Check("power tegrastats", "wrong", f"{len(lines)} captured line(s), none with power rails",
                 "check that tegrastats runs on the device: tegrastats --interval 100")


def power_checks(profile: Mapping[str, object], system: System) -> List[Check]:
    """Every meter the profile can use, each read once; on a Jetson a side-by-side line as well."""
    from .power.base import MeterError
    from .power.factory import build

    kind = _kind(profile)
    out: List[Check] = []
    for name, opts in _meter_names(profile, kind):
        label = f"power {name}"
        if name == "tegrastats" and system.replaying:
            out.append(_replayed_tegrastats(system, opts.get("rails")))
            continue
        if name in ("nvml", "jtop") and not system.live:
            out.append(_not_in_capture(system, label))
            continue
        options = dict(opts)
        options.setdefault("root", system.sysfs())
        try:
            meter = build(name, options, lenient=True)
        except HarnessError as exc:
            out.append(Check(label, "wrong", str(exc), "fix power_meter in the device profile"))
            continue
        try:
            try:
                ok, why = meter.probe()
            except HarnessError as exc:
                out.append(Check(label, "wrong", str(exc), "fix power_meter in the device profile"))
                continue
            if not ok:
                denied = "not readable" in why or "root only" in why or "permission" in why.lower()
                fix = why.split(": ", 1)[1] if denied and ": " in why else ""
                out.append(Check(label, "wrong" if denied else "absent", why, fix, data={"why": why}))
                continue
            if meter.mode == "log":
                out.append(Check(label, "info", why + " (read after a run; nothing to read now)"))
                continue
            try:
                value, data = _read_meter(meter, system.live)
            except (MeterError, OSError) as exc:
                out.append(Check(label, "wrong", f"{why}, but the read failed: {exc}", data={"why": why}))
                continue
            data["why"] = why
            out.append(Check(label, "ok", value, data=data))
        finally:
            try:
                meter.close()
            except Exception:  # noqa: BLE001 - a meter that fails to close must not stop doctor
                pass
    totals = {c.name.split(" ", 1)[1]: c.data.get("total_w") for c in out
              if c.ok and isinstance(c.data.get("total_w"), float) and math.isfinite(c.data["total_w"])}
    if kind == "jetson" and len(totals) >= 2:
        values = list(totals.values())
        spread = (max(values) - min(values)) / max(abs(max(values)), 1e-9) * 100.0
        shown = " | ".join(f"{k} {v:.2f} W" for k, v in totals.items())
        out.append(Check("power compare", "info", f"{shown} (spread {spread:.1f}%; read at different instants)",
                         data={"totals_w": totals, "spread_pct": spread}))
    return out


# --------------------------------------------------------------------------------------- storage, data

def check_disk(ctx: _Ctx) -> Check:
    if not ctx.system.live:
        return _not_in_capture(ctx.system, "disk")
    from .weights import cache_dir

    where = cache_dir()
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(str(probe))
    except OSError as exc:
        return Check("disk", "absent", f"cannot stat {probe}: {exc}", "set HARNESS_CACHE to a writable folder", True)
    free_gb = usage.free / 2 ** 30
    data = {"cache_dir": str(where), "free_gb": round(free_gb, 2)}
    value = f"{free_gb:.1f} GB free for {where} (engine and ONNX caches)"
    if free_gb < DISK_MIN_GB:
        return Check("disk", "wrong", value + f": below {DISK_MIN_GB:.0f} GB",
                     "free space there, or set HARNESS_CACHE to a folder on a larger disk", True, data)
    return Check("disk", "ok", value, required=True, data=data)


def check_frames(ctx: _Ctx) -> Check:
    if not ctx.system.live:
        return _not_in_capture(ctx.system, "frames")
    try:
        from .datasets import embedded_set

        images = embedded_set()
        name, img = next(iter(images))
    except Exception as exc:  # noqa: BLE001 - scikit-image missing or its data files stripped
        return Check("frames", "wrong", f"embedded images not loadable ({type(exc).__name__}: {exc})",
                     "./scripts/bootstrap.sh (scikit-image ships the images), or pass --frames DIR to bench", True)
    return Check("frames", "ok", f"embedded: 14 Full-HD mosaics of {len(images)} images ({images.origin})",
                 required=True, data={"images": len(images)})


def check_datasets(ctx: _Ctx) -> Check:
    if not ctx.system.live:
        return _not_in_capture(ctx.system, "datasets")
    from .datasets import ENV_DATA, available_sets, data_root

    try:
        root = data_root()
    except HarnessError as exc:
        return Check("datasets", "wrong", str(exc).split(";")[0], f"fix ${ENV_DATA}, or unset it")
    if root is None:
        return Check("datasets", "info", f"no data root (${ENV_DATA} unset): quality uses the embedded set; "
                     f"standard sets: python -m harness data fetch Set5 --data DIR")
    found = available_sets(root)
    if not found:
        return Check("datasets", "wrong", f"no test set under {root}",
                     f"python -m harness data fetch Set5 --data {root}", data={"root": str(root)})
    return Check("datasets", "ok", f"{', '.join(found)} under {root}", data={"root": str(root), "sets": found})


# --------------------------------------------------------------------------------------- driver

def run_checks(profile: Mapping[str, object], system: Optional[System] = None) -> List[Check]:
    """Every check for ``profile`` on ``system`` (live ``/`` when None), in a fixed order."""
    system = system or System()
    ctx = _Ctx(dict(profile), system, _kind(profile))
    if system.live:
        ctx.libs = probe_libraries()
    checks: List[Optional[Check]] = [check_python(ctx), check_venv(ctx), check_board(ctx)]
    if ctx.kind == "jetson":
        checks.append(check_l4t(ctx))
    checks += check_libraries(ctx)
    checks += [check_fp16(ctx), check_cuda_device(ctx)]
    if ctx.kind == "jetson":
        checks += [check_nvpmodel(ctx), check_jetson_clocks(ctx), check_trtexec(ctx)]
    if ctx.kind == "rpi":
        checks.append(check_throttled(ctx))
    checks += [check_governor(ctx), check_temperature(ctx), check_cpu_features(ctx)]
    checks += power_checks(profile, system)
    checks += [check_disk(ctx), check_frames(ctx), check_datasets(ctx)]
    return [c for c in checks if c is not None]


# --------------------------------------------------------------------------------------- capture

def _harness_version() -> str:
    try:
        from importlib.metadata import version

        return version("sr-edge-harness")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def _capture_tegrastats(system: System, seconds: float) -> CommandResult:
    """Raw lines of ``tegrastats --interval 100`` for ``seconds`` (absent binary: None with the reason)."""
    exe = system.which("tegrastats")
    if exe is None:
        return CommandResult(None, "tegrastats not found (not a Jetson)")
    try:
        proc = subprocess.Popen([exe, "--interval", "100"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        return CommandResult(None, f"cannot run {exe}: {exc}")
    try:
        out, _ = proc.communicate(timeout=max(0.5, float(seconds)))
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    text = out.decode("utf-8", errors="replace")
    return CommandResult(text, "", proc.returncode)


def capture(out_dir, profile: Mapping[str, object], system: Optional[System] = None, seconds: float = 3) -> Path:
    """Save what a test needs from this device into ``out_dir`` and return it.

    Layout: ``root/<device path>`` (the sensor, thermal, cpufreq, devfreq and RAPL files, the board
    model, /etc/nv_tegra_release, /proc/cpuinfo), ``commands/<name>.txt`` (nvpmodel -q,
    jetson_clocks --show, vcgencmd, nvidia-smi -L, trtexec --help, ``seconds`` of tegrastats),
    ``capture.json`` (harness version, time, profile, host facts, the commands' exit codes or why
    they are missing, unreadable files, and doctor's checks as run here). What is absent is noted,
    never an error.
    """
    system = system or System()
    out = Path(out_dir)
    (out / "root").mkdir(parents=True, exist_ok=True)
    (out / "commands").mkdir(parents=True, exist_ok=True)
    copied: List[str] = []
    unreadable: Dict[str, str] = {}
    seen = set()
    for pattern in SENSOR_GLOBS:
        for device_path in system.glob(pattern):
            if device_path in seen or len(copied) >= MAX_FILES:
                continue
            seen.add(device_path)
            if os.path.isdir(system.path(device_path)):
                continue
            text, why = system.read(device_path)
            if text is None:
                unreadable[device_path] = why
                continue
            dest = out / "root" / device_path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text + "\n")
            copied.append(device_path)
    commands: Dict[str, Dict[str, object]] = {}
    for name, argv in COMMANDS.items():
        res = system.run(name)
        if name == "trtexec" and res.output is not None:  # the banner and a few lines are enough
            res = CommandResult("\n".join(res.output.splitlines()[:20]) + "\n", res.why, res.rc)
        commands[name] = _save_command(out, name, list(argv), res)
    if system.replaying:
        res = system.run(TEGRASTATS)
    else:
        res = _capture_tegrastats(system, seconds)
    commands[TEGRASTATS] = _save_command(out, TEGRASTATS, ["tegrastats", "--interval", "100"], res)
    checks = run_checks(profile, system)
    from .environment import emulation

    meta = {
        "format": CAPTURE_FORMAT,
        "harness_version": _harness_version(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "profile": str(profile.get("name", "?")),
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "platform": platform.platform(), "emulated": emulation(), "seconds": seconds},
        "commands": commands,
        "files": len(copied),
        "unreadable": unreadable,
        "checks": [c.to_dict() for c in checks],
    }
    (out / "capture.json").write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    return out


def _save_command(out: Path, name: str, argv: List[str], res: CommandResult) -> Dict[str, object]:
    entry: Dict[str, object] = {"argv": argv, "rc": res.rc}
    if res.output is None:
        entry["why"] = res.why
    else:
        (out / "commands" / f"{name}.txt").write_text(res.output)
    return entry


# --------------------------------------------------------------------------------------- entry point

def report(checks: Sequence[Check], profile: Mapping[str, object], system: System) -> Dict[str, object]:
    return {"device": str(profile.get("name", "?")), "profile": str(profile.get("path", "")),
            "mode": "live" if system.live else "replay", "root": str(system.root),
            "exit_code": exit_code(checks), "checks": [c.to_dict() for c in checks]}


def doctor(device: str = "cpu", as_json: bool = False, capture_dir=None, replay_dir=None,
           seconds: float = 3, out: Callable[[str], None] = print) -> int:
    """``python -m harness doctor``: print the checks (or JSON) and return the exit status.

    ``capture_dir``: also save a capture there (see :func:`capture`). ``replay_dir``: check a
    capture instead of this machine (library checks then say "not in capture").
    """
    from .devices import load_profile

    profile = load_profile(device)
    if replay_dir is not None:
        system = System.replay(replay_dir)
    else:
        system = System()
    if capture_dir is not None:
        if replay_dir is not None:
            raise HarnessError("--capture and --replay together: replay a capture, or capture this machine")
        path = capture(capture_dir, profile, system, seconds=seconds)
        meta = json.loads((path / "capture.json").read_text())
        checks = [_check_from_dict(d) for d in meta["checks"]]
    else:
        checks = run_checks(profile, system)
    if as_json:
        payload = report(checks, profile, system)
        if capture_dir is not None:
            payload["capture"] = str(capture_dir)
        out(json.dumps(payload, indent=1))
    else:
        where = f" (replay of {replay_dir})" if replay_dir is not None else ""
        out(f"doctor: device profile '{profile.get('name')}'{where}")
        for line in format_lines(checks):
            out(line)
        code = exit_code(checks)
        failing = [c.name for c in checks if c.required and not c.ok]
        out(f"exit {code}: " + (f"required check(s) not ok: {', '.join(failing)}" if failing
                                else "every required check is ok"))
        if capture_dir is not None:
            out(f"capture saved in {capture_dir} (attach it to a bug report)")
    return exit_code(checks)


def _check_from_dict(d: Mapping[str, object]) -> Check:
    return Check(str(d.get("name")), str(d.get("status")), str(d.get("value")), str(d.get("fix") or ""),
                 bool(d.get("required")), dict(d.get("data") or {}))


__all__ = ["Check", "System", "CommandResult", "run_checks", "power_checks", "capture", "format_lines",
           "exit_code", "doctor", "parse_l4t", "parse_nvpmodel", "parse_jetson_clocks", "parse_throttled",
           "parse_vc_temp", "parse_trtexec_version", "cpu_features", "L4T_JETPACK", "THROTTLE_BITS"]
