"""jetson-stats as a power meter (``power_meter = "jtop"``) against a stand-in ``jtop`` module that
computes power the way jetson-stats does, on the AGX Xavier capture's INA3221 files; and doctor
printing it side by side with the INA3221 reader and tegrastats."""
from __future__ import annotations

import math
import sys
import time
import types
from pathlib import Path

import pytest

from harness.devices import load_profile
from harness.doctor import System, power_checks
from harness.power import CANDIDATES, PowerSampler, make_meter, select_auto
from harness.power.jtop import INSTALL, SERVICE, JtopMeter, rails_mw

from .helpers import JP5, JP5_INA_W, by_name


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
