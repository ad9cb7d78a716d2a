"""The eSR authors' published table (issue 23): safe reading, the store's rows and units, the paper's front,
the joined table and reports kept apart from it, and the overlay statistics against hand-computed values."""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import OFFICIAL
from harness.errors import HarnessError
from harness.results import overlay, paper
from harness.results.store import ResultStore

REAL = OFFICIAL / "tests.pkl"
PAPER_SETS = ("Set5", "Set14", "BSDS100", "Urban100", "Manga109")
# model: (Set14 PSNR, speed_AGX, power_AGX mW, speed_MaxQ, power_MaxQ W, speed_RPI, usage_RPI)
TINY = {
    "Bicubic_s2": (30.0, 20.0, 1550.0, 600.0, 50.0, 10.0, 370.0),
    "eSR-MAX_s2_K3_C1": (30.5, 30.0, 1600.0, 700.0, 45.0, 8.0, 350.0),   # AGX front: fastest
    "eSR-TM_s2_K7_C4": (31.5, 15.0, 2500.0, 400.0, 60.0, 2.0, 330.0),    # AGX front
    "ESPCN_s2_D0_S21": (31.3, 10.0, 2787.0, 221.5, 40.0, 0.5, 301.0),    # dominated by eSR-TM on the AGX
    "FSRCNN_s2_D56_S12_M4": (32.0, 3.0, 5000.0, 80.0, 90.0, 0.2, 380.0),  # AGX front: best PSNR
}
SET_OFFSET = {"Set5": 3.0, "Set14": 0.0, "BSDS100": -0.7, "Urban100": -3.0, "Manga109": 0.8}


def tiny_table(scale_speed: float = 1.0):
    """The hand-made table as tests.pkl holds it: model -> {key: numpy scalar}."""
    out = {}
    for model, (psnr, agx, p_agx, maxq, p_maxq, rpi, usage) in TINY.items():
        row = {}
        for s in PAPER_SETS:
            row[f"psnr_{s}"] = np.float64(psnr + SET_OFFSET[s])
            row[f"ssim_{s}"] = np.float64(0.9)
            row[f"lpips_{s}"] = np.float32(0.1)
        row.update(parameters=np.int64(100), speed_AGX=np.float64(agx * scale_speed), power_AGX=np.float64(p_agx),
                   speed_MaxQ=np.float64(maxq), power_MaxQ=np.float64(p_maxq), temperature_MaxQ=np.float64(75.0),
                   memory_MaxQ=np.float64(2900.0), speed_RPI=np.float64(rpi), usage_RPI=np.float64(usage))
        out[model] = row
    return out


def write_table(path: Path, table=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(table if table is not None else tiny_table()))
    return path


def brute_front(pairs):
    """Models no other model matches or beats on both PSNR and speed while beating on one (written for the test)."""
    out = set()
    for m, (q, s) in pairs.items():
        if not any(q2 >= q and s2 >= s and (q2 > q or s2 > s) for m2, (q2, s2) in pairs.items() if m2 != m):
            out.add(m)
    return out


# --------------------------------------------------------------------------- safe reading

class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import builtins

        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("attack", [_System, _Eval])
def test_a_malicious_pickle_is_refused_in_one_line_and_nothing_runs(tmp_path, attack):
    marker = tmp_path / "ran"
    bad = tmp_path / "tests.pkl"
    bad.write_bytes(pickle.dumps({"eSR-MAX_s2_K3_C1": {"speed_AGX": attack(marker)}}))
    with pytest.raises(HarnessError) as err:
        paper.load_tests(bad)
    text = str(err.value)
    assert "\n" not in text and str(bad) in text and "refuses" in text
    assert not marker.exists()
    with ResultStore(tmp_path / "r" / "harness.db") as store:  # the import path refuses it too, storing nothing
        with pytest.raises(HarnessError):
            paper.import_table(bad, store)
        assert store.rows() == []
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"not a pickle at all\n",
                                     pickle.dumps(tiny_table())[:200], pickle.dumps([1, 2, 3])])
