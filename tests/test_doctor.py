"""doctor: parsers on published outputs, replay of every device capture under tests/fixtures/devices/
through the real parsers and meters, doctor run live here, capture + replay here, and the jtop meter
(a fake ``jtop`` module) side by side with the INA3221 reader on a fixture tree."""
from __future__ import annotations

import json
import math
import stat
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Dict, List

import pytest

from harness import doctor as doc
from harness.devices import load_profile
from harness.doctor import (Check, System, capture, cpu_features, exit_code, format_lines, parse_jetson_clocks,
                            parse_l4t, parse_nvpmodel, parse_throttled, parse_trtexec_version, parse_vc_temp,
                            power_checks, run_checks)
from harness.power import CANDIDATES, PowerSampler, make_meter, select_auto
from harness.power.jtop import INSTALL, SERVICE, JtopMeter, rails_mw
from harness.power.tegrastats import parse_line

DEVICES = Path(__file__).parent / "fixtures" / "devices"
JP5 = DEVICES / "jetson-agx-xavier-jp5"
JP4 = DEVICES / "jetson-agx-xavier-jp4"
PI = DEVICES / "rpi400-bookworm"
ROOT = Path(__file__).resolve().parents[1]

# Hand-computed from the fixture files: sum of in{N}_input (mV) x curr{N}_input (mA) / 1e6 per rail.
JP5_INA_W = (19104 * (24 + 24 + 65 + 0 + 16) + 4968 * 557) / 1e6        # 5.231592 W
JP4_INA_W = (0 + 305 + 1088 + 0 + 152 + 1087) / 1000.0                   # in_power{N}_input, mW


def by_name(checks: List[Check]) -> Dict[str, Check]:
    return {c.name: c for c in checks}


def canned_libraries(names=doc.LIBRARIES):
    return {"torch": {"ok": False, "missing": True, "error": "torch is not installed"},
            "onnxruntime": {"ok": True, "version": "1.16.3", "providers": ["CPUExecutionProvider"]},
            "tensorrt": {"ok": False, "missing": True, "error": "tensorrt is not installed"},
            "pycuda": {"ok": False, "missing": True, "error": "pycuda is not installed"}}


@pytest.fixture
def fast_libs(monkeypatch):
    """Library probes are child processes (torch alone takes seconds); most tests do not need them."""
    monkeypatch.setattr(doc, "probe_libraries", canned_libraries)


# --- parsers on published outputs ----------------------------------------------------------------

def test_parse_l4t_releases():
    jp51 = parse_l4t("# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64, "
                     "DATE: Tue Jan 24 23:38:33 UTC 2023")
    assert jp51["release"] == "35.2.1" and jp51["jetpack"] == "5.1" and jp51["tensorrt"] == "8.5.2"
    assert parse_l4t("# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref")["jetpack"] == "5.1.1"
    assert parse_l4t("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref")["jetpack"] == "5.1.2"
    assert parse_l4t("# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t186ref")["jetpack"] == "4.6"
    assert parse_l4t("# R35 (release), REVISION: 1.0, GCID: 1")["release"] == "35.1.0"
    assert parse_l4t("# R99 (release), REVISION: 1")["jetpack"] is None
    assert parse_l4t("garbage") is None and parse_l4t(None) is None


def test_parse_nvpmodel_forms():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0, "fan": None}
    jp4 = parse_nvpmodel("NV Fan Mode:cool\nNV Power Mode: MODE_30W_4CORE\n5\n")
    assert jp4 == {"mode": "MODE_30W_4CORE", "id": 5, "fan": "cool"}
    # A non-root query that could not read some EMC caps still names the mode (published AGX Xavier output).
    noisy = ("NV Fan Mode:quiet\nNV Power Mode: MODE_15W_DESKTOP\n7\n"
             "NVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13\n")
    assert parse_nvpmodel(noisy)["id"] == 7
    assert parse_nvpmodel("command not found") is None


