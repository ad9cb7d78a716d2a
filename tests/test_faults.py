"""Fault injection: a sweep survives whatever a model, a file or a kill does to it.

Hostile models (tests/fixtures/fake_models.py) raise, segfault, hang, answer NaN, ask for 16 TiB
or return the wrong shape, in the quality stage (one worker process, restarted after a fault) and
in the bench stage (a process per model). Hostile files (a corrupt, an empty and a
decompression-bomb image) sit in a test set. ``run-all`` is SIGKILLed at random points and
resumed. Each case checks that every row measured before the fault is still there, that each
fault is exactly one failure row with its reason, that the resumed run ends complete without
duplicates, and that the exit code says something failed. (Damaged caches: test_cache_safety.py;
a damaged or unwritable store: results/test_store_safety.py; unwritable folders: cli/test_cli.py.)
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import write_png
from harness.results.store import ResultStore
from harness.runner import BenchConfig

pytestmark = [pytest.mark.torch, pytest.mark.faults]

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
HOSTILE = {  # fixture class -> what its failure row must say
    "Raises": "RuntimeError: this model is broken on purpose",
    "Crash": "crashed (SIGSEGV)",
    "Hang": "timed out after",
    "Produces_NaN": "NaN",
    "HugeAlloc": "allocate",
    "WrongShape": "is not x2 of its input",
}


def _images(folder: Path, n: int, seed: int = 0, size=(48, 60)) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_png(folder / f"im{i}.png", rng.integers(0, 255, size + (3,), dtype=np.uint8))


@pytest.fixture()
def data(tmp_path):
    _images(tmp_path / "data" / "Set5" / "HR", 2)
    return tmp_path / "data"


def _stage_inputs(models, data):
    from harness.datasets import data_root, resolve_sets
    from harness.exported import resolve_model

    pairs = [(m, 2) for m in models]
    built = [resolve_model(m, 2, "init") for m, _ in pairs]
    return list(zip(pairs, built)), resolve_sets(data_root(str(data)), ["Set5"])


def _rows(store, run_id, measurement=None):
    rows = [dict(r) for r in store.rows("run_id = ?", (run_id,))]
    return [r for r in rows if measurement is None or r["measurement"] == measurement]


def test_quality_stage_turns_each_hostile_model_into_one_failure_row(data, tmp_path):
    from harness.api import quality_stage

    models = ["fixtures.fake_models:Nearest"] + [f"fixtures.fake_models:{c}" for c in HOSTILE] + [
        "fixtures.fake_models:RGBNearest"]
    todo, sets = _stage_inputs(models, data)
    store = ResultStore(tmp_path / "harness.db")
    run_id, _ = store.start_run("cpu", "k")
    cfg = BenchConfig(weights="init", timeout_s=8)
    lines = []
    records = quality_stage(store, run_id, cfg, todo, sets, {}, str(data), log=lines.append)
    rows = {r["model"].split(":")[1]: r for r in _rows(store, run_id)}
    assert len(records) == len(rows) == len(models)  # one row per model, none lost, none twice
    for cls, reason in HOSTILE.items():
        assert rows[cls]["status"] == "failed" and reason in rows[cls]["reason"], (cls, rows[cls]["reason"])
    for good in ("Nearest", "RGBNearest"):  # measured before and after the faults
        assert rows[good]["status"] == "ok" and rows[good]["psnr"] > 10
    assert len(lines) == len(HOSTILE) and all(line.startswith("quality fixtures.fake_models:") for line in lines)
    assert "timed out after 8 s" in rows["Hang"]["reason"]


def test_bench_stage_turns_each_hostile_model_into_one_failure_row(tmp_path, monkeypatch):
    from harness.api import run_bench

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    hostile = ["Crash", "Hang", "Produces_NaN", "HugeAlloc", "WrongShape"]
    pairs = [(f"fixtures.fake_models:{c}", 2) for c in ["Nearest"] + hostile]
    store = ResultStore(tmp_path / "harness.db")
    run_id, _ = store.start_run("cpu", "k")
    cfg = BenchConfig(weights="init", repeats=1, timeout_s=15)
    records = run_bench(pairs, cfg, store, run_id)
    rows = {r["model"].split(":")[1]: r for r in _rows(store, run_id)}
    assert len(records) == len(rows) == len(pairs)
    assert rows["Nearest"]["status"] == "ok" and rows["Nearest"]["fhd_per_s"] > 0
    expect = dict(HOSTILE, Hang="timed out after 15 s", WrongShape="output shape")
    for cls in hostile:
        assert rows[cls]["status"] == "failed" and expect[cls] in rows[cls]["reason"], (cls, rows[cls]["reason"])


def test_resume_measures_failed_rows_again_unless_kept(data, tmp_path):
    from harness.api import quality_stage

    flag = tmp_path / "broken"
    flag.write_text("")
    os.environ["FAKE_MODEL_FLAG"] = str(flag)  # the spawned worker inherits it
    try:
        todo, sets = _stage_inputs(["fixtures.fake_models:BrokenWhileFlagged", "fixtures.fake_models:Nearest"], data)
        store = ResultStore(tmp_path / "harness.db")
        run_id, _ = store.start_run("cpu", "k")
        cfg = BenchConfig(weights="init", timeout_s=60)
        quality_stage(store, run_id, cfg, todo, sets, {}, str(data))
        first = {r["model"].split(":")[1]: r for r in _rows(store, run_id)}
        assert first["BrokenWhileFlagged"]["status"] == "failed" and "flag file" in first["BrokenWhileFlagged"]["reason"]
        flag.unlink()  # the user fixes the cause
        assert quality_stage(store, run_id, cfg, todo, sets, {}, str(data), keep_failed=True) == []  # kept as is
        again = quality_stage(store, run_id, cfg, todo, sets, {}, str(data))  # the default: failed rows again
        assert [r["model"] for r in again] == ["fixtures.fake_models:BrokenWhileFlagged"]
        after = {r["model"].split(":")[1]: r for r in _rows(store, run_id)}
        assert len(after) == 2 and after["BrokenWhileFlagged"]["status"] == "ok"
        assert after["Nearest"]["created"] == first["Nearest"]["created"]  # an ok row is never measured twice
    finally:
        os.environ.pop("FAKE_MODEL_FLAG", None)


def test_hostile_images_fail_their_set_only(tmp_path):
    from PIL import Image

    from harness.api import quality_stage

    root = tmp_path / "data"
    _images(root / "Set5" / "HR", 2)
    _images(root / "Set14" / "HR", 1)
    (root / "Set14" / "HR" / "zero.png").write_bytes(b"")
    (root / "Set14" / "HR" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    bomb = root / "BSD100" / "HR"
    bomb.mkdir(parents=True)
    Image.new("L", (20000, 20000)).save(bomb / "bomb.png", optimize=True)  # 400 Mpx: over PIL's bomb limit
    todo, sets = _stage_inputs(["bicubic-matlab"], root)
    from harness.datasets import data_root, resolve_sets

    sets = resolve_sets(data_root(str(root)), ["Set5", "Set14", "BSD100"])
    store = ResultStore(tmp_path / "harness.db")
    run_id, _ = store.start_run("cpu", "k")
    quality_stage(store, run_id, BenchConfig(timeout_s=60), todo, sets, {}, str(root))
    rows = {r["measurement"]: r for r in _rows(store, run_id)}
    assert rows["quality:Set5"]["status"] == "ok" and rows["quality:Set5"]["psnr"] > 10
    for name, why in (("quality:Set14", "Set14/HR/"), ("quality:BSD100", "bomb.png")):
        assert rows[name]["status"] == "failed" and why in rows[name]["reason"], rows[name]["reason"]
        assert "Traceback" not in rows[name]["reason"] and "\n" not in rows[name]["reason"]


def _keyed(db: Path):
    with sqlite3.connect(str(db)) as con:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM measurements")]
    key = ("run_id", "device", "backend", "precision", "model", "scale", "measurement", "weights")
    return {tuple(r[k] for k in key): r for r in rows}, len(rows)


def _run_all(tmp_path, models: str, *extra: str):
    """(args, env, results folder) of a run-all subprocess over two tiny Set5 images at x2, ``models`` (fake
    models from tests/fixtures), init weights, one repeat, its own cache."""
    data = tmp_path / "data"
    _images(data / "Set5" / "HR", 2)
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), HARNESS_CACHE=str(tmp_path / "cache"),
               HARNESS_NO_PROGRESS="1")
    args = [sys.executable, "-m", "harness", "run-all", "--device", "cpu", "--data", str(data), "--scale", "2",
            "--pool", "none", "--models", models, "--weights", "init", "--repeats", "1", "--out", str(out),
            "--plots", str(tmp_path / "plots"), *extra]
    return args, env, out


def _group_gone(pgid: int, wait_s: float = 10.0) -> bool:
    """Whether process group ``pgid`` (a run-all and its measuring children) is empty within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_run_all_killed_at_random_points_resumes_to_one_complete_run(tmp_path):
    """SIGKILL of run-all at three random moments (seeded: the seed is in the failure message; FAULT_SEED
    repeats one), with and without its children, then --resume until it ends."""
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    args, env, out = _run_all(tmp_path, "fixtures.fake_models:Nearest,fixtures.fake_models:Raises", "--json")
    kept = {}
    for attempt in range(3):
        proc = subprocess.Popen(args + (["--resume"] if attempt else []), env=env, cwd=str(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(3.0, 12.0))
        if attempt == 0:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group, as a dying terminal would
            proc.communicate()
        else:  # run-all alone: its measuring children must follow it by themselves
            proc.kill()
            proc.communicate()
            if not _group_gone(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"a child of the killed run-all outlived it (seed {seed})")
        if (out / "harness.db").is_file():
            rows, _ = _keyed(out / "harness.db")
            for k, r in kept.items():  # every row measured before this kill is still there, unchanged
                assert rows.get(k, {}).get("created") == r["created"] or r["status"] == "failed", (seed, k)
            kept = rows
    done = subprocess.run(args + ["--resume"], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, (seed, done.stderr[-2000:])  # Raises failed: non-zero, everything else ran
    assert "1 model(s) failed" in done.stderr
    rows, count = _keyed(out / "harness.db")
    assert count == len(rows) == 5 * 2  # 3 baselines + 2 models, quality and speed each, no duplicates
    assert len({k[0] for k in rows}) == 1, seed  # one run, resumed
    for k, r in kept.items():
        assert rows[k]["created"] == r["created"] or r["status"] == "failed", (seed, k)
    bad = [r for r in rows.values() if r["status"] != "ok"]
    assert sorted(r["measurement"] for r in bad) == ["quality:Set5", "speed"], (seed, bad)
    assert all(r["model"].endswith(":Raises") and "broken on purpose" in r["reason"] for r in bad)
    table = {r["model"]: r for r in json.loads(done.stdout)}
    assert table["fixtures.fake_models:Nearest"]["status"] == "ok"


def test_run_all_stopped_by_sigterm_unwinds_like_ctrl_c(tmp_path):
    """SIGTERM (kill, timeout, a batch scheduler's stop) to run-all alone, while a model hangs: one line,
    exit status 143 (128 + 15), no measuring child left behind, and every row stored before it kept."""
    args, env, out = _run_all(tmp_path, "fixtures.fake_models:Nearest,fixtures.fake_models:Hang", "--timeout", "600")
    proc = subprocess.Popen(args, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    try:
        deadline, before = time.monotonic() + 120, {}
        while not before and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            if (out / "harness.db").is_file():
                try:
                    before, _ = _keyed(out / "harness.db")
                except sqlite3.OperationalError:  # the store is being created
                    pass
        assert before and proc.poll() is None, "run-all stored no row, or ended, before the signal"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        # the last line: no resource-tracker warning after it (tqdm's multiprocessing lock, left by the killed child)
        assert err.strip().splitlines()[-1] == "terminated (SIGTERM)", err[-2000:]
        if not _group_gone(proc.pid):
            pytest.fail("a measuring child outlived run-all's SIGTERM")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    after, _ = _keyed(out / "harness.db")
    assert all(after[k]["created"] == r["created"] for k, r in before.items())
