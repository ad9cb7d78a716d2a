"""doctor --capture: a capture of this machine replays to the same facts, a capture of a replayed
device capture writes the same files, and tegrastats lines are recorded for the seconds asked."""
from __future__ import annotations

import json
import platform
import stat
import sys
from typing import List

import pytest

from harness import doctor as doc
from harness.devices import load_profile
from harness.doctor import System, capture, run_checks

from .helpers import JP5, JP5_INA_W, by_name


def test_capture_here_then_replay(tmp_path, fast_libs):
    profile = load_profile("cpu")
    live = by_name(run_checks(profile, System()))
    out = capture(tmp_path / "cap", profile, seconds=0.2)
    meta = json.loads((out / "capture.json").read_text())
    assert meta["profile"] == "cpu" and meta["host"]["python"] == platform.python_version()
    assert set(meta["commands"]) == set(doc.COMMANDS) | {doc.TEGRASTATS}
    for name, entry in meta["commands"].items():  # present or the reason it is not
        assert (out / "commands" / f"{name}.txt").is_file() or entry["why"]
    assert (out / "root" / "proc" / "cpuinfo").is_file()
    assert {c["name"] for c in meta["checks"]} == set(live)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert total < 2 * 2 ** 20, "a capture stays small"
    replayed = by_name(run_checks(profile, System.replay(out)))
    for name in ("board", "governor", "temperature", "cpu features", "power rapl", "power hwmon"):
        assert replayed[name].status == live[name].status, name
    assert replayed["board"].value == live["board"].value
    assert replayed["onnxruntime"].status == "info" and "on the device: ok 1.16.3" in replayed["onnxruntime"].value
    assert replayed["python"].value == live["python"].value
    lines: List[str] = []
    doc.doctor("cpu", replay_dir=str(out), out=lines.append)
    assert "(replay of" in lines[0]


def test_capture_round_trip_of_a_device_capture(tmp_path, fast_libs):
    """capture() of a replayed capture writes the same layout, which replays to the same facts."""
    profile = load_profile("jetson")
    out = capture(tmp_path / "again", profile, System.replay(JP5))
    for rel in ("root/etc/nv_tegra_release", "commands/nvpmodel.txt", "commands/tegrastats.txt",
                "root/sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4/curr3_input"):
        assert (out / rel).read_text() == (JP5 / rel).read_text(), rel
    checks = by_name(run_checks(profile, System.replay(out)))
    assert checks["power ina3221"].data["total_w"] == pytest.approx(JP5_INA_W)
    assert checks["jetson_clocks"].data["locked"] and checks["nvpmodel"].ok
    assert json.loads((out / "capture.json").read_text())["commands"]["vcgencmd_throttled"]["why"]


def test_capture_records_tegrastats_lines(tmp_path, monkeypatch, fast_libs):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "tegrastats"
    line = (JP5 / "commands" / "tegrastats.txt").read_text().splitlines()[0]
    script.write_text(f"#!{sys.executable}\nimport sys, time\n"
                      f"for _ in range(100):\n    print({line!r}, flush=True)\n    time.sleep(0.05)\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    out = capture(tmp_path / "cap", load_profile("jetson"), System(root=tmp_path / "empty"), seconds=0.4)
    lines = (out / "commands" / "tegrastats.txt").read_text().splitlines()
    assert 2 <= len(lines) < 100 and lines[0] == line
