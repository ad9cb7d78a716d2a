"""Every backend session says which library really computes it (``details["runtime"]``), and every model
which library computes its quality (``quality_runtime``): the MATLAB baseline is NumPy, the OpenCV one
OpenCV, on every backend; a network is onnxruntime, torch or tensorrt as its backend runs it. Each label
is checked against what ran: the library named is called, the others are made to fail."""
from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest

from conftest import tiny_y_onnx
from harness.backends import make_backend
from harness.backends.native import NativeSession
from harness.models import resolve
from harness.models.base import RUNTIMES, Upscaler, quality_runtime

from .test_tensorrt_backend import fake  # noqa: F401 - the fake tensorrt/pycuda fixture, by getfixturevalue

HAS_TORCH = importlib.util.find_spec("torch") is not None
BACKENDS = ["onnxruntime", "torch", "tensorrt"]
SHAPE_Y, SHAPE_RGB = (1, 1, 12, 16), (1, 3, 12, 16)


def backend(name, request, tmp_path):
    """``name`` on this machine's CPU (onnxruntime, torch), or TensorRT on the fake bindings."""
    if name == "torch" and not HAS_TORCH:
        pytest.skip("needs PyTorch for the torch backend")
    if name == "tensorrt":
        request.getfixturevalue("fake")
        return make_backend("tensorrt", precision="fp32", device="cuda", workdir=str(tmp_path))
    return make_backend(name, precision="fp32", device="cpu", threads=1, workdir=str(tmp_path))


@pytest.fixture
def no_onnxruntime(monkeypatch):
    import onnxruntime

    def refuse(*args, **kwargs):
        raise AssertionError("onnxruntime must not run here")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


@pytest.fixture
def ort_runs(monkeypatch):
    """One entry per ``InferenceSession.run`` call (every ONNX Runtime inference of the harness)."""
    return onnxruntime_runs(monkeypatch)


@pytest.fixture
def cv2_resizes(monkeypatch):
    import cv2

    calls = []
    real = cv2.resize

    def counting(*args, **kwargs):
        calls.append(np.asarray(args[0]).shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(cv2, "resize", counting)
    return calls


def rgb_lr(rng):
    return rng.random(SHAPE_RGB, dtype=np.float32)


# --- the classical baselines: the same library on every backend ---------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_matlab_bicubic_is_numpy_on_every_backend(name, request, tmp_path, monkeypatch, no_onnxruntime, rng):
    import cv2

    import harness.models.bicubic as bicubic

    numpy_calls = []
    real = bicubic.upscale  # harness.imresize's MATLAB resize, pure NumPy

    def counting(img, scale):
        numpy_calls.append(img.shape)
        return real(img, scale)

    def no_cv2(*args, **kwargs):
        raise AssertionError("OpenCV must not run bicubic-matlab")

    monkeypatch.setattr(bicubic, "upscale", counting)
    monkeypatch.setattr(cv2, "resize", no_cv2)
    model = resolve("bicubic-matlab", scale=2)
    session = backend(name, request, tmp_path).prepare(model, [SHAPE_RGB])
    assert isinstance(session, NativeSession) and session.form == "native"
    assert session.details["runtime"] == "numpy" == quality_runtime(model)
    x = rgb_lr(rng)
    out = session.infer(x)
    assert numpy_calls == [(12, 16, 3)] and out.shape == (1, 3, 24, 32)
    want = model(np.transpose(x[0], (1, 2, 0)))
    assert np.abs(np.transpose(out[0], (1, 2, 0)) - want).max() <= 1e-6


@pytest.mark.parametrize("name", BACKENDS)
def test_opencv_bicubic_is_opencv_on_every_backend(name, request, tmp_path, no_onnxruntime, cv2_resizes, rng):
    model = resolve("bicubic-opencv", scale=3)
    session = backend(name, request, tmp_path).prepare(model, [SHAPE_RGB])
    assert isinstance(session, NativeSession)
    assert session.details["runtime"] == "opencv" == quality_runtime(model)
    assert cv2_resizes == []
    out = session.infer(rgb_lr(rng))
    assert cv2_resizes == [(12, 16, 3)] and out.shape == (1, 3, 36, 48)


# --- a network: what its backend runs ------------------------------------------------------------------
def test_a_user_onnx_file_on_onnxruntime_is_onnxruntime(tmp_path, ort_runs, rng):
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    session = make_backend("onnxruntime", device="cpu", threads=1, workdir=str(tmp_path)).prepare(model, [SHAPE_Y])
    assert session.details["runtime"] == "onnxruntime" and session.details["providers"] == ["CPUExecutionProvider"]
    before = len(ort_runs)
    x = rng.random(SHAPE_Y, dtype=np.float32)
    out = session.infer(x)
    assert len(ort_runs) == before + 1
    assert np.abs(out - (0.9 * x + 0.05).repeat(2, axis=2).repeat(2, axis=3)).max() <= 1e-6


def test_a_user_onnx_file_run_as_it_is_by_the_torch_backend_is_onnxruntime(tmp_path, ort_runs, rng):
    """The torch backend has no module to run for an ONNX file: the model runs itself, on ONNX Runtime."""
    if not HAS_TORCH:
        pytest.skip("needs PyTorch for the torch backend")
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    session = make_backend("torch", device="cpu", threads=1).prepare(model, [SHAPE_Y])
    assert isinstance(session, NativeSession) and session.details["runtime"] == "onnxruntime"
    before = len(ort_runs)
    session.infer(rng.random(SHAPE_Y, dtype=np.float32))
    assert len(ort_runs) == before + 1


def test_a_user_onnx_file_on_tensorrt_is_tensorrt(tmp_path, fake, rng):
    model = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    session = make_backend("tensorrt", precision="fp32", device="cuda", workdir=str(tmp_path)).prepare(model, [SHAPE_Y])
    assert session.details["runtime"] == "tensorrt" and session.form == "onnx"
    session.infer(rng.random(SHAPE_Y, dtype=np.float32))
    assert len(fake.calls.executes) == 1  # TensorRT's execute (the fake's), not a NumPy or torch path
    session.close()


@pytest.mark.torch
@pytest.mark.parametrize("name", BACKENDS)
def test_a_zoo_network_is_what_its_backend_runs(name, request, tmp_path, monkeypatch, rng):
    model = resolve("ESPCN_s2_D0_S3")
    net = type(model.module)
    forwards = []
    real_forward = net.forward

    def counting(self, *args, **kwargs):
        forwards.append(1)
        return real_forward(self, *args, **kwargs)

    session = backend(name, request, tmp_path).prepare(model, [SHAPE_Y])  # the ONNX export traces forward: before counting
    monkeypatch.setattr(net, "forward", counting)
    ort_calls = onnxruntime_runs(monkeypatch)
    if name == "torch":
        request.getfixturevalue("no_onnxruntime")  # any ONNX Runtime session now fails
    trt_calls = request.getfixturevalue("fake").calls.executes if name == "tensorrt" else []
    trt_before = len(trt_calls)  # the form trial (auto: fast and naive timed briefly) executed already
    out = session.infer(rng.random(SHAPE_Y, dtype=np.float32))
    assert out.shape == (1, 1, 24, 32) and session.details["runtime"] == name
    if name == "torch":
        assert forwards == [1] and ort_calls == []
    elif name == "onnxruntime":
        assert forwards == [] and ort_calls == [1]
    else:  # the fake engine computes with ONNX Runtime behind TensorRT's execute call
        assert forwards == [] and len(trt_calls) == trt_before + 1
    assert quality_runtime(model) == "torch"  # its quality: PyTorch fp32, whatever backend times it
    session.close()


def onnxruntime_runs(monkeypatch):
    """One entry per ``InferenceSession.run`` call from now on."""
    import onnxruntime

    calls = []
    real = onnxruntime.InferenceSession.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counting)
    return calls


