"""The full-colour pipeline (``--pipeline color``): an LR RGB frame in, an RGB frame out, timed as one.

For a Y model it is RGB -> BT.601 YCbCr, the model on Y, Cb/Cr by OpenCV's bicubic, back to RGB and
clamped: checked against that composition written out step by step with harness.color and cv2; for an
RGB model it is the model (clamped). It is a backend session: ``timed_compute`` times it as it times any."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import tiny_y_onnx
from harness.backends import as_nchw, make_backend
from harness.backends.base import timed_compute
from harness.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from harness.errors import HarnessError
from harness.frames import Frame, lr_inputs
from harness.models import resolve
from harness.pipeline import BIAS, FWD, INV, OFFSET, ColorPipeline, lr_rgb_inputs

H, W = 18, 26


def ort(tmp_path):
    return make_backend("onnxruntime", precision="fp32", device="cpu", threads=1, workdir=str(tmp_path))


def reference(model, rgb_hwc: np.ndarray) -> np.ndarray:
    """The application path written out: HxWx3 RGB in [0, 1] -> sHxsWx3 RGB, step by step."""
    s = model.scale
    ycc = rgb_to_ycbcr(rgb_hwc.astype(np.float64))                      # 0..255, float64
    y_hr = np.clip(model((ycc[..., 0] / 255.0).astype(np.float32)), 0, 1)  # the model on Y, clamped
    h, w = ycc.shape[:2]
    cb = cv2.resize(ycc[..., 1], (w * s, h * s), interpolation=cv2.INTER_CUBIC)
    cr = cv2.resize(ycc[..., 2], (w * s, h * s), interpolation=cv2.INTER_CUBIC)
    return ycbcr_to_rgb(np.stack([y_hr * 255.0, cb, cr], axis=2))     # back to RGB, clamped


def hwc(x: np.ndarray) -> np.ndarray:
    return np.transpose(x[0], (1, 2, 0))


def test_the_colour_conversion_is_the_protocols_bt601():
    rgb = np.random.default_rng(0).random((3, 50))  # planes: R, G, B
    ycc = FWD.astype(np.float64) @ rgb + OFFSET[:, None]
    assert np.abs(ycc * 255.0 - rgb_to_ycbcr(rgb.T).T).max() <= 1e-3  # float32 coefficients, 0..255 scale
    assert np.abs(ycc[0] * 255.0 - rgb_to_y(rgb.T)).max() <= 1e-3
    assert np.abs(INV.astype(np.float64) @ ycc + BIAS[:, None] - rgb).max() <= 1e-5


@pytest.mark.parametrize("scale", [2, 3])
def test_y_model_pipeline_is_the_step_by_step_composition(tmp_path, rng, scale):
    model = resolve(str(tiny_y_onnx(tmp_path / f"tiny{scale}.onnx", scale)))
    assert model.input_space == "y" and model.scale == scale
    pipe = ColorPipeline(ort(tmp_path).prepare(model, [(1, 1, H, W)]), model, scale)
    x = rng.random((1, 3, H, W), dtype=np.float32)  # the whole range: the clamps are exercised
    out = pipe.infer(x)
    assert out.shape == (1, 3, H * scale, W * scale) and out.dtype == np.float32
    want = reference(model, hwc(x))
    assert np.abs(hwc(out) - want).max() <= 1e-5
    assert out.min() >= 0.0 and out.max() <= 1.0 and ((out == 0).any() or (out == 1).any())  # clamped, and clamping


def test_its_y_channel_is_the_models_output_on_y(tmp_path, rng):
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    session = ort(tmp_path).prepare(model, [(1, 1, H, W)])
    pipe = ColorPipeline(session, model, 2)
    x = (0.35 + 0.3 * rng.random((1, 3, H, W))).astype(np.float32)  # muted colours: no RGB clamp at work
    out = pipe.infer(x)
    assert 0.0 < out.min() and out.max() < 1.0
    y_lr = (rgb_to_y(hwc(x)) / 255.0).astype(np.float32)
    y_model = np.clip(session.infer(y_lr[None, None])[0, 0], 0, 1)
    assert np.abs(rgb_to_y(hwc(out)) / 255.0 - y_model).max() <= 1e-5
    # and the chroma is OpenCV's bicubic of the LR chroma
    ycc_lr, ycc_out = rgb_to_ycbcr(hwc(x)), rgb_to_ycbcr(hwc(out))
    cb = cv2.resize(ycc_lr[..., 1], (2 * W, 2 * H), interpolation=cv2.INTER_CUBIC)
    assert np.abs(ycc_out[..., 1] - cb).max() <= 1e-3  # on the 0..255 scale


@pytest.mark.torch
def test_a_zoo_y_network_through_the_pipeline(tmp_path, rng):
    model = resolve("ESPCN_s2_D0_S3")
    pipe = ColorPipeline(ort(tmp_path).prepare(model, [(1, 1, H, W)]), model, 2)
    x = rng.random((1, 3, H, W), dtype=np.float32)
    want = reference(model, hwc(x))  # the model's own call: PyTorch fp32; the pipeline: its ONNX graph
    assert np.abs(hwc(pipe.infer(x)) - want).max() <= 1e-4
    assert pipe.details["runtime"] == "onnxruntime" and pipe.form in ("fast", "naive", "lean", "pad", "subpix")


@pytest.mark.parametrize("model_id", ["bicubic-opencv", "bicubic-matlab"])
def test_an_rgb_model_pipeline_is_the_model_clamped(tmp_path, rng, model_id):
    model = resolve(model_id, scale=2)
    session = ort(tmp_path).prepare(model, [(1, 3, H, W)])
    pipe = ColorPipeline(session, model, 2)
    x = rng.random((1, 3, H, W), dtype=np.float32)
    out = pipe.infer(x)
    assert np.array_equal(out, np.clip(session.infer(x), 0, 1).astype(np.float32))
    assert pipe.details["runtime"] == {"bicubic-opencv": "opencv", "bicubic-matlab": "numpy"}[model_id]
    assert pipe.details["pipeline"] == "color" and "RGB model" in pipe.details["pipeline_steps"]
    assert pipe.form == "native" and set(pipe.last_times_ms) == {"model", "clamp", "total"}


def test_timed_compute_times_the_whole_path(tmp_path, rng, monkeypatch):
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    session = ort(tmp_path).prepare(model, [(1, 1, H, W)])
    pipe = ColorPipeline(session, model)  # the scale defaults to the model's
    computes, resizes = [], []
    real_compute, real_resize = session.compute, cv2.resize
    monkeypatch.setattr(session, "compute", lambda: (computes.append(1), real_compute())[1])
    monkeypatch.setattr(cv2, "resize", lambda *a, **k: (resizes.append(1), real_resize(*a, **k))[1])
    x = rng.random((1, 3, H, W), dtype=np.float32)
    pipe.load(x)
    assert computes == [] and resizes == []  # loading does nothing timed
    wall, gpu_ms = timed_compute(pipe)
    assert wall > 0 and gpu_ms is None  # host RGB to host RGB, wall-clock
    assert computes == [1] and resizes == [1, 1]  # the model, then Cb and Cr, inside the one compute
    assert set(pipe.last_times_ms) == {"to_ycbcr", "model", "chroma", "to_rgb", "total"}
    assert pipe.last_times_ms["total"] <= wall * 1e3 + 1e-6
    assert np.abs(hwc(pipe.fetch()) - reference(model, hwc(x))).max() <= 1e-5
    d = pipe.details
    assert d["pipeline"] == "color" and d["runtime"] == "onnxruntime" and d["providers"] == session.details["providers"]
    assert "cv2.resize INTER_CUBIC" in d["pipeline_steps"] and "Y model on Y (onnxruntime)" in d["pipeline_steps"]
    assert pipe.form == session.form and pipe.device_memory_bytes() is None


def test_it_takes_one_rgb_frame_and_checks_the_models_output(tmp_path, rng):
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    pipe = ColorPipeline(ort(tmp_path).prepare(model, [(1, 1, H, W)]), model, 2)
    for bad in ((1, 1, H, W), (H, W, 3), (2, 3, H, W)):
        with pytest.raises(HarnessError, match="one LR RGB frame"):
            pipe.load(np.zeros(bad, np.float32))
    wrong = ColorPipeline(ort(tmp_path).prepare(model, [(1, 1, H, W)]), model, 3)  # told the wrong scale
    with pytest.raises(HarnessError, match=r"is not \(1, 1, 54, 78\)"):
        wrong.infer(np.zeros((1, 3, H, W), np.float32))


def test_close_closes_the_model_session(tmp_path):
    model = resolve("bicubic-opencv", scale=2)
    session = ort(tmp_path).prepare(model, [(1, 3, H, W)])
    closed = []
    session.close = lambda: closed.append(1)
    ColorPipeline(session, model).close()
    assert closed == [1]


def test_lr_rgb_inputs_are_the_frames_lr_rgb_and_give_the_y_models_input(rng):
    frames = [Frame(f"f{i}", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "test") for i in range(2)]
    rgb = lr_rgb_inputs(frames, 2, cache=False)
    assert [x.shape for x in rgb] == [(24, 32, 3)] * 2 and all(x.dtype == np.float32 for x in rgb)
    assert all(np.array_equal(a, b) for a, b in zip(rgb, lr_inputs(frames, 2, "rgb", cache=False)))
    # the pipeline's Y of an RGB input is the Y input the model sees in the Y speed rows
    ys = lr_inputs(frames, 2, "y", cache=False)
    for x, y in zip(rgb, ys):
        ycc = FWD @ as_nchw(x).reshape(3, -1) + OFFSET[:, None]
        assert np.abs(ycc[0].reshape(y.shape) - y).max() <= 1e-6

