"""A sweep's throughput: one worker measures the models in turn (replaced after a fault and now and
then), each row says where its time went, a sweep times to its own looser target, and the time left
is estimated before and during a long sweep."""
from __future__ import annotations

import json

import numpy as np
import pytest

import harness.api.stages as stages
from harness.api import Estimate, duration_text, prior_pace, run_bench, sweep_timing
from harness.errors import HarnessError
from harness.results.store import ResultStore
from harness.runner import BenchConfig, _peak_rss_mb, _reset_peak_rss, measure


def _cfg(**kw):
    return BenchConfig(weights="init", iterations=7, warmup=0, **kw)


def test_a_worker_measures_models_in_turn_and_is_replaced_now_and_then(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stages, "WORKER_RECYCLE", 2)
    pairs = [("bicubic-opencv", 2), ("bicubic-opencv", 3), ("bicubic-opencv", 4)]
    recs = run_bench(pairs, _cfg(), isolate="worker")
    pids = [r["pid"] for r in recs]
    assert all(r["status"] == "ok" for r in recs)
    assert pids[0] == pids[1] != pids[2]  # two models in one process, then a fresh one
    fresh = run_bench(pairs[:2], _cfg(), isolate="process")
    assert fresh[0]["pid"] != fresh[1]["pid"]
    for r in recs + fresh:  # where the time went, every phase accounted for
        phases = r["phases_s"]
        assert set(phases) == {"process", "imports", "build", "inputs", "prepare", "reference", "warmup", "timing",
                               "after"}
        assert all(v >= 0 for v in phases.values()) and phases["timing"] >= r["timed_wall_s"] * 0.99


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024.0 for line in fh if line.startswith("VmRSS:"))


