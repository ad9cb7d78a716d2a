"""Export on a workstation, measure on a device without PyTorch (``export`` + ``--onnx-dir``)."""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_png
from harness.cli import main

pytestmark = pytest.mark.torch  # exporting needs PyTorch; the device side runs in a child without it

ROOT = Path(__file__).resolve().parents[1]
MAX = "eSR-MAX_s2_K3_C1"  # Conv2d(1, 4, 3x3, no bias): 36 weights, 36 MACs per LR pixel


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", "--pool", "none", "--models", MAX, "--scale", "2", "--precision", "fp32,int8",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture
def tiny_data(tmp_path, rng):
    for i in range(2):
        write_png(tmp_path / "data" / "Set5" / "HR" / f"im{i}.png", rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    return tmp_path / "data"


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_export_writes_hashed_files_complexity_and_a_probe(export_dir):
    manifest = _manifest(export_dir)
    entries = {(e["id"], e["scale"]): e for e in manifest["models"]}
    # the bicubic network is always exported; classical baselines need no file
    assert set(entries) == {(MAX, 2), ("Bicubic_s2", 2)}
    e = entries[(MAX, 2)]
    assert e["family"] == "eSR-MAX" and e["input_space"] == "y" and e["weights"] == "shipped"
    assert set(e["files"]) == {"naive", "fast", "lean", "naive.int8", "fast.int8", "lean.int8"}  # every form it has
    folder = export_dir / e["folder"]
    assert sorted(os.listdir(folder)) == sorted(list(e["files"].values()) + ["probe.npz"])  # no intermediates
    for name, digest in e["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    # hand-computed: 36 weights, each used once per pixel of the 960x540 LR input of a Full-HD frame
    assert e["complexity"]["params"] == 36 and e["complexity"]["macs_per_fhd"] == 36 * 960 * 540
    assert manifest["versions"]["torch"] and manifest["format_version"] == 1


def test_exported_graph_reproduces_the_stored_pytorch_output(export_dir):
    import onnxruntime as ort

    e = {x["id"]: x for x in _manifest(export_dir)["models"]}[MAX]
    folder = export_dir / e["folder"]
    with np.load(folder / "probe.npz") as probe:
        lr, sr = probe["lr"], probe["sr"]
    assert lr.shape == (1, 1, 32, 48) and sr.shape == (1, 1, 64, 96) and 0 <= lr.min() and lr.max() <= 1
    assert lr.std() > 0.02  # a real image crop, not a flat patch
    for form in ("naive", "fast"):
        sess = ort.InferenceSession(str(folder / e["files"][form]), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: lr})[0]
        assert np.abs(got - sr).max() < 1e-5


def _no_torch(tmp_path) -> dict:
    """An environment in which ``import torch`` fails in every process (children included)."""
    shadow = tmp_path / "no-torch" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shadow.parent), str(ROOT)]),
               HARNESS_CACHE=str(tmp_path / "cache"), HARNESS_EMULATED="qemu-user")
    return env


