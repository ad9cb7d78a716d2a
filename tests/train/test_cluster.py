"""harness.train.cluster, ``python -m harness train --cluster ADDRESS``: one Ray task per model,
results gathered into the local store, one retry, failures reported with exit code 1, and Ray
kept optional.

The Ray tests start a local instance (``--cluster local``) and train tiny models for a few
steps on a tiny synthetic folder (the ``data`` fixture of conftest.py); they skip when Ray is
not installed (the [ray] extra). Failures inside a worker are injected with HARNESS_CLUSTER_FAIL
(a monkeypatch would not reach the worker processes). Each Ray run is ``python -m harness train``
in a child process, as a user runs it: Ray's driver leaves gRPC threads in its process after
``ray.shutdown()``, which must not outlive the run into the test process's own exit.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from harness import train
from harness.errors import HarnessError
from harness.train import cluster

from .helpers import ESPCN, TM, load

TR = "eSR-TR_s2_K3_C2"
COMMON = ["--data", "{data}", "--steps", "3", "--batch", "2", "--patch", "16", "--val-every", "0",
          "--threads", "1", "--checkpoint-every", "3"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.delenv(cluster.FAIL_ENV, raising=False)
    monkeypatch.setenv("HARNESS_NO_PROGRESS", "1")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")


def cli(argv):
    parser = argparse.ArgumentParser()
    train.add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train"] + list(argv))
    return args.func(args)


def cli_child(argv, timeout_s: float = 300):
    """``python -m harness train ARGV`` in a child process (the environment as monkeypatched): its
    exit code, stdout and stderr."""
    done = subprocess.run([sys.executable, "-m", "harness", "train"] + list(argv), capture_output=True, text=True,
                          timeout=timeout_s, env=dict(os.environ))
    return done.returncode, done.stdout, done.stderr


def ray_processes():
    """The pids of Ray's own daemons (GCS server, raylet) running on this machine."""
    import psutil

    found = set()
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("gcs_server", "raylet"):
            found.add(proc.pid)
    return found


def left_behind(before, wait_s: float = 10.0):
    """Ray daemons that were not there ``before`` and are still running ``wait_s`` seconds on."""
    deadline = time.monotonic() + wait_s
    while (extra := ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    return extra


def common(data):
    return [a.replace("{data}", str(data)) for a in COMMON]


def need_ray():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[default]', the [ray] extra)")


@pytest.mark.torch
def test_local_cluster_trains_retries_and_reports(data, tmp_path, monkeypatch, capsys):
    need_ray()
    out = tmp_path / "out"
    # TM fine, ESPCN fails once (the retry succeeds), TR fails on both attempts
    monkeypatch.setenv(cluster.FAIL_ENV, f"{ESPCN}:1,{TR}")
    before = ray_processes()
    t0 = time.perf_counter()
    rc, stdout, stderr = cli_child([f"{TM},{ESPCN},{TR}"] + common(data) + ["--out", str(out), "--cluster", "local",
                                                                              "--json"])
    elapsed = time.perf_counter() - t0
    records = {r["model"]: r for r in json.loads(stdout)}
    assert rc == 1, stderr
    assert not left_behind(before)  # the instance it started is shut down
    assert records[TM]["status"] == "finished" and records[TM]["attempts"] == 1
    assert records[ESPCN]["status"] == "finished" and records[ESPCN]["attempts"] == 2
    assert records[TR]["status"] == "failed" and records[TR]["attempts"] == 2
    assert "injected failure" in records[TR]["reason"] and "\n" not in records[TR]["reason"]
    assert f"{ESPCN}: attempt 1 failed" in stderr and f"{TR}: failed 2 times" in stderr
    for mid in (TM, ESPCN):
        weights, prov = out / mid / f"{mid}.pt", out / mid / f"{mid}.json"
        assert weights.is_file() and (out / mid / "last.pt").is_file()
        record = json.loads(prov.read_text())
        assert record["weights"] == str(weights)  # the local copy, not the worker's temp folder
        assert record["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
        assert record["cluster"]["address"] == "local" and record["steps"] == 3
        assert record["data"][0]["folder"] == str(data)
    assert not (out / TR / f"{TR}.pt").exists()
    # the same weights as the single-machine trainer (same seed, one thread)
    solo = tmp_path / "solo"
    assert cli([TM] + common(data) + ["--out", str(solo)]) == 0
    capsys.readouterr()
    assert _same(solo / f"{TM}.pt", out / TM / f"{TM}.pt")
    # finished models are skipped without starting Ray at all (in this process: Ray must stay off)
    ray = pytest.importorskip("ray")
    rc = cli([f"{TM},{ESPCN}"] + common(data) + ["--out", str(out), "--cluster", "local", "--json"])
    assert rc == 0 and not ray.is_initialized()
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["skipped", "skipped"]
    print(f"local-cluster run: {elapsed:.1f} s", file=sys.stderr)


def _same(a, b):
    import torch

    sa, sb = load(a), load(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_ray_missing_is_a_one_line_error(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the [ray] extra looks like
    with pytest.raises(HarnessError) as info:
        cli([TM] + common(data) + ["--out", str(tmp_path / "out"), "--cluster", "local"])
    assert str(info.value) == cluster.RAY_MISSING
    assert not (tmp_path / "out").exists()


@pytest.mark.torch
def test_single_machine_path_needs_no_ray(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert cli([TM] + common(data) + ["--out", str(tmp_path / "out"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "finished"


def test_injection_spec():
    import os

    os.environ[cluster.FAIL_ENV] = f"{TM}:1, {ESPCN} ,"
    try:
        assert cluster._injected_failures() == {TM: 1, ESPCN: None}
    finally:
        del os.environ[cluster.FAIL_ENV]


@pytest.mark.torch
def test_local_cluster_trains_an_rgb_model_beside_a_y_model(data, tmp_path, capsys):
    """ABPN (RGB pairs) and an eSR model (Y pairs) in one cluster run: each gets its own data
    through the object store, and the weights equal the single-machine trainer's."""
    need_ray()
    out, solo = tmp_path / "out", tmp_path / "solo"
    rc, stdout, stderr = cli_child([f"{TM},ABPN_s2"] + common(data) + ["--out", str(out), "--cluster", "local", "--json"])
    assert rc == 0, stderr
    records = {r["model"]: r for r in json.loads(stdout)}
    assert records["ABPN_s2"]["status"] == "finished" and records["ABPN_s2"]["input_space"] == "rgb"
    assert records[TM]["status"] == "finished" and records[TM]["input_space"] == "y"
    assert cli(["ABPN_s2"] + common(data) + ["--out", str(solo)]) == 0
    assert _same(solo / "ABPN_s2.pt", out / "ABPN_s2" / "ABPN_s2.pt")
