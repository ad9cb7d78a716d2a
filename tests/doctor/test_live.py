"""doctor run live here: the text table (every line a status, every failure a reason), the JSON record
with the Jetson profile on a machine that is not one, and the package importing without PyTorch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

from harness import doctor as doc

from .helpers import ROOT


def test_doctor_live_here():
    lines: List[str] = []
    code = doc.doctor("cpu", out=lines.append)
    assert lines[0] == "doctor: device profile 'cpu'"
    body = {ln.split()[1]: ln for ln in lines[1:-1]}
    assert body["python"].startswith("ok ") and f"{sys.version_info[0]}.{sys.version_info[1]}" in body["python"]
    assert body["disk"].startswith("ok ") and "GB free" in body["disk"]
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
