"""Power stage: meter parsers on fixture files and fake sysfs trees, and window-exact integration."""
from __future__ import annotations

import math
import os
import stat
import sys
import time
import types
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.power import (
    ExternalLogMeter,
    HwmonMeter,
    Ina3221Meter,
    Meter,
    MeterError,
    NoneMeter,
    NvmlMeter,
    PowerSampler,
    PowerSummary,
    RaplMeter,
    Reading,
    TegrastatsMeter,
    device_kind,
    integrate_energy,
    integrate_power,
    load_log,
    make_meter,
    parse_line,
    select_auto,
)
from harness.power.tegrastats import to_reading

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "power"
XAVIER_RAILS = ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")


def lines(name):
    return [ln for ln in (FIXTURES / name).read_text().splitlines() if ln.strip()]


def write(root: Path, rel: str, text) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")
    return path


# --- tegrastats parsing ---------------------------------------------------------------------------

def test_tegrastats_jp4_agx_xavier_sums_the_six_rails():
    first, busy, _ = lines("tegrastats_jp4_agx_xavier.txt")
    p = parse_line(first)
    assert p.rails_mw == {"GPU": 0, "CPU": 311, "SOC": 1087, "CV": 0, "VDDRQ": 155, "SYS5V": 1088}
    assert p.fmt.startswith("jetpack4")
    assert "RAM" not in p.rails_mw and "SWAP" not in p.rails_mw
    assert p.temps_c["Tdiode"] == 37.25 and p.temps_c["thermal"] == 35.5
    assert p.extras == {"emc_util_pct": 0, "gr3d_util_pct": 0}
    r = to_reading(p, t=1.0, wall=2.0)
    assert r.total_rail == XAVIER_RAILS
    assert r.total_w() == pytest.approx(2.641)
    assert r.watts["SOC"] == pytest.approx(1.087)
    pb = parse_line(busy)
    assert pb.rails_mw["GPU"] == 18401 and pb.avg_mw["GPU"] == 18525
    assert pb.extras["gr3d_util_pct"] == 95 and pb.extras["gr3d_freq_mhz"] == 1377
    assert pb.extras["emc_freq_mhz"] == 2133
    assert to_reading(pb, 0, 0).total_w() == pytest.approx(32.850)


def test_tegrastats_jp5_formats_and_vdd_in_preference():
    x1, x2 = lines("tegrastats_jp5_agx_xavier.txt")
    p = parse_line(x1)
    assert p.fmt.startswith("jetpack5")
    assert p.rails_mw == {"GPU": 467, "CPU": 467, "SOC": 1245, "CV": 0, "VDDRQ": 311, "SYS5V": 2768}
    assert to_reading(p, 0, 0).total_w() == pytest.approx(5.258)
    p2 = parse_line(x2)
    assert p2.extras["gr3d_freq_mhz"] == 1377 and p2.avg_mw["GPU"] == 7950
    assert to_reading(p2, 0, 0).total_w() == pytest.approx(27.158)

    orin, orin_r36 = lines("tegrastats_jp5_agx_orin.txt")
    po = parse_line(orin)
    assert "NC" not in po.rails_mw
    assert po.rails_mw == {"VDD_GPU_SOC": 2399, "VDD_CPU_CV": 400, "VIN_SYS_5V0": 4032, "VDDQ_VDD2_1V8AO": 301}
    assert "CV0" not in po.temps_c and po.temps_c["tj"] == 42.593  # -256C = zone off
    assert to_reading(po, 0, 0).total_w() == pytest.approx(7.132)
    p36 = parse_line(orin_r36)  # runs of blanks between fields
    assert p36.rails_mw == {"VDD_GPU_SOC": 3205, "VDD_CPU_CV": 4405, "VIN_SYS_5V0": 4767}
    assert p36.extras["gr3d_freq_mhz"] == 305

    totals = []
    for ln in lines("tegrastats_jp5_vdd_in.txt"):
        r = to_reading(parse_line(ln), 0, 0)
        assert r.total_rail == ("VDD_IN",)
        totals.append(r.total_w())
    assert totals == pytest.approx([2.763, 4.319, 5.0])


def test_tegrastats_jp4_input_rails_and_configured_rails():
    nx, nano, tx2 = lines("tegrastats_jp4_other_modules.txt")
    assert to_reading(parse_line(nx), 0, 0).total_rail == ("VDD_IN",)
    assert to_reading(parse_line(nano), 0, 0).total_w() == pytest.approx(1.022)  # POM_5V_IN
    assert to_reading(parse_line(tx2), 0, 0).total_w() == pytest.approx(3.056)   # VDD_IN mid-line
    p = parse_line(lines("tegrastats_jp4_agx_xavier.txt")[0])
    assert to_reading(p, 0, 0, rails=["GPU", "CPU"]).total_w() == pytest.approx(0.311)
    with pytest.raises(HarnessError, match="VDD_IN not found"):
        to_reading(p, 0, 0, rails=["VDD_IN"])


