"""Where doctor's facts come from: :class:`System` reads device files under a root (``/`` live, a
capture's ``root/`` or a fake tree in tests) and runs the commands of :data:`COMMANDS` live or reads
them from a capture's ``commands/<name>.txt``; :meth:`System.replay` opens a capture folder. A check
that needs this process on the device reads, in a replay, what the capture recorded
(:func:`not_in_capture`)."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import HarnessError
from .result import Check

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
MAX_FILE_BYTES = 256 * 1024


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


def recorded_check(system: System, name: str) -> Optional[Dict[str, object]]:
    for entry in system.recorded.get("checks") or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return dict(entry)
    return None


def not_in_capture(system: System, name: str, required: bool = False) -> Check:
    """A check that needs this process on the device: in a replay, what the capture recorded."""
    rec = recorded_check(system, name)
    if rec:
        value = f"not in capture; on the device: {rec.get('status')} {rec.get('value')}"
        return Check(name, "info", value, data={"recorded": rec})
    return Check(name, "info", "not in capture")
