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


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.torch
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


@pytest.mark.torch
def test_int8_runs_faster_graph_and_stays_close_to_fp32(tmp_path):
    inputs = [np.random.default_rng(1).random((45, 80, 3), dtype=np.float32) for _ in range(2)]
    rec = measure("ABPN_s3", 3, BenchConfig(weights="init", repeats=1, precision="int8"), inputs=inputs)
    assert rec["precision"] == "int8" and rec["reference_ok"] and rec["psnr_vs_reference"] > 40
    graph = onnx.load(rec["session"]["onnx"])
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # a QDQ graph


# --- calibration on training images --------------------------------------------------------------
def smooth_image(rng, h, w):
    """A smooth RGB uint8 image (a few random values, bilinearly enlarged): natural-image-like statistics."""
    from PIL import Image

    small = rng.integers(0, 255, (4, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.fixture
def calib_folder(tmp_path, rng):
    from conftest import write_png

    folder = tmp_path / "train"
    for i in range(3):
        write_png(folder / "sub" / f"t{i}.png", smooth_image(rng, 100, 120))
    return folder


def test_calibration_source_names_the_images_and_changes_with_them(calib_folder, rng):
    from conftest import write_png
    from harness.errors import HarnessError
    from harness.quantize import calibration_source

    assert calibration_source(None) == {"source": "embedded", "images": 14, "key": "embedded"}
    src = calibration_source([str(calib_folder)])
    assert src["source"] == "folders" and src["images"] == 3 and src["folders"] == [str(calib_folder.resolve())]
    assert calibration_source([str(calib_folder)]) == src  # stable
    write_png(calib_folder / "t9.png", smooth_image(rng, 100, 120))
    assert calibration_source([str(calib_folder)])["key"] != src["key"]
    patches = calibration_inputs(3, "rgb", count=4, folders=[str(calib_folder)])
    assert [p.shape for p in patches] == [(1, 3, 32, 32)] * 4
    assert not np.array_equal(patches[0], calibration_inputs(3, "rgb", count=1)[0])
    with pytest.raises(HarnessError, match="does not exist"):
        calibration_source([str(calib_folder / "missing")])


@pytest.mark.torch
def test_int8_bench_uses_and_records_the_calibration_folders(calib_folder):
    inputs = [np.random.default_rng(1).random((45, 80, 3), dtype=np.float32)]
    cfg = BenchConfig(weights="init", repeats=1, precision="int8", calib_data=[str(calib_folder)])
    rec = measure("ABPN_s3", 3, cfg, inputs=inputs)
    cal = rec["calibration"]
    assert cal["source"] == "folders" and cal["images"] == 3 and cal["method"] == "ort-minmax-qdq"
    assert rec["session"]["onnx"].endswith(f".int8-{cal['key']}.onnx") and rec["psnr_vs_reference"] > 35
    default = measure("ABPN_s3", 3, BenchConfig(weights="init", repeats=1, precision="int8"), inputs=inputs)
    assert default["calibration"]["source"] == "embedded" and default["session"]["onnx"].endswith(".naive.int8.onnx")
    fp32 = measure("ABPN_s3", 3, BenchConfig(weights="init", repeats=1), inputs=inputs)
    assert "calibration" not in fp32


def test_calib_data_option_reaches_the_runner_config(calib_folder, capsys):
    from harness.cli import build_parser, main
    from harness.cli.options import device_config

    args = build_parser().parse_args(["bench", "--model", "ABPN_s3", "--precision", "int8",
                                      "--calib-data", f"{calib_folder},{calib_folder}"])
    _, cfg = device_config(args)
    assert cfg.calib_data == [str(calib_folder.resolve())] * 2 and cfg.precision == "int8"
    assert main(["bench", "--model", "ABPN_s3", "--precision", "int8", "--calib-data", str(calib_folder / "no")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --calib-data") and "no such folder" in err[0]


# --- quantization-aware training ------------------------------------------------------------------
def smooth_input(h=24, w=30, seed=3):
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(np.transpose(smooth_image(rng, h, w), (2, 0, 1))[None] / 255.0, dtype=np.float32)


@pytest.mark.torch
def test_qat_finetune_exports_a_qdq_onnx_close_to_fp32(tmp_path, calib_folder):
    import onnxruntime as ort
    import torch

    from harness.quantize import PatchPairs, qat_finetune, qdq_ops
    from harness.runner import output_psnr

    torch.manual_seed(0)
    model = resolve("ABPN_s3")
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    pairs = PatchPairs(3, "rgb", folders=[str(calib_folder)], patch=48, batch=2, seed=0)
    lr, hr = pairs.next()
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 48, 48) and 0 <= float(lr.min()) <= float(lr.max()) <= 1
    result = qat_finetune("ABPN_s3", model.module, pairs, steps=4, lr=1e-5, out=tmp_path / "abpn.qat.onnx")
    assert len(result["losses"]) == 4 and all(np.isfinite(result["losses"]))
    assert all(torch.equal(before[k], v) for k, v in model.module.state_dict().items())  # FP32 model untouched
    ops = qdq_ops(result["onnx"])
    assert ops["QuantizeLinear"] >= 9 and ops["DequantizeLinear"] >= 9  # input, 7 weights, 7 activations, add
    assert {"Add", "DepthToSpace", "Clip", "Conv"} <= set(ops)  # the anchor add and the final clamp survive
    session = ort.InferenceSession(str(result["onnx"]), providers=["CPUExecutionProvider"])
    x = smooth_input()
    got = session.run(None, {"lr": x})[0]
    with torch.no_grad():
        want = model.module(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (1, 3, 72, 90)
    assert output_psnr(want, got) > 30  # the INT8 graph stays within 30 dB of FP32 (measured ~50 dB)
    assert session.run(None, {"lr": x * 4})[0].max() <= 1.0  # clamped


@pytest.mark.torch
def test_qat_is_for_abpn_and_takes_tensor_batches():
    import torch

    from harness.errors import HarnessError
    from harness.quantize import qat_finetune

    with pytest.raises(HarnessError, match="implemented for ABPN"):
        qat_finetune("ESPCN_s2_D0_S3", resolve("ESPCN_s2_D0_S3").module, [], steps=1)
    batches = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16))]
    out = qat_finetune("ABPN_s2", resolve("ABPN_s2").module, batches, steps=2)
    assert out["onnx"] is None and len(out["losses"]) == 2


# --- the FP32 / INT8 report -----------------------------------------------------------------------
@pytest.fixture
def tiny_set(tmp_path, rng):
    from conftest import write_png

    for i in range(2):
        write_png(tmp_path / "data" / "Set5" / "HR" / f"im{i}.png", smooth_image(rng, 48, 60))
    return tmp_path / "data"


@pytest.mark.torch
def test_int8_report_prints_every_column(tiny_set, calib_folder, capsys):
    import json
    import math

    import torch

    from harness.cli import main

    torch.manual_seed(0)  # the same init weights both times: the second run reuses the cached graphs
    args = ["int8-report", "--model", "ABPN_s3", "--weights", "init", "--data", str(tiny_set), "--sets", "Set5",
            "--calib-data", str(calib_folder), "--qat-steps", "2", "--qat-batch", "2", "--frame-size", "96x48",
            "--runs", "1", "--threads", "1"]
    assert main(args + ["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert row["set"] == "Set5" and row["images"] == 2 and row["lr_shape"] == [1, 3, 16, 32]
    for k in ("fp32", "ptq", "qat"):
        for col in (f"{k}_psnr_rgb", f"{k}_psnr_y", f"{k}_ms"):
            assert isinstance(row[col], float) and math.isfinite(row[col]) and row[col] > 0, col
    assert abs(row["ptq_psnr_rgb"] - row["fp32_psnr_rgb"]) < 0.5  # INT8 output close to FP32's
    assert row["calibration"]["source"] == "folders" and row["qat"]["data"]["source"] == "folders"
    assert row["qat"]["steps"] == 2 and row["published_rgb"] == {"fp32": 30.22, "ptq": 30.09, "qat": 30.15}
    torch.manual_seed(0)
    assert main(args) == 0  # the table (the QAT graph now comes from the cache)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["set", "images", "FP32", "RGB"] and "QAT RGB dB" in out[0]
    cells = out[2].split()
    assert cells[:2] == ["Set5", "2"] and all(math.isfinite(float(c)) for c in cells[2:])
    assert any("calibrated on 3 images" in line for line in out) and any("published" in line for line in out)


@pytest.mark.torch
def test_int8_report_missing_set_is_one_error_line(tiny_set, capsys):
    from harness.cli import main

    assert main(["int8-report", "--weights", "init", "--data", str(tiny_set), "--sets", "DIV2K"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: test set DIV2K not found")


def test_rgb_psnr_crops_and_averages_over_channels():
    from harness.metrics import psnr, psnr_rgb

    ref = np.zeros((10, 12, 3))
    test = ref.copy()
    test[0, :, :] = 255.0  # only the cropped border row differs
    assert psnr_rgb(ref, test, crop=1) == float("inf")
    test = ref + np.array([0.0, 0.0, 3.0])  # one channel off by 3: MSE 3
    assert psnr_rgb(ref, test, crop=2) == pytest.approx(10 * np.log10(255 ** 2 / 3.0))
    assert psnr_rgb(ref, test) == psnr(ref, test)
    with pytest.raises(ValueError, match="HxWx3"):
        psnr_rgb(ref[..., 0], test[..., 0])


def test_timing_interleaves_the_graphs_it_compares():
    """Each round times every graph once, so a drift of the machine falls on all of them alike."""
    from types import SimpleNamespace

    from harness.int8_report import sessions_median_ms

    calls = []

    class FakeSession:
        def __init__(self, name):
            self.name = name

        def get_inputs(self):
            return [SimpleNamespace(name="input")]

        def run(self, outputs, feeds):
            calls.append((self.name, feeds["input"].shape))
            return [feeds["input"]]

    ms = sessions_median_ms({"fp32": FakeSession("a"), "ptq": FakeSession("b")}, (1, 3, 4, 5), runs=3)
    assert set(ms) == {"fp32", "ptq"} and all(v >= 0 for v in ms.values())
    assert [c[0] for c in calls] == ["a", "b"] + ["a", "b"] * 3  # warm-ups, then alternating rounds
    assert all(shape == (1, 3, 4, 5) for _, shape in calls)