def test_tegrastats_line_without_rails():
    p = parse_line("RAM 2257/31919MB (lfb 6936x4MB) SWAP 0/15959MB (cached 0MB) IRAM 0/252kB(lfb 252kB) APE 150")
    assert p.rails_mw == {}


def fake_tegrastats(tmp_path: Path, fixture: str, repeat: bool = True) -> Path:
    """An executable stand-in for tegrastats that prints fixture lines every --interval ms."""
    script = tmp_path / "tegrastats"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1]) if '--interval' in sys.argv else 1000\n"
        f"rows = [l for l in open({str(FIXTURES / fixture)!r}) if l.strip()]\n"
        "while True:\n"
        "    for row in rows:\n"
        "        time.sleep(ms / 1000.0)\n"
        "        sys.stdout.write(row)\n"
        "        sys.stdout.flush()\n"
        f"    if not {repeat!r}:\n"
        "        break\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def test_tegrastats_subprocess_through_the_sampler(tmp_path):
    script = fake_tegrastats(tmp_path, "tegrastats_jp4_agx_xavier.txt")
    meter = make_meter({"type": "tegrastats", "path": str(script), "interval_ms": 40})
    assert isinstance(meter, TegrastatsMeter) and meter.probe()[0]
    with PowerSampler(meter) as sampler:
        with sampler.window():
            time.sleep(0.25)
    s = sampler.summary()
    assert s.reason == "" and s.ok
    assert s.samples >= 3
    assert 2.641 <= s.mean_w <= 32.85
    assert s.energy_j == pytest.approx(s.mean_w * s.duration_s)
    assert set(s.rails_mean_w) == set(XAVIER_RAILS)
    totals = {round(r.total_w(), 3) for r in sampler.readings}
    assert totals <= {2.641, 32.85, 3.346}
    info = sampler.info()
    assert info["interval_s"] == pytest.approx(0.04) and info["format"].startswith("jetpack4")
    assert meter._proc is None  # subprocess ended by stop()


def test_tegrastats_missing_binary_and_dead_process(tmp_path):
    ok, why = TegrastatsMeter(path=str(tmp_path / "nope" / "tegrastats")).probe()
    assert not ok and "no executable tegrastats" in why
    # A tegrastats that dies after a few lines: the later window is not bracketed -> NaN with the reason.
    script = fake_tegrastats(tmp_path, "tegrastats_jp5_agx_xavier.txt", repeat=False)
    sampler = PowerSampler(TegrastatsMeter(path=str(script), interval_ms=20), end_wait_s=0.5)
    with sampler:
        time.sleep(0.2)
        with sampler.window():
            time.sleep(0.01)
    s = sampler.summary()
    assert math.isnan(s.mean_w) and math.isnan(s.energy_j)
    assert "no sample after its end" in s.reason and "tegrastats exited" in s.reason


# --- INA3221 sysfs --------------------------------------------------------------------------------

def build_ina3221_jp4(root: Path):
    rails = {"1-0040/iio:device0": [("GPU", 19072, 80, 1525), ("CPU", 19072, 16, 305), ("SOC", 19072, 56, 1068)],
             "1-0041/iio:device1": [("CV", 19072, 0, 0), ("VDDRQ", 19072, 8, 152), ("SYS5V", 5000, 216, 1080)]}
    for dev, chans in rails.items():
        for n, (name, mv, ma, mw) in enumerate(chans):
            base = f"bus/i2c/drivers/ina3221x/{dev}"
            write(root, f"{base}/rail_name_{n}", name)
            write(root, f"{base}/in_power{n}_input", mw)
            write(root, f"{base}/in_current{n}_input", ma)
            write(root, f"{base}/in_voltage{n}_input", mv)
            write(root, f"{base}/crit_current_limit_{n}", "32760 ma")


def build_ina3221_jp5(root: Path, labels=("GPU", "CPU", "SOC"), second=("CV", "VDDRQ", "SYS5V")):
    values = [(19072, 80), (19072, 16), (19072, 56)]
    for dev, hw, names in (("1-0040", "hwmon3", labels), ("1-0041", "hwmon4", second)):
        base = f"bus/i2c/drivers/ina3221/{dev}/hwmon/{hw}"
        write(root, f"{base}/name", "ina3221")
        for n, name in enumerate(names, start=1):
            mv, ma = values[n - 1]
            write(root, f"{base}/in{n}_label", name)
            write(root, f"{base}/in{n}_input", mv)
            write(root, f"{base}/curr{n}_input", ma)
            write(root, f"{base}/in{n + 3}_input", 12)  # shunt voltage, no label
        write(root, f"{base}/in7_label", "sum of shunt voltages")
        write(root, f"{base}/in7_input", 40)
        write(root, f"{base}/curr4_input", 152)


