"""ABPN and INT8 post-training quantization on the ONNX Runtime path."""
import numpy as np
import onnx
import pytest

from harness.models import resolve
from harness.quantize import calibration_inputs
from harness.runner import BenchConfig, measure


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("scale,params", [(2, 33464), (3, 42539), (4, 62048)])
def test_abpn_structure_and_anchor(scale, params):
    model = resolve(f"ABPN_s{scale}")
    assert model.input_space == "rgb" and sum(p.numel() for p in model.module.parameters()) == params
    x = np.random.default_rng(0).random((6, 7, 3), dtype=np.float32)
    assert model(x).shape == (6 * scale, 7 * scale, 3)
    for p in model.module.parameters():  # an empty body leaves the anchor: nearest-neighbour upsampling
        p.data.zero_()
    np.testing.assert_allclose(model(x), x.repeat(scale, 0).repeat(scale, 1), atol=1e-7)
    assert resolve(f"ABPN_s{scale}")(x * 5).max() <= 1.0  # clipped


def test_calibration_inputs_match_model_inputs():
    y = calibration_inputs(2, "y", count=3, patch=64)
    rgb = calibration_inputs(3, "rgb", count=2, patch=64)
    assert [a.shape for a in y] == [(1, 1, 32, 32)] * 3 and [a.shape for a in rgb] == [(1, 3, 21, 21)] * 2
    assert all(0 <= a.min() and a.max() <= 1 for a in y + rgb)


def test_int8_runs_faster_graph_and_stays_close_to_fp32(tmp_path):
    inputs = [np.random.default_rng(1).random((45, 80, 3), dtype=np.float32) for _ in range(2)]
    rec = measure("ABPN_s3", 3, BenchConfig(weights="init", repeats=1, precision="int8"), inputs=inputs)
    assert rec["precision"] == "int8" and rec["reference_ok"] and rec["psnr_vs_reference"] > 40
    graph = onnx.load(rec["session"]["onnx"])
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # a QDQ graph
