"""The command line as users call it (in-process for speed; one real subprocess)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_png
from harness.cli import main


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


def test_run_all_writes_results(tiny_data, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run-all", "--device", "cpu", "--data", str(tiny_data), "--scale", "2", "--out", str(out)]) == 0
    lines = (out / "quality_cpu.csv").read_text().splitlines()
    assert lines[0] == "model,scale,set,psnr,ssim,images,weights,device"
    assert len(lines) == 4  # three baselines at x2 on Set5
    assert main(["run-all", "--device", "nosuchdevice", "--out", str(out)]) == 2
    assert "unknown device 'nosuchdevice'" in capsys.readouterr().err


def test_module_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "quality" in res.stdout