def test_ina3221_jp4_iio(tmp_path):
    build_ina3221_jp4(tmp_path)
    meter = make_meter("ina3221", root=str(tmp_path))
    ok, why = meter.probe()
    assert ok, why
    r = meter.read()
    assert list(r.watts) == list(XAVIER_RAILS)
    assert r.watts["GPU"] == pytest.approx(1.525)
    assert r.total_rail == XAVIER_RAILS
    assert r.total_w() == pytest.approx((1525 + 305 + 1068 + 0 + 152 + 1080) / 1000)
    info = meter.info()
    assert info["driver"].startswith("ina3221x") and info["rails"]["SYS5V"][0].endswith("in_power2_input")


def test_ina3221_jp5_hwmon_power_is_mv_times_ma(tmp_path):
    build_ina3221_jp5(tmp_path)
    meter = Ina3221Meter(root=str(tmp_path))
    assert meter.probe()[0]
    r = meter.read()
    assert set(r.watts) == set(XAVIER_RAILS)  # in7 "sum of shunt voltages" skipped
    assert r.watts["GPU"] == pytest.approx(19072 * 80 / 1e6)
    assert r.watts["CPU"] == pytest.approx(19072 * 16 / 1e6)
    assert r.total_w() == pytest.approx(2 * 19072 * (80 + 16 + 56) / 1e6)


def test_ina3221_jp5_vdd_in_nc_and_configured_rails(tmp_path):
    build_ina3221_jp5(tmp_path, labels=("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"), second=("NC", "NC", "VDDQ"))
    r = Ina3221Meter(root=str(tmp_path)).read()
    assert "NC" not in r.watts and r.total_rail == ("VDD_IN",)
    assert r.total_w() == pytest.approx(19072 * 80 / 1e6)
    r2 = make_meter({"type": "ina3221", "rails": ["VDD_CPU_GPU_CV", "VDD_SOC"]}, root=str(tmp_path)).read()
    assert r2.total_w() == pytest.approx(19072 * (16 + 56) / 1e6)
    with pytest.raises(HarnessError, match="VDD_GPU not found"):
        make_meter({"type": "ina3221", "rails": "VDD_GPU"}, root=str(tmp_path)).probe()


def test_ina3221_absent(tmp_path):
    ok, why = Ina3221Meter(root=str(tmp_path)).probe()
    assert not ok and "no INA3221 rails" in why and "ina3221x" in why


# --- hwmon ----------------------------------------------------------------------------------------

def test_hwmon_power_ina219(tmp_path):
    write(tmp_path, "class/hwmon/hwmon0/name", "cpu_thermal")
    write(tmp_path, "class/hwmon/hwmon0/temp1_input", 45000)
    write(tmp_path, "class/hwmon/hwmon1/name", "ina219")
    write(tmp_path, "class/hwmon/hwmon1/power1_input", 2450000)  # uW
    write(tmp_path, "class/hwmon/hwmon1/in1_input", 5100)
    write(tmp_path, "class/hwmon/hwmon1/curr1_input", 480)
    meter = make_meter("hwmon", root=str(tmp_path))
    ok, why = meter.probe()
    assert ok, why
    r = meter.read()
    assert meter.mode == "power" and r.watts == {"ina219/power1": pytest.approx(2.45)}
    assert r.total_w() == pytest.approx(2.45)
    assert meter.info()["chips"] == ["ina219"]


def test_hwmon_labels_average_fallback_and_chip_filter(tmp_path):
    write(tmp_path, "class/hwmon/hwmon2/name", "amdgpu")
    write(tmp_path, "class/hwmon/hwmon2/power1_average", 31000000)
    write(tmp_path, "class/hwmon/hwmon2/power1_label", "PPT")
    write(tmp_path, "class/hwmon/hwmon3/name", "ina226")
    write(tmp_path, "class/hwmon/hwmon3/power1_input", 6000000)
    both = HwmonMeter(root=str(tmp_path)).read()
    assert both.watts == {"amdgpu/PPT": pytest.approx(31.0), "ina226/power1": pytest.approx(6.0)}
    only = HwmonMeter(root=str(tmp_path), sensors=["ina226"]).read()
    assert only.total_w() == pytest.approx(6.0)


