"""``doctor``: is this device ready to measure? One line per check (ok / absent / wrong / info),
with the fix for each that is not ok; ``--capture DIR`` saves what a test needs from the device.

Checks: Python and arch; the venv and bootstrap state; torch, onnxruntime, tensorrt, pycuda
(imported in a child process each, so a broken library cannot take doctor down, and this
package never imports them); CUDA device; every power meter the profile can use, each read once;
on a Jetson the L4T/JetPack release, ``nvpmodel -q``, ``jetson_clocks --show`` (or the clocks in
sysfs when that needs root), TensorRT's fast FP16 and trtexec; on a Raspberry Pi
``vcgencmd get_throttled``, the CPU governor, temperature and the CPU features ONNX Runtime
uses; free disk for engine caches; frames and datasets.

Everything doctor reads goes through a :class:`System`: files under ``root`` (``/`` live, a
capture folder or a fake tree in tests) and commands run live or read from
``commands_dir/<name>.txt``. :func:`capture` writes exactly that layout, so a capture taken on a
device replays through the same parsers (``doctor --replay DIR``; ``tests/doctor/test_replay.py``
replays every folder under ``tests/fixtures/devices/``).

Exit status (:func:`exit_code`): 1 when a check marked required for the profile is not ok, else 0.

Modules, in the order imports flow (each imports only modules before it; the package re-exports
their public names): :mod:`.result` (:class:`Check`, :func:`format_lines`, :func:`exit_code`),
:mod:`.system` (:class:`System`: device files and commands, live or captured), :mod:`.context`
(what a check is given), the checks by concern -- :mod:`.python_env` (Python, venv),
:mod:`.host` (board, disk, frames, datasets), :mod:`.jetson` (L4T table, nvpmodel, jetson_clocks,
trtexec), :mod:`.rpi` (throttling, governor, temperature, CPU features), :mod:`.meters` (power
meters read once, side by side), :mod:`.libraries` (the child-process library probes, FP16, the
CUDA device) -- then :mod:`.checks` (:func:`run_checks`: which checks, in which order),
:mod:`.capturing` (:func:`capture`) and :mod:`.command` (:func:`doctor`, the command).
"""
from __future__ import annotations

from .capturing import CAPTURE_FORMAT, capture
from .checks import run_checks
from .command import doctor, report
from .jetson import L4T_JETPACK, parse_jetson_clocks, parse_l4t, parse_nvpmodel, parse_trtexec_version
from .libraries import LIBRARIES, probe_libraries, probe_library
from .meters import power_checks
from .result import STATUSES, Check, exit_code, format_lines
from .rpi import THROTTLE_BITS, cpu_features, parse_throttled, parse_vc_temp
from .system import COMMANDS, TEGRASTATS, CommandResult, System

# run_checks looks probe_libraries up in harness.doctor.checks: that is where a test replaces it
# (replacing the copy here would have no effect).
__all__ = ["Check", "System", "CommandResult", "run_checks", "power_checks", "capture", "format_lines",
           "exit_code", "doctor", "parse_l4t", "parse_nvpmodel", "parse_jetson_clocks", "parse_throttled",
           "parse_vc_temp", "parse_trtexec_version", "cpu_features", "L4T_JETPACK", "THROTTLE_BITS",
           "CAPTURE_FORMAT", "COMMANDS", "LIBRARIES", "STATUSES", "TEGRASTATS", "probe_libraries", "probe_library",
           "report"]