def test_a_damaged_or_foreign_file_is_one_line(tmp_path, content):
    path = tmp_path / "tests.pkl"
    path.write_bytes(content)
    with pytest.raises(HarnessError) as err:
        paper.load_tests(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


# --------------------------------------------------------------------------- the store's rows

def imported(tmp_path, table=None):
    store = ResultStore(tmp_path / "results" / "harness.db")
    done = paper.import_table(write_table(tmp_path / "eSR" / "data" / "tests.pkl", table), store)
    return store, done


def _row(store, device, model, measurement="speed"):
    found = store.rows("device = ? AND model = ? AND measurement = ?", (device, model, measurement))
    assert len(found) == 1
    return found[0]


def test_units_power_agx_is_milliwatts_maxq_watts(tmp_path):
    import json

    store, done = imported(tmp_path)
    with store:
        assert done["published"] is False and done["warning"] and done["models"] == 5
        agx = _row(store, "paper-agx", "ESPCN_s2_D0_S21")
        assert agx["mean_w"] == pytest.approx(2.787)
        assert agx["mj_per_frame"] == pytest.approx(278.7)  # 2.787 W / 10 FHD/s = 0.2787 J per frame
        assert agx["fhd_per_s"] == pytest.approx(10.0) and agx["precision"] == "fp16"
        assert agx["backend"] == "paper" and agx["weights"] == "official"
        data = json.loads(agx["data"])
        assert data["units"]["mean_w"] == "W" and data["power_raw"] == 2787.0
        maxq = _row(store, "paper-maxq", "ESPCN_s2_D0_S21")
        assert maxq["mean_w"] == pytest.approx(40.0) and maxq["mj_per_frame"] == pytest.approx(40.0 / 221.5 * 1000)
        assert maxq["precision"] == "fp32" and json.loads(maxq["data"])["temperature_c"] == 75.0
        rpi = _row(store, "paper-rpi", "ESPCN_s2_D0_S21")
        assert rpi["mean_w"] is None and rpi["cpu_util_pct"] == pytest.approx(301.0)
        q = _row(store, "paper-agx", "ESPCN_s2_D0_S21", "quality:BSD100")  # BSDS100 is the harness's BSD100
        assert q["psnr"] == pytest.approx(31.3 - 0.7) and q["ssim"] == pytest.approx(0.9)
        assert json.loads(q["data"])["lpips"] == pytest.approx(0.1) and "authors" in json.loads(q["data"])["protocol"]


def test_import_twice_replaces_and_never_duplicates(tmp_path):
    store, first = imported(tmp_path)
    with store:
        count = len(store.rows())
        assert count == 3 * 5 * (1 + 5)  # 3 devices x 5 models x (speed + 5 sets)
        again = paper.import_table(tmp_path / "eSR" / "data" / "tests.pkl", store)
        assert len(store.rows()) == count and again["replaced"] == count
        assert len([r for r in store.runs() if r["device"].startswith("paper-")]) == 3
        newer = paper.import_table(write_table(tmp_path / "other.pkl", tiny_table(scale_speed=2.0)), store)
        assert newer["sha256"] != first["sha256"] and len(store.rows()) == count
        assert _row(store, "paper-agx", "eSR-TM_s2_K7_C4")["fhd_per_s"] == pytest.approx(30.0)


def test_frame_from_store_is_paper_frame(tmp_path):
    import pandas as pd

    store, _ = imported(tmp_path)
    with store:
        pd.testing.assert_frame_equal(paper.frame_from_store(store),
                                      paper.paper_frame(tmp_path / "eSR" / "data" / "tests.pkl"))
    with ResultStore(tmp_path / "empty.db") as empty:
        with pytest.raises(HarnessError, match="zoo import-esr"):
            paper.frame_from_store(empty)


@pytest.mark.skipif(not REAL.is_file(), reason=f"needs the eSR authors' table {REAL} (absent here)")
def test_the_real_table_front_and_round_trip(tmp_path):
    import pandas as pd

    from harness.results.plots import collect

    with ResultStore(tmp_path / "harness.db") as store:
        done = paper.import_table(REAL, store)
        assert done["published"] and not done["warning"] and done["models"] == 1185
        pd.testing.assert_frame_equal(paper.frame_from_store(store), paper.paper_frame(REAL))
        points = collect(store)
    raw = paper.load_tests(REAL)
    for device, suffix, scale, set_name in (("agx", "AGX", 2, "Set14"), ("rpi", "RPI", 3, "Urban100"),
                                            ("maxq", "MaxQ", 4, "BSDS100")):
        pairs = {m: (v[f"psnr_{set_name}"], v[f"speed_{suffix}"]) for m, v in raw.items() if f"_s{scale}" in m}
        expected = brute_front(pairs)
        got = overlay.paper_front(points, device, scale, paper.PAPER_SETS[set_name])
        assert set(got) == expected and len(got) == len(expected) > 3


def test_tiny_table_front_is_the_brute_force_one(tmp_path):
    from harness.results.plots import collect

    store, _ = imported(tmp_path)
    with store:
        points = collect(store)
    for device, index in (("agx", 1), ("maxq", 3), ("rpi", 5)):
        pairs = {m: (v[0], v[index]) for m, v in TINY.items()}
        assert set(overlay.paper_front(points, device, 2, "Set14")) == brute_front(pairs)
    assert set(overlay.paper_front(points, "agx", 2, "Set14")) == {"eSR-MAX_s2_K3_C1", "eSR-TM_s2_K7_C4",
                                                                   "FSRCNN_s2_D56_S12_M4"}


# --------------------------------------------------------------------------- kept apart from the harness's rows

def _own(store, run, model, fps, psnr=None, device="cpu", weights="official", sets=("Set14",)):
    store.add(run, "speed", {"model": model, "scale": 2, "device": device, "backend": "onnxruntime",
                             "precision": "fp32", "weights": weights, "family": paper.family_of(model),
                             "fhd_per_s": fps, "status": "ok", "reason": ""})
    if psnr is not None:
        for s in sets:
            store.add(run, f"quality:{s}", {"model": model, "scale": 2, "device": device, "backend": "torch",
                                            "precision": "fp32", "weights": weights, "family": paper.family_of(model),
                                            "set": s, "psnr": psnr, "ssim": 0.9, "status": "ok", "reason": ""})


def test_the_joined_table_never_lends_quality_across(tmp_path):
    from harness.results.table import load_table

    store, _ = imported(tmp_path)
    with store:
        run, _ = store.start_run("cpu", "k")
        _own(store, run, "eSR-TM_s2_K7_C4", 100.0)  # speed only: the paper's PSNR must not become its own
        store.db.execute("DELETE FROM measurements WHERE device LIKE 'paper-%' AND model = 'ESPCN_s2_D0_S21' "
                         "AND measurement LIKE 'quality:%'")
        store.db.commit()
        _own(store, run, "ESPCN_s2_D0_S21", 50.0, psnr=99.0)  # and a harness PSNR never becomes the paper's
        table = load_table(store)
    row = table[(table.device == "cpu") & (table.model == "eSR-TM_s2_K7_C4")].iloc[0]
    assert pd_missing(row.get("psnr:Set14"))
    for device in ("paper-agx", "paper-maxq", "paper-rpi"):
        published = table[(table.device == device) & (table.model == "ESPCN_s2_D0_S21")].iloc[0]
        assert pd_missing(published.get("psnr:Set14"))
    other = table[(table.device == "paper-agx") & (table.model == "eSR-TM_s2_K7_C4")].iloc[0]
    assert other["psnr:Set14"] == pytest.approx(31.5)  # the paper's own quality stays on the paper's rows


def pd_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_figures_and_report_of_the_harness_leave_the_paper_out(tmp_path):
    from harness.results.plots import draw_all
    from harness.results.report import write_report

    store, _ = imported(tmp_path)
    with store:
        run, _ = store.start_run("cpu", "k")
        for model, fps, psnr in (("Bicubic_s2", 200.0, 30.1), ("eSR-MAX_s2_K3_C1", 150.0, 30.4),
                                 ("eSR-TM_s2_K7_C4", 60.0, 31.4)):
            _own(store, run, model, fps, psnr)
        files = draw_all(store, tmp_path / "plots")
        assert files and not any("paper" in f.name for f in files)
        html, md = write_report(store, tmp_path / "report", plots_dir=tmp_path / "plots")
    text = html.read_text()
    assert "Beside the paper" in text and "Beside the paper" in md.read_text()
    models_table = text.split('id="models"')[1].split("</table>")[0]
    assert "paper-agx" not in models_table and "cpu" in models_table
    assert "Raspberry Pi 400" in text  # a cpu device is compared with the paper's CPU device


def test_a_store_with_only_the_paper_gives_one_line(tmp_path):
    from harness.results.report import write_report

    store, _ = imported(tmp_path)
    with store:
        with pytest.raises(HarnessError, match="python -m harness paper"):
            write_report(store, tmp_path / "report")


# --------------------------------------------------------------------------- the overlay statistics

def test_spearman_against_hand_computed_values():
    assert overlay.spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert overlay.spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    # ranks (1,2,3,4,5) against (2,1,4,3,5): sum d^2 = 4, rho = 1 - 6*4 / (5*(25-1)) = 0.8
    assert overlay.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert overlay.spearman([1], [2]) is None and overlay.spearman([1, 1, 1], [1, 2, 3]) is None


def _pt(model, fps, psnr):
    return {"model": model, "scale": 2, "fhd_per_s": fps, "psnr": {"Set14": psnr}}


def test_compare_counts_fronts_and_psnr_differences_by_hand():
    # the paper: A fastest, B, C best; D dominated by C (slower and worse)
    theirs = [_pt("A", 40.0, 30.0), _pt("B", 20.0, 31.0), _pt("C", 10.0, 32.0), _pt("D", 5.0, 31.5)]
    # yours: B became slowest (dominated by D), D faster than C; PSNR 0.1 dB under the paper on each, B 0.4
    mine = [_pt("A", 400.0, 29.9), _pt("B", 50.0, 30.6), _pt("C", 90.0, 31.9), _pt("D", 100.0, 31.4),
            _pt("E", 500.0, 35.0)]  # E: not in the paper, left out
    r = overlay.compare(mine, theirs, "Set14", "rpi")
    assert r["models"] == 4 and r["quality_source"] == "yours"
    assert set(r["paper_front"]) == {"A", "B", "C"} and set(r["my_front"]) == {"A", "C", "D"}
    assert r["paper_on_mine"] == 2 and r["mine_on_paper"] == 2
    # speeds, models A B C D: paper ranks (4,3,2,1), yours (4,1,2,3): d = (0,2,0,-2), rho = 1 - 6*8/(4*15) = 0.2
    assert r["rho"] == pytest.approx(0.2)
    assert r["mean_diff"]["Set14"] == pytest.approx((-0.1 - 0.4 - 0.1 - 0.1) / 4)
    assert {d["model"]: round(d["diff"], 6) for d in r["psnr_diffs"]}["B"] == -0.4
    line = overlay.verdict_line(dict(r, device="cpu", backend="onnxruntime", precision="fp32"))
    assert "2 of 3 paper front models are on yours" in line and "rho = 0.20" in line and "Raspberry Pi 400" in line


def test_overlay_from_a_store_reversed_speeds_give_minus_one(tmp_path):
    from harness.results.plots import collect

    store, _ = imported(tmp_path)
    with store:
        run, _ = store.start_run("cpu", "k")
        by_rpi = sorted(TINY, key=lambda m: TINY[m][5])  # slowest first on the Pi
        for i, model in enumerate(by_rpi):  # here: the Pi's slowest is the fastest
            _own(store, run, model, 100.0 - 10 * i, TINY[model][0] + 0.05)
        _own(store, run, "eSR-TR_s2_K5_C2", 70.0, 31.0, weights="shipped")  # not official: not compared
        points = collect(store)
    results = overlay.overlay(points)
    assert len(results) == 1
    r = results[0]
    assert r["paper_device"] == "rpi" and r["models"] == 5 and r["rho"] == pytest.approx(-1.0)
    assert r["mean_diff"]["Set14"] == pytest.approx(0.05)
    assert overlay.overlay(points, device="agx")[0]["paper_name"].startswith("Jetson AGX Xavier")


def test_paper_device_for():
    assert overlay.paper_device_for("jetson", "tensorrt") == "agx"
    assert overlay.paper_device_for("rpi", "onnxruntime") == "rpi"
    assert overlay.paper_device_for("cuda", "tensorrt") == "maxq"
    assert overlay.paper_device_for("cpu", "onnxruntime") == "rpi"