def test_hwmon_energy_counters(tmp_path):
    base = "class/hwmon/hwmon0"
    write(tmp_path, f"{base}/name", "amd_energy")
    for idx, label, uj in ((1, "Ecore000", 1000000), (2, "Ecore001", 2000000), (17, "Esocket0", 10000000)):
        write(tmp_path, f"{base}/energy{idx}_input", uj)
        write(tmp_path, f"{base}/energy{idx}_label", label)
    meter = HwmonMeter(root=str(tmp_path))
    assert meter.probe()[0] and meter.mode == "energy"
    r1 = meter.read()
    write(tmp_path, f"{base}/energy17_input", 13500000)
    r2 = meter.read()
    assert r1.total_rail == ("amd_energy/Esocket0",)  # per-core counters are inside the socket's
    assert r2.total_energy_j() - r1.total_energy_j() == pytest.approx(3.5)


def test_hwmon_absent(tmp_path):
    ok, why = HwmonMeter(root=str(tmp_path)).probe()
    assert not ok and "power*_input" in why


# --- RAPL -----------------------------------------------------------------------------------------

MAX_RANGE = 262143328850


def build_rapl(root: Path, package_uj=1000000):
    write(root, "class/powercap/intel-rapl/enabled", 1)  # the control type, not a zone
    zones = {"intel-rapl:0": ("package-0", package_uj), "intel-rapl:0:0": ("core", 400000),
             "intel-rapl:0:1": ("uncore", 1000), "intel-rapl:0:2": ("dram", 300000), "intel-rapl:1": ("psys", 5000000)}
    for zone, (name, uj) in zones.items():
        write(root, f"class/powercap/{zone}/name", name)
        write(root, f"class/powercap/{zone}/energy_uj", uj)
        write(root, f"class/powercap/{zone}/max_energy_range_uj", MAX_RANGE)
    write(root, "class/powercap/intel-rapl-mmio:0/name", "package-0")
    write(root, "class/powercap/intel-rapl-mmio:0/energy_uj", 7)


def test_rapl_domains_total_and_wrap_around(tmp_path):
    build_rapl(tmp_path, package_uj=MAX_RANGE - 1000000)
    meter = make_meter("rapl", root=str(tmp_path))
    ok, why = meter.probe()
    assert ok, why
    r1 = meter.read()
    assert set(r1.energy_j) == {"package-0", "package-0/core", "package-0/uncore", "package-0/dram", "psys"}
    assert r1.total_rail == ("package-0", "package-0/dram")  # psys and core/uncore would double count
    # Between two reads the package counter passes max_energy_range_uj and restarts near 0.
    write(tmp_path, "class/powercap/intel-rapl:0/energy_uj", 4000000)
    write(tmp_path, "class/powercap/intel-rapl:0:2/energy_uj", 800000)
    r2 = meter.read()
    assert r2.energy_j["package-0"] - r1.energy_j["package-0"] == pytest.approx(5.0)
    assert r2.total_energy_j() - r1.total_energy_j() == pytest.approx(5.5)
    assert meter.info()["wraps_seen"] == 1
    only_pkg = make_meter({"type": "rapl", "rails": ["package-0"]}, root=str(tmp_path))
    assert only_pkg.read().total_rail == ("package-0",)
    with pytest.raises(HarnessError, match="domain\\(s\\) package-1 not found"):
        PowerSampler(make_meter({"type": "rapl", "rails": "package-1"}, root=str(tmp_path))).start()


def test_rapl_root_only_and_absent(tmp_path, monkeypatch):
    ok, why = RaplMeter(root=str(tmp_path / "none")).probe()
    assert not ok and "intel-rapl:0/energy_uj" in why and "RAPL" in why
    build_rapl(tmp_path)
    import harness.power.rapl as rapl_mod

    real = rapl_mod.read_number

    def denied(path):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "read_number", denied)
    ok, why = RaplMeter(root=str(tmp_path)).probe()
    assert not ok and "root only" in why and "sudo chmod a+r" in why


# --- NVML (fake module) ---------------------------------------------------------------------------

def fake_pynvml(energy_supported=True):
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    state = {"mj": 1000000, "calls": 0, "shutdown": 0}

    def energy(handle):
        if not energy_supported:
            raise NVMLError("Not Supported")
        state["mj"] += 2500
        return state["mj"]

    mod.NVMLError = NVMLError
    mod.nvmlInit = lambda: None
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    mod.nvmlDeviceGetHandleByIndex = lambda i: ("gpu", i) if i == 0 else (_ for _ in ()).throw(NVMLError("Invalid"))
    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    mod.nvmlDeviceGetPowerUsage = lambda h: 123456  # mW
    mod.nvmlDeviceGetName = lambda h: b"NVIDIA GeForce RTX 3090"
    mod.nvmlSystemGetDriverVersion = lambda: "535.104.05"
    mod.state = state
    return mod


