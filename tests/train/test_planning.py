"""harness.train.planning: train/resume/skip decisions, the folder lock, pools, the default output
folder, --jobs worker processes, and fixed-weight ids refused (or skipped in pools)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train
from harness.errors import HarnessError
from harness.models import pools

from .helpers import ABPN, BSRN, ESPCN, TM, cli, one_line, same_state, settings, weights


@pytest.mark.torch
def test_unfinished_run_needs_resume_or_force(data, tmp_path):
    out = str(tmp_path / "o")
    train.run([TM], settings(data), out=out, stop_at=4)
    with pytest.raises(HarnessError, match=r"unfinished run .*--resume .*--force"):
        train.run([TM], settings(data), out=out)
    with pytest.raises(HarnessError, match="no checkpoint .*last.pt to resume"):
        train.run([TM], settings(data), out=str(tmp_path / "elsewhere"), resume=True)
    assert train.run([TM], settings(data), out=out, force=True)[0]["status"] == "finished"
    assert train.run([TM], settings(data), out=out)[0]["status"] == "skipped"  # finished: nothing to do


HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(f"pid {os.getpid()} on test\\n"); f.flush()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.torch
@pytest.mark.skipif(os.name != "posix", reason="the folder lock is flock (POSIX)")
def test_a_folder_in_training_refuses_a_second_run(data, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "o"
    train.run([TM], settings(data), out=str(out), stop_at=4)  # a paused run: the lock was released at its end
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / train.LOCK_NAME)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (out / "last.pt").read_bytes()
        for kw in ({"resume": True}, {"force": True}):
            with pytest.raises(HarnessError, match=rf"{out} is being trained by pid {holder.pid} .*another --out"):
                train.run([TM], settings(data), out=str(out), **kw)
        assert (out / "last.pt").read_bytes() == before  # neither touched the live run's checkpoint
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process, nothing stale stays
        holder.wait()
    assert train.run([TM], settings(data), out=str(out), resume=True)[0]["status"] == "finished"


@pytest.mark.torch
def test_default_out_and_embedded_validation_fallback(data, monkeypatch):
    monkeypatch.setattr(train.Validator, "psnr", lambda self, mid, module: 20.0)  # skip the big embedded images
    rec = train.run([TM], settings(data, steps=2, val_every=2))[0]
    assert Path(rec["out"]) == Path(os.environ["HARNESS_CACHE"]) / "train" / TM
    assert rec["validation"]["name"] == "embedded" and rec["final_psnr"] == 20.0


@pytest.mark.torch
def test_pool_trains_each_model_and_skips_finished_ones(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(pools.POOLS, "tiny", lambda: ["Bicubic_s2", TM, ESPCN])
    out = tmp_path / "pool"
    args = ["--pool", "tiny", "--data", str(data), "--steps", "3", "--batch", "2", "--patch", "16",
            "--val-every", "0", "--out", str(out), "--json"]
    assert cli(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in first] == ["skipped", "finished", "finished"]
    assert (out / TM / f"{TM}.pt").is_file() and (out / ESPCN / f"{ESPCN}.pt").is_file()
    stamp = (out / TM / f"{TM}.pt").stat().st_mtime_ns
    cli(args)
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["skipped", "skipped", "skipped"]
    assert (out / TM / f"{TM}.pt").stat().st_mtime_ns == stamp
    cli(args + ["--force", "--scale", "2"])
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["skipped", "finished", "finished"]


@pytest.mark.torch
def test_parallel_jobs_match_sequential_and_isolate_failures(data, tmp_path):
    """--jobs: each model in its own single-threaded process gives the very weights a sequential
    run gives; a model that fails there is reported while the others finish."""
    ids = [TM, ESPCN]
    seq = train.run(ids, settings(data), out=str(tmp_path / "seq"), pool=True)
    par = train.run(ids, settings(data), out=str(tmp_path / "par"), pool=True, jobs=2)
    assert sorted(r["model"] for r in par) == sorted(ids)
    for mid in ids:
        a = torch.load(tmp_path / "seq" / mid / f"{mid}.pt")
        b = torch.load(tmp_path / "par" / mid / f"{mid}.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {r["model"]: r["steps"] for r in seq} == {r["model"]: r["steps"] for r in par}

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ESPCN).write_text("not a folder")  # the child cannot create its output folder
    records = {r["model"]: r for r in train.run(ids, settings(data), out=str(tmp_path / "bad"), pool=True, jobs=2)}
    assert records[ESPCN]["status"] == "failed" and records[ESPCN]["reason"]
    assert records[TM]["status"] == "finished" and (tmp_path / "bad" / TM / f"{TM}.pt").is_file()


def test_a_jobs_worker_exits_when_its_parent_is_killed(tmp_path):
    """No orphan goes on training (and writing its run folder) after the run is killed, even by SIGKILL."""
    import subprocess
    import sys
    import time

    import psutil

    worker = ("import os, time; from harness.children import exit_with_parent; "
              "exit_with_parent(os.getppid(), 0.05); "
              "print('ready', flush=True); time.sleep(60)")
    parent_code = ("import subprocess, sys, time; "
                   f"c = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE, text=True); "
                   "print(c.pid, flush=True); c.stdout.readline(); print('go', flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=str(Path(train.__file__).resolve().parents[2]))
    try:
        child_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "go"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            psutil.Process(child_pid).kill()
            pytest.fail("the worker outlived its killed parent by 10 s")
    finally:
        parent.kill()


@pytest.mark.torch
def test_fixed_and_unknown_ids(data):
    with pytest.raises(HarnessError, match="Bicubic_s2 is not trainable"):
        cli(["Bicubic_s2", "--data", str(data)])
    with pytest.raises(HarnessError, match="unknown model id"):
        cli(["nonsense", "--data", str(data)])


@pytest.mark.torch
def test_fixed_weight_ids_are_refused_and_skipped_in_pools(data, tmp_path, monkeypatch, capsys):
    for mid in ("Bicubic_s3", "eSR-Bicubic_s2", "bicubic-matlab"):
        with pytest.raises(train.NotTrainable) as e:
            cli([mid, "--data", str(data)])
        assert "nothing to train" in one_line(e)
    monkeypatch.setitem(pools.POOLS, "mixed", lambda: ["Bicubic_s2", TM, ABPN])
    assert cli(["--pool", "mixed", "--data", str(data), "--steps", "2", "--batch", "2", "--patch", "16",
                "--val-every", "0", "--out", str(tmp_path / "pool"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["status"]) for r in records] == [("Bicubic_s2", "skipped"), (TM, "finished"),
                                                           (ABPN, "finished")]
    assert [r.get("input_space") for r in records] == [None, "y", "rgb"]


@pytest.mark.torch
def test_parallel_jobs_train_rgb_and_y_models_alike(data, tmp_path):
    """--jobs with an RGB and a Y model: each child loads its own space's pairs; the weights equal a
    sequential run's. The longest (by MACs on its own channels) starts first."""
    s = settings(data, steps=4)
    assert train.training_cost(ABPN, s) > train.training_cost(TM, s) > 0
    assert train.training_cost(BSRN, settings(data, patch=32)) > train.training_cost(ABPN, settings(data, patch=32))
    assert train.training_cost(BSRN, s) == 0  # 8 LR pixels are too few for BSRN: it fails at once, one line
    train.run([ABPN, TM], s, out=str(tmp_path / "seq"), pool=True)
    par = train.run([ABPN, TM], s, out=str(tmp_path / "par"), pool=True, jobs=2)
    assert sorted((r["model"], r["status"]) for r in par) == [(ABPN, "finished"), (TM, "finished")]
    for mid in (ABPN, TM):
        assert same_state(weights(tmp_path / "seq" / mid / f"{mid}.pt"), weights(tmp_path / "par" / mid / f"{mid}.pt"))
