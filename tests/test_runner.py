"""The runner (timing, reference check, isolation), the results store and the bench command."""
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.results.store import ResultStore
from harness.runner import BenchConfig, measure, measure_isolated


def small_inputs(n=3, shape=(36, 64)):
    rng = np.random.default_rng(0)
    return [rng.random(shape, dtype=np.float32) for _ in range(n)]


@pytest.fixture
def inputs_npz(tmp_path):
    path = tmp_path / "inputs.npz"
    np.savez(path, **{f"f{i}": x for i, x in enumerate(small_inputs())})
    return str(path)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


# latency_stats (the median, its interval, supported percentiles): tests/test_stats.py


@pytest.mark.torch
def test_measure_records_everything_and_checks_against_reference():
    cfg = BenchConfig(weights="init", repeats=2, max_time_s=30, threads=1)
    rec = measure("eSR-TM_s2_K3_C2", 2, cfg, inputs=small_inputs())
    assert rec["frames"] == 3 and rec["passes"] == 2 and rec["n"] == 6
    # auto times every form the family has and keeps the fastest (docs/models.md, "ONNX export forms")
    assert rec["form"] in ("fast", "naive", "lean") and set(rec["session"]["form_trial_ms"]) == {"fast", "naive", "lean"}
    assert rec["session"]["form_trial_ms"][rec["form"]] == min(rec["session"]["form_trial_ms"].values())
    assert rec["median_ms"] > 0 and rec["fhd_per_s"] == pytest.approx(1000 / rec["median_ms"])
    assert rec["psnr_vs_reference"] > 60 and rec["reference_ok"]
    assert rec["peak_rss_mb"] > 0 and 0 <= rec["cpu_util_pct"] < 1000  # 10 ms CPU-time ticks
    # no meter configured: NaN with the reason, never a number
    assert math.isnan(rec["mean_w"]) and math.isnan(rec["mj_per_frame"]) and rec["power_reason"]


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_classical_and_torch_backends(backend):
    cfg = BenchConfig(backend=backend, weights="init", repeats=1)
    rgb = [np.repeat(x[:, :, None], 3, axis=2) for x in small_inputs(2)]
    rec = measure("bicubic-opencv", 2, cfg, inputs=rgb)
    assert rec["form"] == "native" and rec["median_ms"] > 0
    rec = measure("Bicubic_s3", 3, cfg, inputs=small_inputs(2, (30, 30)))
    if backend == "torch":  # PyTorch fp32 on the CPU is the reference itself: no check against itself
        assert rec["form"] == "eager" and "psnr_vs_reference" not in rec
        assert rec["reference"]["source"].startswith("none: this run is the PyTorch fp32 reference")
    else:  # Bicubic_s3: naive or one of the rewrites of its transposed conv (no fast form), checked against PyTorch
        assert rec["form"] in ("naive", "lean", "subpix") and rec["psnr_vs_reference"] > 60 and rec["reference_ok"]


# A crash, a hang or NaN in the measuring child: tests/test_faults.py (the bench stage).


@pytest.mark.torch
def test_isolated_success(inputs_npz):
    rec = measure_isolated("fixtures.fake_models:Nearest", 2, BenchConfig(weights="init", repeats=1), inputs_npz)
    assert rec["status"] == "ok" and rec["median_ms"] > 0


def _rec(model, **kw):
    base = {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime", "precision": "fp32",
            "weights": "official", "median_ms": 5.0, "fhd_per_s": 200.0, "mean_w": float("nan"), "status": "ok"}
    base.update(kw)
    return base


def test_store_commits_resumes_merges_and_exports(tmp_path):
    db = tmp_path / "a.db"
    store = ResultStore(db)
    run, resumed = store.start_run("cpu", "cfg1", environment={"cpu": "x"})
    assert not resumed
    store.add(run, "speed", _rec("m1"))
    # committed immediately: visible to another connection
    assert sqlite3.connect(str(db)).execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 1
    store.add(run, "speed", _rec("m1"))  # same key: ignored, no duplicate
    assert len(store.rows()) == 1
    row = store.rows()[0]
    assert row["mean_w"] is None and json.loads(row["data"])["mean_w"] is None  # NaN stored as NULL
    run2, resumed = store.start_run("cpu", "cfg1", resume=True)
    assert resumed and run2 == run
    assert ("cpu", "onnxruntime", "fp32", "m1", 2, "speed", "official") in store.done_keys(run)
    assert store.start_run("cpu", "cfg2", resume=True)[1] is False
    # a second device's store merges without duplicates
    other = ResultStore(tmp_path / "b.db")
    run_b, _ = other.start_run("rpi", "cfg1")
    other.add(run_b, "speed", _rec("m1", device="rpi"))
    other.close()
    assert store.merge(tmp_path / "b.db") == (1, 0)
    assert store.merge(tmp_path / "b.db") == (0, 1)
    csv_text = store.export_csv(tmp_path / "out.csv").read_text().splitlines()
    assert len(csv_text) == 3 and "fhd_per_s" in csv_text[0]