def test_nvml_energy_counter(monkeypatch):
    from harness.power import nvml

    monkeypatch.setattr(nvml, "_COUNTER_PERIOD", {})
    fake = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = make_meter("nvml")
    assert meter.probe() == (True, "NVML total-energy counter of GPU 0") and meter.mode == "energy"
    r1, r2 = meter.read(), meter.read()
    assert r2.total_energy_j() - r1.total_energy_j() == pytest.approx(2.5)
    assert meter.info()["gpu"] == "NVIDIA GeForce RTX 3090" and meter.info()["driver"] == "535.104.05"
    meter.close()
    assert fake.state["shutdown"] == 1


def test_nvml_counter_period_sets_the_minimum_window(monkeypatch):
    """A counter the driver steps every 100 ms (read every simulated 1 ms): its period is 100 ms, and the meter
    asks for windows of ten of them; a counter that never moves gives no period and a 2 s minimum."""
    from harness.power import nvml

    now = [0.0]

    def read():
        now[0] += 0.001
        return 1000 + 25 * int(now[0] / 0.1)

    assert nvml.counter_period(read, clock=lambda: now[0]) == pytest.approx(0.1, abs=0.002)
    assert nvml.counter_period(lambda: 5.0, limit_s=0.05) is None
    monkeypatch.setattr(nvml, "_COUNTER_PERIOD", {0: 0.1})
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    meter = NvmlMeter()
    assert meter.probe()[0] and meter.min_window_s == pytest.approx(1.0) and meter.info()["counter_update_s"] == 0.1
    monkeypatch.setattr(nvml, "_COUNTER_PERIOD", {0: None})
    meter = NvmlMeter()
    assert meter.probe()[0] and meter.min_window_s == 2.0 and "no update seen" in meter.info()["counter_update_s"]


def test_nvml_power_fallback_missing_module_and_bad_index(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy_supported=False))
    meter = NvmlMeter()
    assert meter.probe()[0] and meter.mode == "power"
    assert meter.read().total_w() == pytest.approx(123.456)
    assert "not supported" in meter.info()["energy_counter"]
    ok, why = NvmlMeter(index=3).probe()
    assert not ok and "no GPU 3" in why
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    ok, why = NvmlMeter().probe()
    assert not ok and "pip install nvidia-ml-py" in why


# --- external log ---------------------------------------------------------------------------------

def test_external_log_window_by_wall_clock(tmp_path):
    log = tmp_path / "usb_meter.csv"
    t0 = 1700000000.0
    rows = ["timestamp,watts"] + [f"{t0 + k:.3f},{2.0 + k:.3f}" for k in range(6)]  # P = 2 + (t - t0)
    log.write_text("\n".join(rows) + "\n")
    times, watts = load_log(str(log))
    assert len(times) == 6 and watts[0] == 2.0
    meter = make_meter(f"external:{log}")
    assert isinstance(meter, ExternalLogMeter) and meter.probe()[0]
    s = meter.summarize(t0 + 0.5, t0 + 2.5)  # linear power: trapezoids are exact
    assert s.reason == ""
    assert s.energy_j == pytest.approx(2 * 2.0 + 0.5 * (2.5 ** 2 - 0.5 ** 2))
    assert s.mean_w == pytest.approx(3.5) and s.duration_s == pytest.approx(2.0)
    assert s.samples == 4  # rows at +0, +1, +2, +3 bracket/fill the window
    outside = meter.summarize(t0 + 10, t0 + 11)
    assert math.isnan(outside.mean_w) and "covers" in outside.reason


def test_external_log_through_the_sampler_headerless_and_offset(tmp_path):
    log = tmp_path / "meter.csv"
    sampler = PowerSampler(make_meter({"type": "external", "path": str(log), "offset_s": 100.0}))
    with sampler:
        with sampler.window():
            time.sleep(0.02)
    w = sampler.windows[-1]
    # The meter's clock runs 100 s behind ours; it logged 4 W from before to after the window.
    with open(log, "w") as fh:
        fh.write("# USB meter\n")
        k = w.wall0 - 100.0 - 1.0
        while k < w.wall1 - 100.0 + 1.0:
            fh.write(f"{k:.6f},4.0\n")
            k += 0.25
    s = sampler.summary()
    assert s.reason == "" and s.mean_w == pytest.approx(4.0)
    assert s.energy_j == pytest.approx(4.0 * (w.wall1 - w.wall0))


