"""trtexec-style timing controls, interleaved rounds, raw times and the colour pipeline."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import harness.runner as runner
from harness.api import export_times, run_bench
from harness.cli import main
from harness.results.store import ResultStore
from harness.runner import BenchConfig, latency_stats, pool_rounds, time_session


def _record(model, times_ms, wall, mj=None, w=None, status="ok", stop="interval"):
    rec = dict(model=model, scale=2, device="cpu", backend="onnxruntime", precision="fp32", status=status,
               reason="" if status == "ok" else "boom", times_ms=list(times_ms), timed_wall_s=wall, passes=1,
               timing_stop=stop, cpu_util_pct=100.0, mean_w=w if w is not None else float("nan"),
               mj_per_frame=mj if mj is not None else float("nan"))
    rec.update(latency_stats([t / 1e3 for t in times_ms]))
    return rec


def test_rounds_pool_every_raw_time_and_weight_energy_by_frames():
    a = _record("m", [10.0] * 8, wall=0.08, mj=100.0, w=10.0)
    b = _record("m", [12.0] * 4, wall=0.048, mj=130.0, w=11.0, stop="time budget")
    pooled = pool_rounds([a, b])
    assert pooled["times_ms"] == [10.0] * 8 + [12.0] * 4 and pooled["n"] == 12
    assert pooled["median_ms"] == pytest.approx(10.0) and pooled["rounds"] == 2
    assert pooled["round_medians_ms"] == [pytest.approx(10.0), pytest.approx(12.0)]
    assert pooled["mj_per_frame"] == pytest.approx((100 * 8 + 130 * 4) / 12)  # energy per frame over all frames
    assert pooled["mean_w"] == pytest.approx((10 * 0.08 + 11 * 0.048) / 0.128)  # power over all timed time
    assert pooled["timing_stop"] == "2 rounds (interval, time budget)"
    failed = pool_rounds([a, _record("m", [], 0, status="failed")])
    assert failed["status"] == "failed" and failed["reason"] == "round 2 of 2: boom"


def test_rounds_interleave_the_models_and_store_one_pooled_row(tmp_path, monkeypatch):
    order = []

    def fake_measure(mid, scale, cfg, inputs=None):
        order.append(mid)
        times = [10.0 + len(order)] * 7
        return _record(mid, times, wall=0.07)

    monkeypatch.setattr(runner, "measure", fake_measure)
    store = ResultStore(tmp_path / "h.db")
    run_id, _ = store.start_run("cpu", "k")
    cfg = BenchConfig(weights="init", max_time_s=9.0)
    records = run_bench([("bicubic-matlab", 2), ("bicubic-opencv", 2)], cfg, store, run_id, isolate=False, rounds=3)
    assert order == ["bicubic-matlab", "bicubic-opencv"] * 3  # A B, A B, A B: not A A A, B B B
    rows = store.rows("run_id = ?", (run_id,))
    assert len(rows) == len(records) == 2
    data = {r["model"]: json.loads(r["data"]) for r in rows}
    assert data["bicubic-matlab"]["round_medians_ms"] == [11.0, 13.0, 15.0] and len(data["bicubic-matlab"]["times_ms"]) == 21
    path = export_times(store, run_id, tmp_path / "times.json")
    assert json.loads(path.read_text()) == {"bicubic-matlab x2": data["bicubic-matlab"]["times_ms"],
                                            "bicubic-opencv x2": data["bicubic-opencv"]["times_ms"]}


def test_fixed_iterations_warmup_and_exported_times_from_the_command_line(tmp_path, capsys):
    db, times = tmp_path / "h.db", tmp_path / "times.json"
    assert main(["bench", "--model", "bicubic-opencv", "--scale", "2", "--iterations", "17", "--warmup", "0",
                 "--threads", "1", "--in-process", "--db", str(db), "--export-times", str(times), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["n"] == 17 and rec["timing_stop"] == "iterations" and len(rec["times_ms"]) == 17
    assert rec["timing"]["iterations"] == 17 and rec["timing"]["warmup"] == 0 and rec["timing"]["threads"] == 1
    assert rec["runtime"] == "opencv" and rec["colour_space"] == "rgb"
    assert rec["median_ms"] == pytest.approx(float(np.median(rec["times_ms"])), rel=1e-4)
    assert json.loads(times.read_text()) == {"bicubic-opencv x2": rec["times_ms"]}


@pytest.mark.parametrize("option,value,message", [
    ("--iterations", "0", "error: --iterations 0: give at least 1 timed frame"),
    ("--duration", "-1", "error: --duration -1: give a positive number of seconds"),
    ("--warmup", "-2", "error: --warmup -2: give 0 or more warm-up passes"),
    ("--rounds", "0", "error: --rounds 0: give at least 1"),
])
def test_a_bad_timing_control_is_one_line(option, value, message, tmp_path, capsys):
    assert main(["bench", "--model", "bicubic-opencv", "--scale", "2", option, value, "--db", str(tmp_path / "h.db")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


@pytest.mark.torch
def test_the_colour_pipeline_times_rgb_frames_for_a_y_model():
    rng = np.random.default_rng(0)
    inputs = [rng.random((24, 32), dtype=np.float32) for _ in range(3)]
    rec = runner.measure("eSR-MAX_s2_K3_C1", 2, BenchConfig(weights="init", repeats=1, pipeline="color"), inputs)
    assert rec["pipeline"] == "color" and rec["input_shape"] == [1, 3, 24, 32] and rec["colour_space"] == "y"
    assert rec["session"]["pipeline"] == "color" and rec["runtime"] == "onnxruntime" and rec["n"] == 3


class _SteadySession:
    """compute() takes 1 ms, every time: the interval is met as soon as the minimum passes are timed."""

    def load(self, x):
        pass

    def compute(self):
        t = time.perf_counter()
        while time.perf_counter() - t < 1e-3:
            pass


class _Sampler:
    def __init__(self, min_window_s):
        self.min_window_s, self.windows = min_window_s, []

    def window_start(self):
        self.windows.append([time.perf_counter()])

    def window_end(self):
        self.windows[-1].append(time.perf_counter())


def test_the_timed_loop_fills_the_power_meters_window():
    """Alone, 3 passes of 14 one-ms frames meet the interval (about 42 ms); with a meter that needs 0.3 s, the
    loop runs on for it (more frames, stop 'power window'), and the meter's window is that loop."""
    cfg = BenchConfig(min_repeats=3, repeats=1000, max_time_s=5.0, ci_target_pct=3.0)
    batch = [None] * 14
    times, _, passes, stop = time_session(_SteadySession(), batch, cfg)
    assert stop == "interval" and len(times) == 42
    sampler = _Sampler(0.3)
    times, _, passes, stop = time_session(_SteadySession(), batch, cfg, sampler)
    (t0, t1), = sampler.windows
    assert stop == "power window" and t1 - t0 >= 0.3 and len(times) > 42
    assert sum(times) <= t1 - t0
