"""``doctor --capture DIR``: save what a test needs from this device (:func:`capture`) in the layout
:meth:`System.replay <harness.doctor.system.System.replay>` reads back, so a capture taken on a
device replays through the same parsers and meters."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from .checks import run_checks
from .system import COMMANDS, TEGRASTATS, CommandResult, System

CAPTURE_FORMAT = 1
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
MAX_FILES = 3000


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
    from ..environment import emulation

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