def test_external_log_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,watts\n1700000000,3.0\n1700000001,abc\n")
    with pytest.raises(HarnessError, match=r"bad\.csv:3: expected numbers"):
        load_log(str(bad))
    short = tmp_path / "short.csv"
    short.write_text("1700000000,3.0\n1700000001\n")
    with pytest.raises(HarnessError, match=r"short\.csv:2"):
        load_log(str(short))
    header = tmp_path / "header.csv"
    header.write_text("when,volts\n1,2\n")
    with pytest.raises(HarnessError, match=r"header\.csv:1: header"):
        load_log(str(header))
    ms = tmp_path / "ms.csv"
    ms.write_text("1700000000000,3.0\n1700000001000,3.0\n")
    with pytest.raises(HarnessError, match="milliseconds"):
        load_log(str(ms))
    missing = ExternalLogMeter(str(tmp_path / "later.csv")).summarize(1.0, 2.0)
    assert math.isnan(missing.energy_j) and "was the meter logging" in missing.reason
    ok, why = ExternalLogMeter(str(tmp_path / "no" / "dir" / "x.csv")).probe()
    assert not ok and "no folder" in why


# --- none, auto, factory --------------------------------------------------------------------------

def test_none_meter_reports_nan_with_reason():
    meter = make_meter("none")
    assert isinstance(meter, NoneMeter)
    with PowerSampler(meter) as sampler:
        with sampler.window():
            pass
    s = sampler.summary()
    assert math.isnan(s.mean_w) and math.isnan(s.energy_j) and s.reason == "no power meter configured"
    assert make_meter(None).probe() == (False, "no power meter configured")


def test_auto_on_a_cpu_host_without_meters_says_why_for_each(tmp_path):
    """No powercap and no hwmon power sensor (a VM): NaN power with both reasons, in auto's order."""
    meter = make_meter("auto", device={"name": "cpu", "backend": "onnxruntime"}, root=str(tmp_path / "empty"))
    note = meter.notes["auto"]
    assert isinstance(meter, NoneMeter) and note["device_kind"] == "cpu" and note["chosen"] is None
    assert list(note["failed"]) == ["rapl", "hwmon"]
    assert "intel-rapl:0/energy_uj" in note["failed"]["rapl"] and "power*_input" in note["failed"]["hwmon"]
    assert meter.reason == f"no power meter works here: rapl: {note['failed']['rapl']}; hwmon: {note['failed']['hwmon']}"
    write(tmp_path / "ina", "class/hwmon/hwmon1/name", "ina219")  # the same host with a sensor wired
    write(tmp_path / "ina", "class/hwmon/hwmon1/power1_input", 2450000)
    found = make_meter("auto", device={"name": "cpu", "backend": "onnxruntime"}, root=str(tmp_path / "ina"))
    assert isinstance(found, HwmonMeter) and list(found.notes["auto"]["failed"]) == ["rapl"]
    assert found.read().total_w() == pytest.approx(2.45)


def test_auto_picks_by_device_and_records_failures(tmp_path):
    build_ina3221_jp5(tmp_path / "jp5")
    meter = select_auto(device="jetson", root=str(tmp_path / "jp5"))
    assert isinstance(meter, Ina3221Meter) and meter.notes["auto"]["failed"] == {}
    script = fake_tegrastats(tmp_path, "tegrastats_jp5_vdd_in.txt")
    meter = make_meter("auto", device={"name": "jetson-agx-xavier", "backend": "tensorrt"},
                       root=str(tmp_path / "empty"), path=str(script))
    assert isinstance(meter, TegrastatsMeter)
    assert "no INA3221 rails" in meter.notes["auto"]["failed"]["ina3221"]
    assert meter.info()["auto"]["chosen"] == "tegrastats"
    build_rapl(tmp_path / "cpu")
    assert isinstance(select_auto(device="cpu", root=str(tmp_path / "cpu")), RaplMeter)
    none = select_auto(device="rpi", root=str(tmp_path / "empty"))
    assert isinstance(none, NoneMeter) and "hwmon: no power*_input" in none.reason


def test_device_kind():
    assert device_kind({"name": "cpu", "backend": "onnxruntime", "description": "Host CPU"}) == "cpu"
    assert device_kind({"name": "xavier", "backend": "tensorrt"}) == "jetson"
    assert device_kind({"name": "rpi400", "backend": "onnxruntime"}) == "rpi"
    assert device_kind({"name": "desktop", "backend": "tensorrt"}) == "cuda"
    assert device_kind("cuda") == "cuda"
    assert device_kind({"name": "box", "power_kind": "rpi"}) == "rpi"