@pytest.mark.torch
def test_bench_command_stores_rows_and_resumes(tmp_path, capsys):
    db = tmp_path / "r" / "harness.db"
    args = ["bench", "--device", "cpu", "--model", "Bicubic_s4", "--repeats", "1", "--db", str(db), "--in-process"]
    assert main(args + ["--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 1 and recs[0]["model"] == "Bicubic_s4" and recs[0]["frames"] == 14
    assert recs[0]["input_shape"] == [1, 1, 270, 480]
    assert main(args + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming run" in err and "0 measured now" in err
    assert len(ResultStore(db).rows()) == 1
    assert (tmp_path / "r" / "speed_cpu.csv").is_file()


@pytest.mark.torch
def test_bench_rejects_bad_input_before_measuring(tmp_path, capsys):
    assert main(["bench", "--model", "nope", "--db", str(tmp_path / "x.db")]) == 2
    assert "unknown model id" in capsys.readouterr().err
    assert main(["bench", "--model", "Bicubic_s2", "--backend", "nosuch", "--db", str(tmp_path / "x.db")]) == 2
    assert "unknown backend 'nosuch'" in capsys.readouterr().err
    assert main(["bench", "--model", "Bicubic_s2", "--backend", "torch", "--precision", "int8",
                 "--db", str(tmp_path / "x.db")]) == 2
    assert "does not run int8" in capsys.readouterr().err


@pytest.mark.torch
def test_exported_onnx_is_cached_by_weights(tmp_path):
    from harness.export import exported_onnx
    from harness.models import resolve

    model = resolve("eSR-MAX_s2_K3_C2", weights="init")
    path, form = exported_onnx(model, "fast", tmp_path)
    mtime = path.stat().st_mtime_ns
    assert exported_onnx(model, "fast", tmp_path) == (path, form) and path.stat().st_mtime_ns == mtime
    plain = resolve("FSRCNN_s2_D6_S1_M1", weights="init")
    assert exported_onnx(plain, "fast", tmp_path)[1] == "naive"  # no fast form: the one graph it has
    model.module.filter.weight.data += 1  # other weights -> another file
    assert exported_onnx(model, "fast", tmp_path)[0] != path


@pytest.mark.torch
def test_selfcheck_compares_runner_and_bare_loop(capsys):
    assert main(["selfcheck", "--model", "Bicubic_s4", "--runs", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "Bicubic_s4" and row["bare_ms"] > 0 and row["runner_ms"] > 0
    assert row["overhead_pct"] == pytest.approx(100 * (row["runner_ms"] - row["bare_ms"]) / row["bare_ms"])


@pytest.mark.torch
def test_roofline_bound_from_device_peaks():
    inputs = small_inputs(1, (30, 40))
    rec = measure("eSR-MAX_s2_K3_C2", 2, BenchConfig(weights="init", repeats=1, peak_gflops=100.0, peak_gbps=10.0),
                  inputs=inputs)
    macs = 60 * 80 * 2 * 9  # one 3x3 filter per HR pixel and channel (C=2)
    assert rec["macs_per_fhd"] == macs
    compute_bound = 100e9 / (2 * macs)
    memory_bound = 10e9 / rec["bytes_per_fhd"]
    assert rec["roofline_fhd_per_s"] == pytest.approx(min(compute_bound, memory_bound))
    assert rec["roofline_fraction"] == pytest.approx(rec["fhd_per_s"] / rec["roofline_fhd_per_s"])
    assert "roofline_fhd_per_s" not in measure("eSR-MAX_s2_K3_C2", 2, BenchConfig(weights="init", repeats=1),
                                               inputs=inputs)


@pytest.mark.torch
def test_torch_sessions_do_not_share_the_model_module():
    """The runner keeps a CPU fp32 reference session beside the timed one: preparing a session must
    not move or cast the model's own module (seen on a GPU: the reference moved the fp16 CUDA net back)."""
    import torch

    from harness.backends.torch_backend import TorchBackend
    from harness.models import resolve

    model = resolve("eSR-TM_s2_K7_C16")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    session = TorchBackend(precision="fp32", device="cpu").prepare(model, [(1, 1, 8, 8)])
    assert session.module is not model.module
    with torch.no_grad():
        for p in session.module.parameters():
            p.mul_(0)
    assert all(torch.equal(before[k], v) for k, v in model.module.state_dict().items())


@pytest.mark.torch
def test_a_measuring_child_dies_with_its_parent(tmp_path, inputs_npz):
    """SIGKILL of the sweep must not leave a hung child running (re-parented to PID 1): the child is
    tied to its parent (PR_SET_PDEATHSIG on Linux, a watchdog elsewhere)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "sweep.py"
    script.write_text(
        "import sys\nsys.path[:0] = [%r, %r]\n"
        "from harness.runner import BenchConfig, measure_isolated\n"
        "if __name__ == '__main__':\n"
        "    measure_isolated('fixtures.fake_models:Hang', 2, BenchConfig(weights='init', repeats=1, timeout_s=300),"
        " inputs_path=%r)\n" % (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1]),
                                str(inputs_npz)))
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        kids = []
        while time.monotonic() < deadline and not kids:
            kids = [c for c in psutil.Process(parent.pid).children() if "multiprocessing" in " ".join(c.cmdline())]
            time.sleep(0.5)
        assert kids, "the measuring child never started"
        time.sleep(3)  # it is inside the hanging forward pass by now
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, alive = psutil.wait_procs(kids, timeout=10)
        assert not alive, f"children outlived their parent: {[p.pid for p in alive]}"
    finally:
        if parent.poll() is None:
            parent.kill()