def test_peak_memory_is_each_models_own():
    if not _reset_peak_rss():
        pytest.skip("this kernel cannot reset the peak resident set (/proc/self/clear_refs)")
    inputs = [np.zeros((32, 48, 3), np.float32)] * 2
    measure("bicubic-opencv", 2, _cfg(), inputs)  # a first model: the imports, as in a worker
    before = _rss_mb()
    big = np.ones(300_000_000 // 8)  # 300 MB touched, then freed: a previous model's peak
    assert _peak_rss_mb(True) > before + 250  # 300 MB = 286 MiB
    del big
    rec = measure("bicubic-opencv", 2, _cfg(), inputs)
    assert before * 0.5 < rec["peak_rss_mb"] < before + 50  # this model's own peak, not the 300 MB before it


def test_a_sweep_times_to_the_profiles_sweep_target_unless_told_otherwise():
    cfg = BenchConfig(ci_target_pct=3.0, max_time_s=8.0)
    profile = {"name": "cpu", "sweep_ci_target_pct": 5, "sweep_max_time_s": 2}
    swept = sweep_timing(cfg, profile, {})
    assert (swept.ci_target_pct, swept.max_time_s) == (5.0, 2.0)
    assert sweep_timing(cfg, profile, {"ci_target_pct": 1.0}).ci_target_pct == 3.0  # --ci-target given: the cfg's
    assert sweep_timing(cfg, {"name": "x"}, {}) is cfg
    with pytest.raises(HarnessError, match="sweep_max_time_s = 'two' is not a number"):
        sweep_timing(cfg, dict(profile, sweep_max_time_s="two", path="devices/x.toml"), {})


def test_the_estimate_speaks_after_the_first_models_then_every_few_minutes(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(stages.time, "monotonic", lambda: now[0])
    lines = []
    eta = Estimate(100, "bench", lines.append)
    for _ in range(3):
        now[0] += 6.0
        eta.step()
    assert lines == ["bench: 3/100 done, about 10 min left (6.0 s each so far)"]  # 97 x 6 s = 582 s
    for _ in range(40):
        now[0] += 6.0
        eta.step()
    assert len(lines) == 1 + 0  # 240 s later: not yet 5 minutes since the last line
    for _ in range(20):
        now[0] += 6.0
        eta.step()
    # the next line at 300 s after the first (step 3, 18 s): step 53 at 318 s, 47 x 6 s = 282 s left
    assert lines[-1] == "bench: 53/100 done, about 5 min left (6.0 s each so far)" and len(lines) == 2
    assert [duration_text(s) for s in (42, 600, 5400, 3 * 3600)] == ["42 s", "10 min", "1.5 h", "3.0 h"]


def test_the_estimate_up_front_comes_from_the_last_run_on_this_device(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    for i, (speed, quality) in enumerate(((4.0, 1.0), (6.0, 3.0), (5.0, 2.0))):
        base = {"model": f"m{i}", "scale": 2, "device": "cpu", "precision": "fp32", "weights": "w"}
        store.add(run, "speed", dict(base, backend="onnxruntime", phases_s={"process": speed - 1, "timing": 1.0}))
        store.add(run, "quality:Set5", dict(base, backend="torch", seconds=quality))
    pace = prior_pace(store, BenchConfig(device="cpu", backend="onnxruntime"))
    assert pace == {"run_id": run, "speed_s": 5.0, "quality_s": 2.0}
    assert prior_pace(store, BenchConfig(device="rpi")) is None
    assert prior_pace(store, BenchConfig(device="cpu"), exclude=run) is None
    json.dumps(pace)


@pytest.mark.torch
def test_a_sweeps_warm_up_counts_the_runs_the_session_already_had(tmp_path, monkeypatch):
    """3 warm-up frames in a sweep. On the CPU the chosen form is timed in a fresh session after its trial: only
    the output check counts, 2 frames stay; so for a model without a trial (one form). Where the trial's own
    session is timed (a GPU provider's), the form trial's runs of the chosen form (its priming run too, when it
    was the first form, and its second run) count as well, and one frame stays."""
    import harness.backends.onnxruntime_backend as ob

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    inputs = [np.random.default_rng(0).random((24, 32), dtype=np.float32)] * 2
    cfg = BenchConfig(weights="init", iterations=3, warmup=0, warmup_frames=3, backend="onnxruntime")
    rec = measure("eSR-TM_s2_K3_C2", 2, cfg, inputs)  # forms fast, lean, naive: a trial
    assert rec["session"]["fresh_after_trial"] and rec["form"] in rec["session"]["form_trial_runs"]
    assert rec["warmup_runs_before"] == 1 and rec["warmup_frames_run"] == 2
    monkeypatch.setattr(ob.OnnxRuntimeBackend, "_fresh_after_trial", staticmethod(lambda provider: False))
    rec = measure("eSR-TM_s2_K3_C2", 2, cfg, inputs)
    runs = rec["session"]["form_trial_runs"][rec["form"]] + (rec["session"]["form_primed"] == rec["form"]) \
        + (rec["form"] in rec["session"]["form_second_run_ms"])
    assert rec["session"]["form_primed"] == "fast" and "fresh_after_trial" not in rec["session"]
    assert rec["warmup_runs_before"] == 1 + 1 + runs and rec["warmup_frames_run"] == max(1, 3 - (2 + runs))
    monkeypatch.setenv("HARNESS_FORMS", "naive")
    rec = measure("eSR-TM_s2_K3_C2", 2, cfg, inputs)
    assert "form_trial_runs" not in rec["session"]
    assert rec["warmup_runs_before"] == 1 and rec["warmup_frames_run"] == 2


def test_a_pi_sweep_is_first_estimated_from_the_papers_pi_speeds(tmp_path):
    """Before any model has run on a Pi: 0.5 s + 44 frame times per pair at the paper's measured Pi speed, the
    median of those for a model the table lacks; no estimate for another device or without the table."""
    import pickle

    from harness.results.paper import import_table

    table = {m: {"speed_RPI": np.float64(v), "speed_AGX": np.float64(10.0)}
             for m, v in {"eSR-MAX_s2_K3_C1": 11.0, "eSR-TM_s2_K7_C16": 1.1, "ESPCN_s2_D4_S12": 5.5}.items()}
    (tmp_path / "tests.pkl").write_bytes(pickle.dumps(table))
    pairs = [("eSR-MAX_s2_K3_C1", 2), ("eSR-TM_s2_K7_C16", 2), ("ESPCN_s2_D4_S12", 2), ("my.onnx", 2)]
    with ResultStore(tmp_path / "h.db") as store:
        assert stages.paper_pace(store, "rpi", pairs) is None  # no table yet
        import_table(tmp_path / "tests.pkl", store)
        pace = stages.paper_pace(store, "rpi", pairs)
        assert stages.paper_pace(store, "cpu", pairs) is None
    # per pair: 0.5 + 44/11 = 4.5, 0.5 + 44/1.1 = 40.5, 0.5 + 44/5.5 = 8.5; my.onnx: the median, 8.5
    assert pace["known"] == 3 and pace["total_s"] == pytest.approx(4.5 + 40.5 + 8.5 + 8.5)


def test_the_quality_stage_shares_the_cores_between_two_workers(monkeypatch, tmp_path):
    """Two quality workers where there are two cores or more, each with its share; ONNX Runtime sessions opened
    without a thread count in such a worker take its share from HARNESS_ORT_THREADS."""
    from conftest import tiny_y_onnx
    from harness.ortsession import ort_session

    model = tiny_y_onnx(tmp_path / "tiny.onnx")
    assert [stages.quality_workers(c) for c in (1, 2, 3, 4, 8)] == [(1, 1), (2, 1), (2, 1), (2, 2), (2, 4)]
    monkeypatch.setenv("HARNESS_ORT_THREADS", "1")
    assert ort_session(model).get_session_options().intra_op_num_threads == 1
    assert ort_session(model, threads=2).get_session_options().intra_op_num_threads == 2  # explicit wins


def test_cpu_sessions_run_without_the_memory_pattern(tmp_path):
    """A CPU session is warm from its second run only without ONNX Runtime's memory pattern (its first run records
    the pattern, its second allocates it): the harness turns the library's default off there."""
    import onnxruntime as ort

    from conftest import tiny_y_onnx
    from harness.ortsession import ort_session

    model = tiny_y_onnx(tmp_path / "tiny.onnx")
    assert ort.SessionOptions().enable_mem_pattern  # the library's default, which the harness changes on CPU
    assert ort_session(model).get_session_options().enable_mem_pattern is False
    assert ort_session(model, providers=["CPUExecutionProvider"]).get_session_options().enable_mem_pattern is False