def test_make_meter_specs_and_errors(tmp_path):
    assert isinstance(make_meter("TegraStats"), TegrastatsMeter)
    m = make_meter({"type": "tegrastats", "path": "/opt/tegrastats", "interval_ms": 250}, device="jetson")
    assert m.path == "/opt/tegrastats" and m.pace_s == 0.25
    assert make_meter("tegrastats:/usr/bin/tegrastats").path == "/usr/bin/tegrastats"
    assert make_meter(m) is m
    with pytest.raises(HarnessError, match="unknown type 'powermeter3000'"):
        make_meter("powermeter3000")
    with pytest.raises(HarnessError, match="unknown option.*colour"):
        make_meter({"type": "rapl", "colour": "red"})
    with pytest.raises(HarnessError, match="needs type"):
        make_meter({"rails": ["VDD_IN"]})
    with pytest.raises(HarnessError, match="take ':ARG'"):
        make_meter("rapl:/sys")
    with pytest.raises(HarnessError, match="needs the log's path"):
        make_meter("external:")


# --- sampler window integration -------------------------------------------------------------------

class FunctionMeter(Meter):
    """Reports P(t) (or a counter E(t)) of a known function of the perf_counter clock."""

    name = "fake"

    def __init__(self, fn, mode="power", fail_after=None):
        super().__init__()
        self.fn, self.mode, self.fail_after, self.reads = fn, mode, fail_after, 0

    def probe(self):
        return True, "fake"

    def read(self):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise MeterError("sensor gone")
        t = time.perf_counter()
        if self.mode == "energy":
            return Reading(t=t, energy_j={"board": self.fn(t)}, total_rail=("board",))
        return Reading(t=t, watts={"board": self.fn(t), "gpu": 0.5 * self.fn(t)}, total_rail=("board",))


def run_window(meter, interval_s=0.01, before=0.03, inside=0.1):
    with PowerSampler(meter, interval_s=interval_s) as sampler:
        time.sleep(before)
        with sampler.window():
            time.sleep(inside)
    return sampler, sampler.summary()


def test_sampler_constant_power_energy_is_power_times_window():
    sampler, s = run_window(FunctionMeter(lambda t: 5.0))
    w = sampler.windows[-1]
    assert s.reason == "" and s.meter == "fake"
    assert s.duration_s == pytest.approx(w.t1 - w.t0)
    assert s.mean_w == pytest.approx(5.0) and s.energy_j == pytest.approx(5.0 * s.duration_s)
    assert s.rails_mean_w == {"board": pytest.approx(5.0), "gpu": pytest.approx(2.5)}
    assert s.samples >= 3  # ~10 ms interval over 100 ms (loose: CI may be loaded)


def test_sampler_ramp_is_integrated_exactly():
    base = time.perf_counter()
    ramp = lambda t: 2.0 + 30.0 * (t - base)  # noqa: E731 - linear: trapezoids + linear edges are exact
    sampler, s = run_window(FunctionMeter(ramp), interval_s=0.02)
    w = sampler.windows[-1]
    a, b = w.t0 - base, w.t1 - base
    exact = 2.0 * (b - a) + 15.0 * (b * b - a * a)
    assert s.energy_j == pytest.approx(exact, rel=1e-9)
    assert s.mean_w == pytest.approx(exact / (b - a), rel=1e-9)


def test_sampler_energy_counter_interpolated_at_edges():
    base = time.perf_counter()
    sampler, s = run_window(FunctionMeter(lambda t: 1000.0 + 7.0 * (t - base), mode="energy"), interval_s=0.02)
    assert s.reason == "" and s.mean_w == pytest.approx(7.0) and s.energy_j == pytest.approx(7.0 * s.duration_s)


def test_short_window_uses_bracketing_samples():
    # A 2 ms window inside a 150 ms sensor interval: the samples either side still bound it.
    sampler, s = run_window(FunctionMeter(lambda t: 5.0), interval_s=0.15, before=0.01, inside=0.002)
    assert s.reason == "" and s.samples == 2
    assert s.mean_w == pytest.approx(5.0) and s.energy_j == pytest.approx(5.0 * s.duration_s)


def test_no_bracketing_samples_is_nan_with_reason():
    e, p, n, why = integrate_power([0.0, 0.1], [5.0, 5.0], 0.2, 0.203, interval_s=0.1)
    assert math.isnan(e) and math.isnan(p) and n == 0
    assert why.startswith("window 3 ms shorter than the sensor's 100 ms interval and no bracketing samples")
    assert "no sample after its end" in why
    e, p, n, why = integrate_energy([0.5, 0.6], [1.0, 2.0], 0.1, 0.55)
    assert math.isnan(e) and "no sample before its start" in why
    e, p, n, why = integrate_energy([0.0, 0.1, 0.2], [5.0, 1.0, 2.0], 0.05, 0.15)
    assert math.isnan(e) and "went backwards" in why
    # The sampler: a sensor that stops answering after the first reads leaves the window unbracketed.
    sampler = PowerSampler(FunctionMeter(lambda t: 5.0, fail_after=2), interval_s=0.01, end_wait_s=0.2)
    with sampler:
        time.sleep(0.05)
        with sampler.window():
            time.sleep(0.003)
    s = sampler.summary()
    assert math.isnan(s.mean_w) and math.isnan(s.energy_j)
    assert "no bracketing samples" in s.reason and "sensor gone" in s.reason


