"""The Python doctor runs under: its version and architecture (an aarch64 device needs an aarch64
Python; an emulated one would make timings meaningless), and the virtual environment
``scripts/bootstrap.sh`` made (its stamp against pyproject.toml and the script; on a Jetson the
system site-packages that hold JetPack's TensorRT)."""
from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

from .context import Context, version_tuple
from .result import Check
from .system import not_in_capture

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
MIN_PYTHON = (3, 8)


def check_python(ctx: Context) -> Check:
    sysm = ctx.system
    if sysm.live:
        from ..environment import emulation

        version, machine, emulated = platform.python_version(), platform.machine(), emulation()
    else:
        host = sysm.recorded.get("host") if isinstance(sysm.recorded.get("host"), Mapping) else {}
        version, machine, emulated = host.get("python"), host.get("machine"), host.get("emulated")
        if not version:
            return Check("python", "info", "not in capture")
    value = f"{version} ({machine})"
    data = {"version": version, "machine": machine, "emulated": emulated}
    if version_tuple(str(version))[:2] < MIN_PYTHON:
        return Check("python", "wrong", value + ": the harness needs Python >= 3.8",
                     "install Python >= 3.8 and run ./scripts/bootstrap.sh (PYTHON=/path/to/python3)", True, data)
    arm = str(machine).lower().startswith(("aarch64", "arm64"))
    if ctx.kind in ("jetson", "rpi") and not arm:
        return Check("python", "wrong", value + f": the {ctx.name} profile runs on an aarch64 device",
                     "run doctor on the device itself, or pick the profile of this machine (--device cpu/cuda)",
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


def check_venv(ctx: Context) -> Check:
    if not ctx.system.live:
        return not_in_capture(ctx.system, "venv")
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
