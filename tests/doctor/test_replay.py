"""Replay of every device capture under tests/fixtures/devices/ through the real parsers and meters:
the facts each capture's files give (hand-computed where they are numbers), and a rail that is not
readable."""
from __future__ import annotations

import json

import pytest

from harness import doctor as doc
from harness.devices import load_profile
from harness.doctor import (
    System,
    exit_code,
    format_lines,
    parse_jetson_clocks,
    parse_nvpmodel,
    parse_throttled,
    parse_trtexec_version,
    parse_vc_temp,
    power_checks,
    run_checks,
)
from harness.power.tegrastats import parse_line

from .helpers import DEVICES, JP4, JP4_INA_W, JP5, JP5_INA_W, PI, by_name


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