def test_integrate_power_exact_values_and_edges():
    ts, ps = [0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 10.0, 0.0]
    e, p, n, why = integrate_power(ts, ps, 0.5, 2.5)
    assert why == "" and e == pytest.approx(0.5 * (5 + 10) * 0.5 + 10.0 + 0.5 * (10 + 5) * 0.5) and n == 4
    e, p, n, why = integrate_power(ts, ps, 1.0, 2.0)  # edges on samples
    assert e == pytest.approx(10.0) and p == pytest.approx(10.0) and n == 2
    assert "empty window" in integrate_power(ts, ps, 1.0, 1.0)[3]


def test_summary_helpers():
    s = PowerSummary(mean_w=float("nan"), energy_j=float("nan"), duration_s=1.0, samples=0, meter="none",
                     reason="no power meter configured")
    assert not s.ok
    ok = PowerSummary(10.0, 2.0, 0.2, 5, {"board": 10.0}, "fake")
    assert ok.ok
    assert ok.to_dict()["rails_mean_w"] == {"board": 10.0}
    with pytest.raises(RuntimeError):
        PowerSampler(FunctionMeter(lambda t: 1.0)).summary()


def test_sampler_failed_probe_and_start_error(tmp_path):
    s = run_window(RaplMeter(root=str(tmp_path)))[1]
    assert math.isnan(s.mean_w) and "intel-rapl:0/energy_uj" in s.reason
    s = run_window(FunctionMeter(lambda t: 1.0, fail_after=0))[1]
    assert math.isnan(s.mean_w) and "sensor gone" in s.reason


def test_python38_syntax():
    """JetPack 5 runs Python 3.8: the package must not use newer syntax."""
    import ast

    for path in (Path(__file__).resolve().parents[2] / "harness" / "power").glob("*.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))
    assert os.path.isdir(FIXTURES)


def test_gpu_state_reads_temperature_and_clocks_through_nvml(monkeypatch):
    """The runner's before/after snapshot on a CUDA target: GPU temperature and clocks, or why not."""
    import sys
    import types

    from harness.power.nvml import gpu_state
    from harness.runner import _thermal_and_clocks

    calls = []
    fake = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2,
        nvmlInit=lambda: calls.append("init"), nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: ("gpu", i),
        nvmlDeviceGetTemperature=lambda h, kind: 61,
        nvmlDeviceGetClockInfo=lambda h, kind: {1: 1980, 2: 2619}[kind])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_state(0) == {"temp_c": 61.0, "sm_mhz": 1980.0, "mem_mhz": 2619.0}
    assert calls == ["init", "shutdown"]
    assert _thermal_and_clocks("cuda")["gpu"]["sm_mhz"] == 1980.0
    assert "gpu" not in _thermal_and_clocks("cpu")

    def no_clocks(h, kind):
        raise RuntimeError("Not Supported")
    fake.nvmlDeviceGetClockInfo = no_clocks
    state = gpu_state(0)
    assert state["temp_c"] == 61.0 and set(state["unread"]) == {"sm_mhz", "mem_mhz"}
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert "pip install nvidia-ml-py" in gpu_state(0)["reason"]


def test_an_energy_counter_that_did_not_move_is_not_zero_watts():
    """A counter updated every 100 ms, read every 50 ms, around a 30 ms window: the bracketing readings are equal,
    so the window's energy is unknown (NaN with the reason), not 0 J; over 300 ms it is measured."""
    ts = [0.00, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40]
    es = [10.0, 10.0, 40.0, 40.0, 70.0, 70.0, 100.0, 100.0, 130.0]  # 30 J a step: 300 W
    e, p, n, why = integrate_energy(ts, es, 0.11, 0.14)
    assert math.isnan(e) and math.isnan(p) and n == 0
    assert why.startswith("the energy counter did not change in the window (30 ms between readings 50 ms apart)")
    e, p, n, why = integrate_energy(ts, es, 0.05, 0.35)
    assert why == "" and e == pytest.approx(90.0) and p == pytest.approx(300.0)


def test_sampler_min_window_is_ten_readings_or_the_meters_own():
    meter = FunctionMeter(lambda t: 5.0)
    assert PowerSampler(meter, interval_s=0.05).min_window_s == pytest.approx(0.5)
    meter.min_window_s = 2.0
    assert PowerSampler(meter, interval_s=0.05).min_window_s == 2.0