def test_device_runs_an_export_folder_without_torch(export_dir, tiny_data, tmp_path, capsys):
    env = _no_torch(tmp_path)
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "No module named 'torch'" in check.stderr
    out, plots = tmp_path / "results", tmp_path / "plots"
    res = subprocess.run([sys.executable, "-m", "harness", "run-all", "--device", "rpi", "--onnx-dir", str(export_dir),
                          "--data", str(tiny_data), "--repeats", "1", "--out", str(out), "--plots", str(plots)],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "EMULATED (qemu-user" in res.stdout  # above the table
    db = sqlite3.connect(str(out / "harness.db"))
    db.row_factory = sqlite3.Row
    run = db.execute("SELECT * FROM runs").fetchone()
    assert json.loads(run["profile"])["threads"] == 4  # the rpi profile
    environment = json.loads(run["environment"])
    assert environment["versions"]["torch"] is None and environment["emulated"].startswith("qemu-user")
    rows = {(r["model"], r["measurement"]): r for r in db.execute("SELECT * FROM measurements")}
    # the export's models (at its one scale, x2) plus the classical baselines, each with quality and speed
    assert {m for m, _ in rows} == {MAX, "Bicubic_s2", "bicubic-matlab", "bicubic-opencv"}
    assert all(r["status"] == "ok" and r["scale"] == 2 for r in rows.values())
    speed = json.loads(rows[(MAX, "speed")]["data"])
    assert speed["reference"]["source"].startswith("PyTorch fp32 output stored at export")
    assert float(speed["psnr_vs_reference"]) > 60 and speed["macs_per_fhd"] == 36 * 960 * 540
    assert speed["session"]["onnx"].startswith(str(export_dir)) and speed["emulated"].startswith("qemu-user")
    assert rows[(MAX, "quality:Set5")]["backend"] == "onnxruntime"
    # the same PSNR as the PyTorch path on this machine (two engines, one protocol)
    assert main(["quality", "--model", MAX, "--data", str(tiny_data), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)[0]["psnr"]
    assert abs(rows[(MAX, "quality:Set5")]["psnr"] - want) < 1e-3
    import csv

    with open(out / "results_rpi.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and all(r["emulated"].startswith("qemu-user") for r in table)
    assert "EMULATED (rpi: qemu-user" in (out / "report.html").read_text()
    assert (plots / "tradeoff_rpi_onnxruntime_fp32_x2_Set5.png").stat().st_size > 10000


def test_a_damaged_or_missing_file_is_refused_in_one_line(export_dir, tiny_data, tmp_path, capsys):
    import shutil

    copy = tmp_path / "onnx"
    shutil.copytree(export_dir, copy)
    e = {x["id"]: x for x in _manifest(copy)["models"]}[MAX]
    target = copy / e["folder"] / e["files"]["naive"]
    target.write_bytes(target.read_bytes()[:-10])  # a half-copied file
    assert main(["quality", "--model", MAX, "--onnx-dir", str(copy), "--data", str(tiny_data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "SHA-256" in err[0]
    target.unlink()
    assert main(["quality", "--model", MAX, "--onnx-dir", str(copy), "--data", str(tiny_data)]) == 2
    assert "is missing" in capsys.readouterr().err
    # a model the folder does not hold: where to export it
    assert main(["quality", "--model", "eSR-TM_s2_K7_C3", "--onnx-dir", str(copy), "--data", str(tiny_data)]) == 2
    err = capsys.readouterr().err
    assert "not in" in err and "manifest.json" in err and "python -m harness export --models eSR-TM_s2_K7_C3" in err
    assert main(["quality", "--model", MAX, "--onnx-dir", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_bench_int8_from_the_export_and_its_refusal_without_it(export_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    db = tmp_path / "h.db"
    assert main(["bench", "--model", MAX, "--onnx-dir", str(export_dir), "--precision", "int8", "--repeats", "1",
                 "--in-process", "--db", str(db), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["precision"] == "int8" and rec["session"]["onnx"].endswith(".int8.onnx")
    assert rec["psnr_vs_reference"] > 30 and rec["status"] == "ok"  # INT8 against the exported fp32 reference
    fp32_only = tmp_path / "fp32"
    assert main(["export", "--pool", "none", "--models", MAX, "--scale", "2", "--forms", "naive",
                 "--out", str(fp32_only)]) == 0
    capsys.readouterr()
    assert main(["bench", "--model", MAX, "--onnx-dir", str(fp32_only), "--precision", "int8", "--repeats", "1",
                 "--in-process", "--db", str(db), "--json"]) == 1  # a failed row: exit status 1
    rec = json.loads(capsys.readouterr().out)[0]
    assert rec["status"] == "failed" and "no INT8 graph" in rec["reason"] and "--precision fp32,int8" in rec["reason"]
