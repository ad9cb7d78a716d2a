"""doctor run live here: the text table (every line a status, every failure a reason), the JSON record
with the Jetson profile on a machine that is not one, and the package importing without PyTorch."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

from harness import doctor as doc

from .helpers import ROOT


def _free_gb(folder: Path) -> float:
    """Free space for the cache folder, read here with os.statvfs (the doctor uses shutil.disk_usage)."""
    while not folder.exists():
        folder = folder.parent
    st = os.statvfs(str(folder))
    return st.f_bavail * st.f_frsize / 2 ** 30


def _assert_disk_line(line: str) -> None:
    """The disk verdict agrees with this machine's free space and docs/doctor.md's 2 GB floor, whichever side of
    it the machine running the suite is on (a CI runner may have little disk)."""
    m = re.match(r"(\w+)\s+disk\s+([\d.]+) GB free for (.+?) \(engine and ONNX caches\)", line)
    assert m, line
    status, shown, folder = m.group(1), float(m.group(2)), Path(m.group(3))
    free = _free_gb(folder)
    assert abs(shown - free) < 0.2, (line, free)
    if free >= 2.05:
        assert status == "ok", line
    elif free < 1.95:
        assert status == "wrong" and "below 2 GB" in line and "HARNESS_CACHE" in line, line


def test_doctor_disk_low_and_ample(monkeypatch, tmp_path):
    """Both sides of the 2 GB floor, with the free space faked: 1.2 GB is wrong with the fix, 50 GB ok."""
    from collections import namedtuple

    from harness.doctor import host
    from harness.doctor.context import Context
    from harness.doctor.system import System

    usage = namedtuple("usage", "total used free")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    ctx = Context({}, System(), "cpu")
    for free, want in ((1.2, "wrong"), (50.0, "ok")):
        monkeypatch.setattr(host.shutil, "disk_usage", lambda p, f=free: usage(100 * 2 ** 30, 0, int(f * 2 ** 30)))
        check = host.check_disk(ctx)
        assert check.status == want and f"{free:.1f} GB free for {tmp_path / 'cache'}" in check.value
        if want == "wrong":
            assert "HARNESS_CACHE" in check.fix


def test_doctor_live_here():
    lines: List[str] = []
    code = doc.doctor("cpu", out=lines.append)
    assert lines[0] == "doctor: device profile 'cpu'"
    body = {ln.split()[1]: ln for ln in lines[1:-1]}
    assert body["python"].startswith("ok ") and f"{sys.version_info[0]}.{sys.version_info[1]}" in body["python"]
    _assert_disk_line(body["disk"])
    assert body["onnxruntime"].startswith("ok ")
    assert body["tensorrt"].split()[0] in ("ok", "absent", "wrong")
    assert lines[-1].startswith(f"exit {code}:")
    for ln in lines[1:-1]:
        status = ln.split()[0]
        assert status in doc.STATUSES
        if status in ("absent", "wrong"):
            assert len(ln.split(None, 2)[2]) > 10, f"no reason given: {ln}"


def test_doctor_json_shape_and_jetson_profile_here(fast_libs):
    out: List[str] = []
    code = doc.doctor("jetson", as_json=True, out=out.append)
    payload = json.loads(out[0])
    assert set(payload) >= {"device", "profile", "mode", "root", "exit_code", "checks"}
    assert payload["device"] == "jetson" and payload["mode"] == "live" and payload["exit_code"] == code == 1
    checks = {c["name"]: c for c in payload["checks"]}
    for c in payload["checks"]:
        assert set(c) == {"name", "status", "value", "fix", "required", "data"} and c["status"] in doc.STATUSES
    if not Path("/etc/nv_tegra_release").exists():
        assert checks["l4t"]["status"] == "absent" and "not a Jetson" in checks["l4t"]["value"]
        assert checks["power ina3221"]["status"] == "absent"
        assert checks["power jtop"]["status"] in ("absent", "wrong")
        assert checks["nvpmodel"]["required"] and checks["nvpmodel"]["fix"]


def test_doctor_module_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import harness.doctor, harness.power.jtop\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "assert 'tensorrt' not in sys.modules and 'onnxruntime' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
