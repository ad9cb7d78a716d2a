"""The command line as users call it (in-process for speed; one real subprocess)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_png
from harness.cli import main
from harness.results.store import ResultStore


@pytest.fixture
def tiny_data(tmp_path, rng):
    for i in range(2):
        write_png(tmp_path / "data" / "Set5" / "HR" / f"im{i}.png", rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    return tmp_path / "data"


def test_quality_json_records(tiny_data, capsys):
    assert main(["quality", "--model", "bicubic-matlab", "--scale", "2", "--data", str(tiny_data), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 1
    assert set(records[0]) == {"model", "scale", "set", "psnr", "ssim", "images"}
    assert records[0]["set"] == "Set5" and records[0]["images"] == 2 and records[0]["scale"] == 2


def test_model_ids_as_plain_arguments_are_the_same_as_model(tiny_data, capsys):
    common = ["--scale", "2", "--data", str(tiny_data), "--json"]
    assert main(["quality", "--model", "bicubic-matlab,bicubic-opencv", *common]) == 0
    by_option = json.loads(capsys.readouterr().out)
    assert main(["quality", "bicubic-matlab", "bicubic-opencv", *common]) == 0
    assert json.loads(capsys.readouterr().out) == by_option and [r["model"] for r in by_option] == [
        "bicubic-matlab", "bicubic-opencv"]
    assert main(["bench", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: give a model id (several: A B, or --model A,B)")


@pytest.mark.torch
def test_quality_table_several_models_and_scales(tiny_data, capsys):
    assert main(["quality", "--model", "bicubic-matlab,Bicubic_s3", "--scale", "3", "--data", str(tiny_data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["model", "scale", "set"]
    assert len(out) == 4 and "Bicubic_s3" in out[3]


def test_missing_set_is_one_error_line(tiny_data, capsys):
    code = main(["quality", "--model", "bicubic-matlab", "--scale", "2", "--data", str(tiny_data), "--sets", "Urban100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: test set Urban100 not found")


def test_bad_scale_and_unknown_model(capsys):
    assert main(["quality", "--model", "Bicubic_s2", "--scale", "4"]) == 2
    assert "x2 model" in capsys.readouterr().err
    assert main(["quality", "--model", "eSR-XYZ"]) == 2
    assert "unknown model id" in capsys.readouterr().err


@pytest.mark.torch
def test_data_list_frames_and_zoo_json(tiny_data, capsys):
    assert main(["data", "list", "--data", str(tiny_data), "--json"]) == 0
    rows = {r["set"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Set5"]["images"] == 2 and rows["Set14"]["images"] == 0 and rows["embedded"]["images"] >= 10
    assert main(["frames", "--json"]) == 0
    frames = json.loads(capsys.readouterr().out)
    assert len(frames) == 14 and all(f["size"] == "1920x1080" for f in frames)
    assert main(["zoo", "list", "--scale", "3", "--json"]) == 0
    ids = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert ids["Bicubic_s3"]["params"] == 9 * 25 and "bicubic-matlab" in ids


@pytest.mark.torch
def test_run_all_stores_quality_and_speed_and_resumes(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    args = ["run-all", "--device", "cpu", "--data", str(tiny_data), "--scale", "4", "--out", str(out),
            "--pool", "none", "--models", "eSR-MAX_s{scale}_K3_C1",
            "--repeats", "1", "--plots", str(tmp_path / "plots"), "--json"]
    assert main(args) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"Bicubic_s4", "bicubic-opencv", "bicubic-matlab", "eSR-MAX_s4_K3_C1"}
    for r in rows.values():
        assert r["status"] == "ok" and r["psnr:Set5"] > 10 and r["fhd_per_s"] > 0
    assert rows["bicubic-opencv"]["form"] == "native"
    db = ResultStore(out / "harness.db")
    kinds = sorted(r["measurement"] for r in db.rows())
    assert kinds == ["quality:Set5"] * 4 + ["speed"] * 4
    assert {r["weights"] for r in db.rows() if r["model"] == "eSR-MAX_s4_K3_C1"} == {"shipped"}  # the default
    import csv

    with open(out / "results_cpu.csv", newline="") as fh:  # the joined table: one row per model, what one joins on
        table = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(table) == set(rows)
    m = table["eSR-MAX_s4_K3_C1"]  # Conv2d(1, 16, 3x3, no bias): 144 weights, 144 MACs per 480x270 LR pixel
    assert float(m["params"]) == 144 and float(m["macs_per_fhd"]) == 144 * 480 * 270
    assert m["colour_space"] == "y" and m["input_shape"] == "1x1x270x480" and table["bicubic-matlab"]["colour_space"] == "rgb"
    assert float(m["psnr:Set5"]) == pytest.approx(rows["eSR-MAX_s4_K3_C1"]["psnr:Set5"]) and m["backend"] == "onnxruntime"
    assert (tmp_path / "plots" / "tradeoff_cpu_onnxruntime_fp32_x4_Set5.png").stat().st_size > 10000
    assert (tmp_path / "plots" / "visual_cpu_onnxruntime_fp32_x4.png").stat().st_size > 5000
    html = (out / "report.html").read_text()
    assert "Bicubic_s4" in html and "bicubic-opencv" in html and (out / "report.md").is_file()
    # a second run with --resume measures nothing again and adds no rows
    assert main(args + ["--resume"]) == 0
    assert len(db.rows()) == 8
    assert main(["run-all", "--device", "nosuchdevice", "--out", str(out)]) == 2
    assert "unknown device 'nosuchdevice'" in capsys.readouterr().err


@pytest.mark.torch
def test_run_all_models_take_their_own_weights_and_their_own_scale(tiny_data, tmp_path, capsys, monkeypatch):
    import torch

    from harness.api import models_at_scales
    from harness.errors import HarnessError
    from harness.models import resolve

    pairs, own = models_at_scales(["Bicubic_s{scale}", "eSR-TM_s2_K7_C4", "BSRN_s{scale}=W/x{scale}.pth"], [2, 3])
    assert pairs == [("Bicubic_s2", 2), ("eSR-TM_s2_K7_C4", 2), ("BSRN_s2", 2), ("Bicubic_s3", 3), ("BSRN_s3", 3)]
    assert own == {("BSRN_s2", 2): "W/x2.pth", ("BSRN_s3", 3): "W/x3.pth"}  # a fixed-scale id: only at x2
    from harness.export import export_model

    onnx_path, _ = export_model("Bicubic_s2", resolve("Bicubic_s2").module, tmp_path / "run=3", form="naive")
    pairs, own = models_at_scales([str(onnx_path), "BSRN_s{scale}=/w/a=b/x{scale}.pth"], [2])
    assert pairs == [(str(onnx_path), 2), ("BSRN_s2", 2)] and own == {("BSRN_s2", 2): "/w/a=b/x2.pth"}
    with pytest.raises(HarnessError, match="eSR-TM_s2_K7_C4 is a x2 model but --scale 3"):
        models_at_scales(["eSR-TM_s2_K7_C4"], [3], explicit=True)

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    mid = "eSR-MAX_s4_K3_C1"
    torch.manual_seed(3)
    mine = tmp_path / "mine.pt"
    torch.save(resolve(mid, weights="init").module.state_dict(), mine)
    out = tmp_path / "results"
    assert main(["run-all", "--device", "cpu", "--data", str(tiny_data), "--scale", "4", "--out", str(out),
                 "--pool", "none", "--models", f"{mid}={mine}", "--repeats", "1", "--plots", str(tmp_path / "p"),
                 "--json"]) == 0
    db = ResultStore(out / "harness.db")
    recorded = {(r["measurement"], r["weights"]) for r in db.rows() if r["model"] == mid}
    assert recorded == {("quality:Set5", resolve(mid, weights=str(mine)).weights),
                        ("speed", resolve(mid, weights=str(mine)).weights)} and str(mine) in str(recorded)


def test_module_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "quality" in res.stdout


def test_a_non_positive_timeout_or_repeats_is_one_line(capsys):
    assert main(["bench", "--model", "bicubic-matlab", "--scale", "2", "--timeout", "-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --timeout -5: give a positive number of seconds"]
    assert main(["run-all", "--device", "cpu", "--repeats", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --repeats 0: give at least 1"


def test_an_unwritable_output_folder_is_found_before_the_sweep(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["run-all", "--device", "cpu", "--pool", "none", "--scale", "2", "--out", str(tmp_path / "r"),
                 "--plots", str(blocker / "plots")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(f"error: --plots {blocker / 'plots'}: cannot write there")
    assert not (tmp_path / "r" / "harness.db").exists()  # nothing measured, nothing stored
    # the cache folder (LR frames, ONNX files, engines) is checked as early, with its own fix
    monkeypatch.setenv("HARNESS_CACHE", str(blocker / "cache"))
    code = main(["run-all", "--device", "cpu", "--pool", "none", "--scale", "2", "--out", str(tmp_path / "r"),
                 "--plots", str(tmp_path / "p")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == (f"error: the cache folder {blocker / 'cache'}: cannot write there (Not a directory); "
                                     f"give a writable folder with HARNESS_CACHE=DIR or fix its permissions")
    assert not (tmp_path / "r" / "harness.db").exists()


def test_figures_go_beside_the_results_unless_plots_is_given(tmp_path, capsys):
    """run-all --out R/results draws into R/plots (found unwritable before any work: a file is in the way), and
    plot --db S/results/harness.db into S/plots, never into the checkout's plots/."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "plots").write_text("in the way")
    code = main(["run-all", "--device", "cpu", "--pool", "none", "--scale", "2", "--out", str(tmp_path / "r" / "results")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"error: --plots {tmp_path / 'r' / 'plots'}: cannot write there")
    db = tmp_path / "s" / "results" / "harness.db"
    db.parent.mkdir(parents=True)
    store = ResultStore(db)
    run, _ = store.start_run("cpu", "k")
    for model, psnr, fps in (("Bicubic_s2", 33.0, 20.0), ("eSR-MAX_s2_K3_C1", 33.5, 40.0)):
        row = {"model": model, "scale": 2, "device": "cpu", "backend": "onnxruntime", "precision": "fp32",
               "weights": "shipped", "family": model.split("_")[0]}
        store.add(run, "quality:Set5", dict(row, psnr=psnr, ssim=0.9))
        store.add(run, "speed", dict(row, fhd_per_s=fps, median_ms=1000 / fps, input_shape=[1, 1, 540, 960]))
    store.close()
    assert main(["plot", "--db", str(db)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed and all(p.startswith(str(tmp_path / "s" / "plots")) for p in printed)
    assert (tmp_path / "s" / "plots" / "tradeoff_cpu_onnxruntime_fp32_x2_Set5.png").is_file()


def test_a_backend_that_cannot_run_here_stops_before_any_work(tmp_path, capsys, monkeypatch):
    """The cuda profile's TensorRT, absent: one line with the fix and the other backends, exit 2, no store (before,
    the quality stage ran and then every speed row failed for that same reason). The same for ONNX Runtime without
    its CUDA provider, and PyTorch's CPU build asked for cuda (this machine's: the test skips where it is not)."""
    import harness.api.plan as plan

    monkeypatch.setattr(plan, "_installed", lambda name: name not in ("tensorrt",))
    out = tmp_path / "r" / "results"
    assert main(["run-all", "--device", "cuda", "--pool", "none", "--scale", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --device cuda: the tensorrt backend cannot run here: tensorrt is not importable")
    assert err.endswith("or measure with another backend (--backend torch or --backend onnxruntime)")
    assert not out.exists()
    monkeypatch.setattr(plan, "_installed", lambda name: True)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        code = main(["bench", "--device", "cuda", "--backend", "onnxruntime", "--precision", "fp32",
                     "eSR-MAX_s2_K3_C1", "--db", str(tmp_path / "b.db")])
        assert code == 2 and "has no CUDAExecutionProvider" in capsys.readouterr().err
        assert not (tmp_path / "b.db").exists()
    torch = pytest.importorskip("torch")
    if torch.version.cuda is None:
        assert main(["bench", "--device", "cuda", "--backend", "torch", "eSR-MAX_s2_K3_C1", "--db",
                     str(tmp_path / "b.db")]) == 2
        assert "is a CPU build: install a CUDA build" in capsys.readouterr().err


def test_bench_shows_the_gpu_latencies_only_where_there_are_some():
    from harness.cli.measure import SPEED_COLUMNS, speed_columns

    cpu = {"model": "a", "median_ms": 9.0, "gpu_median_ms": None, "e2e_median_ms": None}
    gpu = {"model": "b", "median_ms": 0.34, "gpu_median_ms": 0.28, "e2e_median_ms": 1.68}
    assert speed_columns([cpu]) == SPEED_COLUMNS
    cols = speed_columns([cpu, gpu])
    at = cols.index("median_ms")
    assert cols[at:at + 3] == ("median_ms", "gpu_median_ms", "e2e_median_ms") and len(cols) == len(SPEED_COLUMNS) + 2
