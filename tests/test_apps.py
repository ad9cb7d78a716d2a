"""User-facing commands: ONNX files as models, upscale, compare, results merge."""
import json

import numpy as np
import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from conftest import write_png
from harness.cli import main
from harness.errors import HarnessError
from harness.export import export_onnx
from harness.models import id_scale, resolve
from harness.results.store import ResultStore


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def bicubic_onnx(tmp_path):
    path = tmp_path / "mybicubic.onnx"
    export_onnx(resolve("Bicubic_s3").module, path)
    return path


@pytest.mark.torch
def test_onnx_file_is_a_model_with_its_scale(bicubic_onnx, tmp_path):
    assert id_scale(str(bicubic_onnx)) == 3
    model = resolve(str(bicubic_onnx))
    assert model.scale == 3 and model.input_space == "y" and model.id == "mybicubic"
    y = np.random.default_rng(0).random((12, 14), dtype=np.float32)
    np.testing.assert_allclose(model(y), resolve("Bicubic_s3")(y), atol=1e-5)
    with pytest.raises(HarnessError, match="is a x3 model but --scale 2"):
        resolve(str(bicubic_onnx), 2)
    class Wrong(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, size=(x.shape[2] * 2, x.shape[3] * 3))

    bad = tmp_path / "wrong.onnx"
    export_onnx(Wrong(), bad)
    with pytest.raises(HarnessError, match="not scale x input"):
        resolve(str(bad))
    with pytest.raises(HarnessError, match="does not exist"):
        resolve(str(tmp_path / "missing.onnx"))


@pytest.mark.torch
def test_upscale_colour_output(tmp_path, rng):
    src = tmp_path / "in"
    write_png(src / "a.png", rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
    assert main(["upscale", "--model", "Bicubic_s2", str(src), "-o", str(tmp_path / "out")]) == 0
    from harness.imageio import load_rgb

    out = load_rgb(tmp_path / "out" / "a_x2_Bicubic_s2.png")
    assert out.shape == (40, 48, 3)
    # colour survives: chroma comes from bicubic CbCr, not a grey image
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).mean() > 5
    assert main(["upscale", "--model", "Bicubic_s2", str(tmp_path / "nope"), "-o", str(tmp_path)]) == 2


@pytest.mark.torch
def test_compare_onnx_file_against_bicubic(bicubic_onnx, tmp_path, capsys):
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    for i in range(2):
        write_png(data / "Set5" / "HR" / f"{i}.png", rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    args = ["compare", str(bicubic_onnx), "--data", str(data), "--db", str(tmp_path / "h.db"),
            "--plots", str(tmp_path / "plots"), "--repeats", "1"]
    assert main(args + ["--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["model"] == "mybicubic" and v["scale"] == 3 and v["bicubic"] == "Bicubic_s3"
    # the same network as bicubic: equal quality, so it cannot beat bicubic in quality
    assert abs(v["psnr"] - v["bicubic_psnr"]) < 1e-6 and v["beats_bicubic_quality"] is False
    assert main(args) == 0
    assert "does not beat bicubic in quality" in capsys.readouterr().out


def test_results_merge_cli(tmp_path, capsys):
    a, b = ResultStore(tmp_path / "a.db"), ResultStore(tmp_path / "b.db")
    run, _ = b.start_run("rpi", "k")
    b.add(run, "speed", {"model": "m", "scale": 2, "device": "rpi", "backend": "onnxruntime", "precision": "fp32",
                         "weights": "official", "fhd_per_s": 3.0})
    b.close()
    assert main(["results", "merge", str(tmp_path / "b.db"), "--db", str(tmp_path / "a.db")]) == 0
    assert main(["results", "merge", str(tmp_path / "b.db"), "--db", str(tmp_path / "a.db")]) == 0
    out = capsys.readouterr().out
    assert "1 rows added, 0 already present" in out and "0 rows added, 1 already present" in out
    assert len(a.rows()) == 1
    assert main(["results", "merge", str(tmp_path / "none.db"), "--db", str(tmp_path / "a.db")]) == 2


@pytest.mark.torch
def test_module_class_with_weights_file(tmp_path):
    from fixtures.fake_models import Nearest

    net = Nearest(scale=2)
    net.gain.data.fill_(0.5)
    good = tmp_path / "nearest.pth"
    torch.save({"state_dict": net.state_dict()}, str(good))  # nested checkpoints are accepted
    model = resolve("fixtures.fake_models:Nearest", 2, str(good))
    assert model.weights == str(good) and model.module.gain.detach().item() == 0.5
    wrong = tmp_path / "wrong.pth"
    torch.save({"other": torch.zeros(1)}, str(wrong))
    with pytest.raises(HarnessError, match=r"wrong\.pth is not a fixtures\.fake_models:Nearest model"):
        resolve("fixtures.fake_models:Nearest", 2, str(wrong))
    with pytest.raises(HarnessError, match="has no official weights"):
        resolve("fixtures.fake_models:Nearest", 2, "official")