@pytest.mark.torch
def test_classsr_routed_onnx_pipeline_is_onnxruntime(tmp_path, monkeypatch, rng):
    from harness.backends.classsr_onnx import ClassSROnnx
    from harness.models import classsr

    model = resolve(classsr.MODEL_ID, weights="init")
    session = make_backend("onnxruntime", device="cpu", threads=1, workdir=str(tmp_path)).prepare(model, [(1, 1, 40, 60)])
    assert isinstance(session, ClassSROnnx) and session.details["runtime"] == "onnxruntime"
    runs = onnxruntime_runs(monkeypatch)
    monkeypatch.setattr(type(model.module), "forward", None)  # the PyTorch module must not run
    assert session.infer(rng.random((1, 1, 40, 60), dtype=np.float32)).shape == (1, 1, 160, 240)
    assert len(runs) >= 2  # the classifier, then at least one branch
    assert quality_runtime(model) == "torch"


# --- the quality stage ---------------------------------------------------------------------------------
def test_quality_runtime_names_what_computes_model_of_lr(tmp_path, monkeypatch, ort_runs, cv2_resizes, rng):
    lr = rng.random((10, 14, 3), dtype=np.float32)
    matlab, opencv = resolve("bicubic-matlab", scale=2), resolve("bicubic-opencv", scale=2)
    matlab(lr)
    assert quality_runtime(matlab) == "numpy" and cv2_resizes == [] and ort_runs == []
    opencv(lr)
    assert quality_runtime(opencv) == "opencv" and len(cv2_resizes) == 1 and ort_runs == []

    user = resolve(str(tiny_y_onnx(tmp_path / "tiny.onnx")))
    ort_runs.clear()
    user(lr[..., 0])
    assert quality_runtime(user) == "onnxruntime" and ort_runs == [1]

    # an export folder's models (no PyTorch): their graphs run on ONNX Runtime
    assert quality_runtime(types.SimpleNamespace(onnx_forms={"naive": "m.onnx"}, module=None)) == "onnxruntime"
    assert quality_runtime(types.SimpleNamespace(onnx_parts={"classifier": "c.onnx"})) == "onnxruntime"
    # a model that says nothing of itself is not given a library it may not use
    assert quality_runtime(Upscaler(id="x", family="x", scale=2)) == "unknown"
    assert {quality_runtime(m) for m in (matlab, opencv, user)} <= set(RUNTIMES)


@pytest.mark.torch
def test_quality_runtime_of_a_torch_network():
    assert quality_runtime(resolve("Bicubic_s2")) == "torch"
    assert quality_runtime(resolve("ESPCN_s2_D0_S3")) == "torch"