NANO_UNLOCKED = """SOC family:tegra210  Machine:jetson-nano
Online CPUs: 0-3
CPU Cluster Switching: Disabled
cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=153600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0
Fan: speed=0
NV Power Mode: MAXN
"""
NANO_LOCKED = """cpu0: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 CurrentFreq=1479000 IdleStates: WFI=0 c7=0
GPU MinFreq=921600000 MaxFreq=921600000 CurrentFreq=921600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=1
Fan: PWM=0
NV Power Mode: MAXN
"""
ORIN_NANO = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super
Online CPUs: 0-5
cpu0:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1344000 CurrentFreq=729600 IdleStates: WFI=1 c7=1 
cpu1:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1344000 CurrentFreq=729600 IdleStates: WFI=1 c7=1 
GPU MinFreq=306000000 MaxFreq=918000000 CurrentFreq=306000000
Active GPU TPCs: 4
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
FAN Dynamic Speed Control=nvfancontrol hwmon0_pwm1=69
NV Power Mode: 25W
"""


def test_parse_jetson_clocks_published_outputs():
    unlocked = parse_jetson_clocks(NANO_UNLOCKED)
    assert not unlocked["locked"] and not unlocked["cpu_locked"] and not unlocked["gpu_locked"]
    assert not unlocked["emc_locked"]  # current == max but no override: the governor may lower it
    assert unlocked["mode"] == "MAXN" and unlocked["online_cpus"] == 2
    locked = parse_jetson_clocks(NANO_LOCKED)
    assert locked["locked"] and locked["emc"]["min"] == 204000000  # jetson_clocks leaves the EMC minimum
    orin = parse_jetson_clocks(ORIN_NANO)  # two blanks after "cpu0:", trailing blank, extra lines
    assert orin["online_cpus"] == 2 and not orin["locked"] and orin["mode"] == "25W"
    assert parse_jetson_clocks("Error: Run this script(/usr/bin/jetson_clocks) as a root user") is None


def test_parse_throttled_temp_trtexec_and_features():
    t = parse_throttled("throttled=0x50000")
    assert t["value"] == 0x50000 and t["occurred"] and not t["now"] and t["under_voltage"]
    assert t["flags"] == ["under-voltage has occurred", "throttling has occurred"]
    now = parse_throttled("throttled=0x50005")
    assert now["now"] and now["flags"][:2] == ["under-voltage now", "throttled now"]
    assert parse_throttled("throttled=0x0")["flags"] == [] and parse_throttled("VCHI init failed") is None
    assert parse_vc_temp("temp=45.3'C") == 45.3 and parse_vc_temp("") is None
    assert parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --help") == "8.5.2"
    assert parse_trtexec_version("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b20] # trtexec") == "10.3.0"
    assert parse_trtexec_version("usage") is None
    assert cpu_features("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n") == \
        ["fp", "asimd", "evtstrm", "crc32", "cpuid"]
    assert "avx2" in cpu_features("flags\t\t: fpu sse avx2 fma\n")


def test_format_lines_and_exit_code():
    checks = [Check("python", "ok", "3.8.10 (aarch64)", required=True),
              Check("tensorrt", "absent", "not importable", "sudo apt install python3-libnvinfer", required=False),
              Check("governor", "wrong", "ondemand", "echo performance | sudo tee ...", required=True)]
    lines = format_lines(checks)
    assert lines[0] == "ok      python          3.8.10 (aarch64)"
    assert lines[1] == "absent  tensorrt        not importable -> fix: sudo apt install python3-libnvinfer"
    assert exit_code(checks) == 1 and exit_code(checks[:2]) == 0
    assert exit_code([Check("x", "info", "not in capture", required=True)]) == 1
    with pytest.raises(ValueError):
        Check("x", "fine", "?")


# --- replay of the device captures -----------------------------------------------------------------

def test_replay_agx_xavier_jetpack5():
    checks = by_name(run_checks(load_profile("jetson"), System.replay(JP5)))
    assert checks["python"].ok and checks["python"].value == "3.8.10 (aarch64)"
    l4t = checks["l4t"]
    assert l4t.ok and l4t.data["release"] == "35.2.1" and l4t.data["jetpack"] == "5.1"
    assert checks["nvpmodel"].ok and checks["nvpmodel"].data == {"mode": "MAXN", "id": 0, "fan": None}
    clocks = checks["jetson_clocks"]
    assert clocks.ok and clocks.data["locked"] and clocks.data["online_cpus"] == 8
    assert checks["trtexec"].data["version"] == "8.5.2"
    assert checks["cuda device"].ok and "gv11b" in checks["cuda device"].value
    ina = checks["power ina3221"]
    assert ina.ok and ina.data["total_w"] == pytest.approx(JP5_INA_W)
    assert set(ina.data["rails_w"]) == {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}  # in7 "sum of shunt" skipped
    assert ina.data["rails_w"]["SYS5V"] == pytest.approx(4968 * 557 / 1e6)
    tegra = checks["power tegrastats"]
    assert tegra.ok and tegra.data["total_w"] == pytest.approx(5.258) and tegra.data["lines"] == 3
    assert checks["power jtop"].status == "info" and "not in capture" in checks["power jtop"].value
    assert checks["power compare"].data["totals_w"] == {"ina3221": pytest.approx(JP5_INA_W),
                                                        "tegrastats": pytest.approx(5.258)}
    # Library checks need this process on the device: the capture's own results are shown.
    assert checks["tensorrt"].status == "info" and "on the device: ok 8.5.2.2" in checks["tensorrt"].value
    assert checks["torch"].value == "not in capture"
    assert exit_code(list(checks.values())) == 0


def test_replay_agx_xavier_jetpack4_iio():
    checks = by_name(run_checks(load_profile("jetson"), System.replay(JP4)))
    ina = checks["power ina3221"]
    assert ina.ok and ina.data["total_w"] == pytest.approx(JP4_INA_W)
    assert ina.data["rails_w"]["SOC"] == pytest.approx(1.088)
    assert checks["power tegrastats"].data["total_w"] == pytest.approx(2.641)  # first JetPack 4 line
    nvp = checks["nvpmodel"]
    assert nvp.status == "wrong" and nvp.data["id"] == 5 and "sudo nvpmodel -m 0" in nvp.fix
    clocks = checks["jetson_clocks"]
    assert clocks.status == "wrong" and not clocks.data["locked"] and "sudo jetson_clocks" in clocks.fix
    assert clocks.data["online_cpus"] == 4 and not clocks.data["gpu_locked"]
    assert checks["l4t"].status == "wrong" and checks["l4t"].data["jetpack"] == "4.6"
    assert checks["trtexec"].data["version"] == "8.0.1"
    failing = [c.name for c in checks.values() if c.required and not c.ok]
    assert failing == ["l4t", "nvpmodel", "jetson_clocks"]


def test_replay_raspberry_pi_400():
    checks = by_name(run_checks(load_profile("rpi"), System.replay(PI)))
    thr = checks["throttled"]
    assert thr.status == "wrong" and thr.required and thr.data["value"] == 0x50000
    assert thr.data["flags"] == ["under-voltage has occurred", "throttling has occurred"]
    assert "5.1 V" in thr.fix and "reboot" in thr.fix
    gov = checks["governor"]
    assert gov.status == "wrong" and gov.data["governors"] == {"ondemand": ["cpu0", "cpu1", "cpu2", "cpu3"]}
    assert "performance" in gov.fix
    temp = checks["temperature"]
    assert temp.ok and temp.data["zones_c"]["cpu-thermal"] == pytest.approx(45.277)
    assert temp.data["zones_c"]["vcgencmd"] == pytest.approx(45.3)
    assert checks["board"].ok and checks["board"].value == "Raspberry Pi 400 Rev 1.0"
    feat = checks["cpu features"]
    assert feat.ok and "asimddp (int8 dot product) no" in feat.value
    assert checks["power hwmon"].status == "absent" and "power*_input" in checks["power hwmon"].value
    assert "nvpmodel" not in checks and "l4t" not in checks
    assert exit_code(list(checks.values())) == 1


@pytest.mark.parametrize("folder", sorted(p.name for p in DEVICES.iterdir() if p.is_dir()))
def test_every_capture_replays_through_the_parsers(folder):
    path = DEVICES / folder
    meta = json.loads((path / "capture.json").read_text())
    assert meta["format"] == doc.CAPTURE_FORMAT and (path / "root").is_dir()
    assert folder in (DEVICES / "SOURCES.md").read_text(), "every capture says where its files come from"
    commands = path / "commands"
    for name in list(doc.COMMANDS) + [doc.TEGRASTATS]:
        entry = meta["commands"][name]
        assert (commands / f"{name}.txt").is_file() != ("why" in entry), name
    parsers = {"nvpmodel": parse_nvpmodel, "jetson_clocks": parse_jetson_clocks, "vcgencmd_throttled": parse_throttled,
               "vcgencmd_temp": parse_vc_temp, "trtexec": parse_trtexec_version}
    for name, parse in parsers.items():
        if (commands / f"{name}.txt").is_file():
            assert parse((commands / f"{name}.txt").read_text()) is not None, name
    if (commands / "tegrastats.txt").is_file():
        lines = [ln for ln in (commands / "tegrastats.txt").read_text().splitlines() if ln.strip()]
        assert lines and all(parse_line(ln).rails_mw for ln in lines)
    checks = run_checks(load_profile(meta["profile"]), System.replay(path))
    assert all(c.status in doc.STATUSES for c in checks)
    assert by_name(checks)["python"].ok
    # The text report and the JSON record both render.
    assert len(format_lines(checks)) == len(checks)
    json.dumps([c.to_dict() for c in checks])


# --- live here ------------------------------------------------------------------------------------

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


def test_capture_here_then_replay(tmp_path, fast_libs):
    profile = load_profile("cpu")
    live = by_name(run_checks(profile, System()))
    out = capture(tmp_path / "cap", profile, seconds=0.2)
    meta = json.loads((out / "capture.json").read_text())
    assert meta["profile"] == "cpu" and meta["host"]["python"] == doc.platform.python_version()
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


def test_not_readable_rail_says_permission_denied(tmp_path, monkeypatch):
    import harness.power.ina3221 as ina_mod
    from harness.power import base

    real = base.read_number

    def denied(path):
        if str(path).endswith("curr1_input"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(base, "read_number", denied)
    monkeypatch.setattr(ina_mod, "read_number", denied)
    checks = by_name(power_checks(load_profile("jetson"), System(root=JP5 / "root", commands_dir=JP5 / "commands",
                                                                 live=False)))
    ina = checks["power ina3221"]
    assert ina.status == "wrong" and "not readable by this user" in ina.value and "sudo chmod a+r" in ina.fix


def test_doctor_module_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import harness.doctor, harness.power.jtop\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "assert 'tensorrt' not in sys.modules and 'onnxruntime' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# --- jtop (jetson-stats) ----------------------------------------------------------------------------

def fake_jtop(root: Path = None, fail: str = "", version: str = "4.2.12", vdd_in: bool = False, v3: bool = False):
    """A stand-in for jetson-stats' ``jtop`` package: power computed the way jetson-stats does
    (``jtop/core/power.py``: int(mV * mA / 1000) per INA3221 hwmon channel, total = VDD_IN or the sum)."""
    mod = types.ModuleType("jtop")

    class JtopException(Exception):
        pass

    state = {"closed": 0, "ok": 0}

    class jtop:  # noqa: N801 - the real class name
        def __init__(self, interval=1.0):
            self.interval = interval

        def start(self):
            if fail == "service":
                raise JtopException("The jtop.service is not active. Please run:\nsudo jtop --install-service")

        def ok(self, spin=False):
            state["ok"] += 1
            time.sleep(self.interval)
            return True

        def close(self):
            state["closed"] += 1

        @property
        def power(self):
            rails = {}
            for label in sorted((root / "sys/bus/i2c/drivers/ina3221").glob("*/hwmon/hwmon*/in[123]_label")):
                n = label.name[2]
                volt = int((label.parent / f"in{n}_input").read_text())
                curr = int((label.parent / f"curr{n}_input").read_text())
                power = int(volt * (float(curr) / 1000))
                rails[label.read_text().strip()] = {"type": "INA3221", "online": True, "volt": volt, "curr": curr,
                                                    "power": power, "avg": power}
            if v3:
                return ({"cur": sum(r["power"] for r in rails.values()), "avg": 0},
                        {k: {"cur": v["power"], "avg": v["avg"]} for k, v in rails.items()})
            if vdd_in:
                total = dict(rails.pop("GPU"), name="VDD_IN")
                return {"rail": rails, "tot": total}
            return {"rail": rails, "tot": {"power": sum(r["power"] for r in rails.values()),
                                           "avg": sum(r["avg"] for r in rails.values())}}

    mod.jtop, mod.JtopException, mod.__version__, mod.state = jtop, JtopException, version, state
    return mod


JP5_JTOP_MW = sum(int(mv * (ma / 1000)) for mv, ma in ((19104, 24), (19104, 24), (19104, 65), (19104, 0),
                                                         (19104, 16), (4968, 557)))


def test_jtop_meter_reads_rails_in_watts(monkeypatch):
    fake = fake_jtop(JP5 / "root")
    monkeypatch.setitem(sys.modules, "jtop", fake)
    meter = make_meter("jtop")
    assert isinstance(meter, JtopMeter)
    ok, why = meter.probe()
    assert ok and "jetson-stats 4.2.12: 6 rails" in why and "sum of all rails" in why
    r = meter.read()
    assert r.watts["GPU"] == pytest.approx(458 / 1000) and r.watts["SYS5V"] == pytest.approx(2767 / 1000)
    assert set(r.total_rail) == set(r.watts) == {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}
    assert r.total_w() == pytest.approx(JP5_JTOP_MW / 1000) and r.extras["jtop_total_w"] == pytest.approx(r.total_w())
    assert meter.info()["jetson_stats"] == "4.2.12"
    meter.close()
    meter.close()
    assert fake.state["closed"] == 1


def test_jtop_vdd_in_total_and_v3_shape():
    root = JP5 / "root"
    rails, total = rails_mw(fake_jtop(root, vdd_in=True).jtop().power)
    assert "VDD_IN" in rails and "GPU" not in rails and total == rails["VDD_IN"]
    rails3, total3 = rails_mw(fake_jtop(root, v3=True).jtop().power)
    assert set(rails3) == {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"} and total3 == JP5_JTOP_MW
    assert rails_mw(None) == ({}, None)


def test_jtop_vdd_in_is_the_total(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop(JP5 / "root", vdd_in=True))
    meter = JtopMeter()
    assert meter.probe()[0]
    r = meter.read()
    assert r.total_rail == ("VDD_IN",) and r.total_w() == pytest.approx(458 / 1000)
    meter.close()


def test_jtop_absent_and_service_down(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", None)
    ok, why = JtopMeter().probe()
    assert not ok and why == INSTALL
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop(JP5 / "root", fail="service"))
    ok, why = JtopMeter().probe()
    assert not ok and why.startswith(SERVICE) and "sudo systemctl restart jtop.service" in why
    assert "jtop.service is not active" in why


def test_jtop_in_auto_after_the_harness_readers(monkeypatch, tmp_path):
    assert tuple(CANDIDATES["jetson"]) == ("ina3221", "tegrastats", "jtop")
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop(JP5 / "root"))
    # The harness's own readers win where they work ...
    assert select_auto(device="jetson", root=str(JP5 / "root" / "sys")).name == "ina3221"
    # ... jtop serves where they do not.
    meter = select_auto(device="jetson", root=str(tmp_path), path=str(tmp_path / "no-tegrastats"))
    assert isinstance(meter, JtopMeter)
    assert set(meter.notes["auto"]["failed"]) == {"ina3221", "tegrastats"}
    meter.close()


def test_jtop_through_the_sampler(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop(JP5 / "root"))
    meter = JtopMeter(interval=0.02)
    assert meter.pace_s == pytest.approx(0.02)
    with PowerSampler(meter) as sampler:
        with sampler.window():
            time.sleep(0.1)
    s = sampler.summary()
    assert s.reason == "" and s.mean_w == pytest.approx(JP5_JTOP_MW / 1000)


def test_doctor_shows_jtop_beside_ina3221_and_tegrastats(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop(JP5 / "root"))
    system = System(root=JP5 / "root", commands_dir=JP5 / "commands", live=True)
    checks = by_name(power_checks(load_profile("jetson"), system))
    assert checks["power ina3221"].data["total_w"] == pytest.approx(JP5_INA_W)
    jt = checks["power jtop"]
    assert jt.ok and jt.data["total_w"] == pytest.approx(JP5_JTOP_MW / 1000)
    cmp_ = checks["power compare"]
    assert set(cmp_.data["totals_w"]) == {"ina3221", "tegrastats", "jtop"}
    assert cmp_.data["spread_pct"] < 1.0
    assert "ina3221 5.23 W | tegrastats 5.26 W | jtop 5.23 W" in cmp_.value
    assert math.isfinite(cmp_.data["spread_pct"])
