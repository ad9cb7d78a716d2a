"""What a review of the TensorRT backend against TensorRT 8.5.2's and 10.x's Python bindings found,
each with the test that would have caught it (the fakes of test_tensorrt_backend, made to behave
like the real bindings where the earlier fakes were kinder than TensorRT)."""
from __future__ import annotations

import importlib.machinery
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.backends import tensorrt_backend as tb
from harness.errors import HarnessError

from .test_tensorrt_backend import FHD, backend, espcn, fake, onnx_file  # noqa: F401 - fixtures

pytestmark = pytest.mark.torch  # the fixtures export a real network


def _trt():
    return sys.modules["tensorrt"]


def _like_8_5_2(trt):
    """TensorRT 8.5.2's ``trt.nptype`` builds its map with ``np.bool``: on NumPy >= 1.24 (and < 2) every
    call raises, which JetPack 5.1 (8.5.2 with the NumPy pip resolves for Python 3.8) hits after the build."""
    def nptype(dtype):
        raise AttributeError("module 'numpy' has no attribute 'bool'")

    trt.nptype = nptype
    trt.__version__ = "8.5.2.2"


def _with_tf32_inspector_and_timing_cache(trt, calls):
    """The defaults of the real bindings that the older fakes left out: TF32 set on every new builder
    config, detailed profiling verbosity, the engine inspector and the timing cache."""
    trt.BuilderFlag.TF32 = "TF32"
    trt.ProfilingVerbosity = type("PV", (), {"DETAILED": "detailed", "LAYER_NAMES_ONLY": "names"})
    trt.LayerInformationFormat = type("LIF", (), {"JSON": "json", "ONELINE": "oneline"})
    config_class = type(trt.Builder(None).create_builder_config())
    original_init = config_class.__init__

    def init(self):
        original_init(self)
        self.flags.add("TF32")  # TensorRT's default
        self.profiling_verbosity = "names"

    class TimingCache:
        def __init__(self, blob):
            self.blob = bytes(blob)
            calls.timing_loaded.append(len(self.blob))

        def serialize(self):
            return memoryview(self.blob + b"+timings")

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing = cache
        return True

    config_class.__init__ = init
    config_class.clear_flag = lambda self, flag: self.flags.discard(flag)
    config_class.create_timing_cache = lambda self, blob: TimingCache(blob)
    config_class.set_timing_cache = set_timing_cache
    config_class.get_timing_cache = lambda self: self.timing
    original_build = trt.Builder.build_serialized_network

    def build(self, network, config):
        calls.verbosity.append(config.profiling_verbosity)
        return original_build(self, network, config)

    trt.Builder.build_serialized_network = build
    original_deserialize = trt.Runtime.deserialize_cuda_engine

    def deserialize(self, data):
        engine = original_deserialize(self, data)
        if engine is not None:
            kind = "Half" if "FP16" in engine.flags else "Float"

            class Inspector:
                def get_engine_information(self, fmt):
                    assert fmt == "json"
                    layers = [{"Name": "conv", "LayerType": "CaskConvolution",
                               "Outputs": [{"Name": "a", "Format/Datatype": f"Row major linear {kind} format"}]},
                              {"Name": "shuffle", "LayerType": "Shuffle", "Outputs": [{"Name": "b"}]},
                              {"Name": "tanh", "LayerType": "PointWiseV2",
                               "Outputs": [{"Name": "c", "Format/Datatype": kind}]}]
                    return json.dumps({"Layers": layers, "Bindings": ["lr", "sr"]})

            engine.create_engine_inspector = lambda: Inspector()
        return engine

    trt.Runtime.deserialize_cuda_engine = deserialize


@pytest.fixture
def real_like(fake):
    calls = fake(version="8.5.2.2")
    # torch's exporter looks tensorrt up by spec (torch._dynamo): a module without one breaks it
    _trt().__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    calls.timing_loaded, calls.verbosity = [], []
    _like_8_5_2(_trt())
    _with_tf32_inspector_and_timing_cache(_trt(), calls)
    return calls


def test_io_dtypes_do_not_go_through_trt_nptype_which_8_5_2_breaks(real_like, onnx_file, tmp_path):
    with pytest.raises(AttributeError):
        _trt().nptype("FLOAT")  # the stand-in really is broken like 8.5.2
    session = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    assert session.details["io_dtypes"] == {"lr": "float32", "sr": "float32"}
    x = np.random.default_rng(0).random(FHD[0], dtype=np.float32)
    assert session.infer(x).shape == (1, 1, 1080, 1920)
    session.close()


@pytest.mark.parametrize("name, want", [("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8),
                                        ("INT32", np.int32), ("BOOL", np.bool_), ("DataType.UINT8", np.uint8)])
def test_np_dtype_by_name(name, want):
    assert tb.np_dtype(name) is want
    assert tb.np_dtype(type("DT", (), {"name": name.rsplit(".", 1)[-1]})()) is want  # pybind enums have .name


def test_np_dtype_without_numpy_equivalent_is_one_line():
    with pytest.raises(HarnessError, match="BF16 has no NumPy equivalent"):
        tb.np_dtype("BF16")


def test_fp32_clears_tf32_and_fp16_keeps_its_flags(real_like, onnx_file, tmp_path):
    backend(tmp_path / "a", precision="fp32").prepare_onnx(onnx_file, FHD).close()
    backend(tmp_path / "b", precision="fp16").prepare_onnx(onnx_file, FHD).close()
    assert real_like.config_flags == [set(), {"TF32", "FP16"}]  # TF32 would make "fp32" TF32 on Ampere+


def test_the_precision_the_layers_really_got_is_recorded(real_like, onnx_file, tmp_path):
    fp16 = backend(tmp_path, precision="fp16").prepare_onnx(onnx_file, FHD)
    assert real_like.verbosity == ["detailed"]  # without it the inspector reports no types
    assert fp16.details["layer_precisions"] == {"fp16": 2, "untyped": 1}
    fp16.close()
    again = backend(tmp_path, precision="fp16").prepare_onnx(onnx_file, FHD)  # from the cache: inspected too
    assert again.details["engine_source"] == "cache" and again.details["layer_precisions"]["fp16"] == 2
    again.close()
    fp32 = backend(tmp_path, precision="fp32").prepare_onnx(onnx_file, FHD)
    assert fp32.details["layer_precisions"] == {"fp32": 2, "untyped": 1}
    fp32.close()


def test_layer_precisions_reads_the_inspector_formats():
    # Format/Datatype strings as TensorRT 8.x/10.x print them (DETAILED verbosity)
    info = {"Layers": [{"Outputs": [{"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}]},
                       {"Outputs": [{"Format/Datatype": "Row major linear FP16 format"}]},
                       {"Outputs": [{"Format/Datatype": "Half"}]},
                       {"Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
                       {"Name": "constant"}]}
    assert tb.layer_precisions(json.dumps(info)) == {"int8": 1, "fp16": 2, "fp32": 1, "untyped": 1}


def test_builds_share_one_timing_cache_on_disk(real_like, onnx_file, tmp_path):
    first = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    cache = Path(first.details["timing_cache"]["path"])
    assert cache.is_file() and cache.parent == Path(first.details["engine"]).parent
    assert cache.read_bytes() == b"+timings"
    first.close()
    model = onnx.load(str(onnx_file))
    model.doc_string = "another graph"  # another engine (another hash), the same TensorRT and GPU
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    second = backend(tmp_path).prepare_onnx(other, FHD)
    assert real_like.timing_loaded == [0, len(b"+timings")]  # the second build started from the first's timings
    assert cache.read_bytes() == b"+timings+timings"
    second.close()


def _fixed_batch(onnx_path: Path, out: Path, batch: int = 1) -> Path:
    model = onnx.load(str(onnx_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(out))
    return out


def test_int8_calibration_follows_a_fixed_batch(real_like, onnx_file, tmp_path):
    fixed = _fixed_batch(onnx_file, tmp_path / "fixed.onnx")
    session = backend(tmp_path, precision="int8").prepare_onnx(
        fixed, FHD, calibration={"scale": 2, "input_space": "y", "folders": None})
    shapes = [next(iter(p.values()))[0] for p in real_like.calibration_profiles]
    assert shapes and all(s[0] == 1 for s in shapes)  # batches of 8 would not fit the file's batch of 1
    assert {b.shape[0] for b in real_like.calibration_batches} == {1} and len(real_like.calibration_batches) == 32
    session.close()


def test_profile_shape_errors_are_one_line_harness_errors(real_like, onnx_file, tmp_path):
    profile_class = type(_trt().Builder(None).create_optimization_profile())

    def reject(self, name, lo, opt, hi):
        raise RuntimeError("Dimensions of min, opt and max must be in order\nmore detail")

    profile_class.set_shape = reject
    with pytest.raises(HarnessError) as err:
        backend(tmp_path).prepare_onnx(onnx_file, FHD)
    text = str(err.value)
    assert str(onnx_file) in text and "rejects the profile" in text and "\n" not in text


def test_engines_are_built_in_an_untimed_step_then_loaded_from_the_cache(real_like, tmp_path, monkeypatch):
    """form=auto builds two FP16 engines: done inside the timed child they ate its timeout; now a child of
    its own builds them (under build_timeout_s) and the measuring child finds them in the cache."""
    import multiprocessing as mp

    from harness import runner

    cfg = runner.BenchConfig(backend="tensorrt", precision="fp16", target="cuda", weights="shipped", repeats=1,
                             warmup=0, workdir=str(tmp_path), reference_check=False, timeout_s=7,
                             build_timeout_s=1234)
    parent, child = mp.Pipe(duplex=False)
    before = real_like.builders
    # in this process, with the stand-in TensorRT; not as a child (that would tie pytest to its parent, ignore Ctrl-C)
    monkeypatch.setattr("harness.children.become_child", lambda: None)
    runner._build_child(child, "eSR-TM_s2_K7_C3", 2, cfg)
    status, built = parent.recv()
    assert status == "ok" and built["engine_source"] == "built" and built["form"] in ("fast", "naive")
    assert set(built["form_trial_ms"]) == {"fast", "naive"} and real_like.builders - before == 2
    x = [np.random.default_rng(0).random((540, 960), dtype=np.float32)]
    record = runner.measure("eSR-TM_s2_K7_C3", 2, cfg, inputs=x)
    assert record["session"]["engine_source"] == "cache" and real_like.builders - before == 2  # nothing rebuilt

    seen = []

    def fake_isolated(target, args, timeout_s, what):
        seen.append((target.__name__, timeout_s))
        return ("ok", dict(built)) if target is runner._build_child else ("ok", dict(record))

    monkeypatch.setattr(runner, "_isolated", fake_isolated)
    rec = runner.measure_isolated("eSR-TM_s2_K7_C3", 2, cfg)
    assert seen == [("_build_child", 1234), ("_child", 7)] and rec["build"]["engine_source"] == "built"
    seen.clear()
    runner.measure_isolated("eSR-TM_s2_K7_C3", 2, runner.BenchConfig(weights="init"))  # ONNX Runtime: no build step
    assert [name for name, _ in seen] == ["_child"]


def test_a_failed_build_is_one_failure_row(monkeypatch):
    from harness import runner

    monkeypatch.setattr(runner, "_isolated", lambda target, args, timeout_s, what: (
        "error", "timed out after 5 s building its engine (hung?); raise the profile's build_timeout_s")
        if target is runner._build_child else pytest.fail("measured after a failed build"))
    rec = runner.measure_isolated("eSR-TM_s2_K7_C3", 2, runner.BenchConfig(backend="tensorrt", weights="init"))
    assert rec["status"] == "failed" and rec["reason"].startswith("engine build: timed out")


def test_trtexec_times_the_same_engine_beside_the_harness(real_like, tmp_path, monkeypatch):
    """Where trtexec exists, the record holds its GPU compute and latency medians on the harness's own engine,
    compared with the harness's; a published trtexec 10.9 log stands in for the real run."""
    from harness import runner
    from harness.backends import trtexec as tx

    from .test_trtexec import fake_trtexec

    exe = fake_trtexec(tmp_path, "trtexec_10.9.0_desktop_rtx3070.log")
    cfg = runner.BenchConfig(backend="tensorrt", precision="fp16", target="cuda", weights="shipped", repeats=1,
                             warmup=0, workdir=str(tmp_path / "work"), reference_check=False)
    x = [np.random.default_rng(0).random((540, 960), dtype=np.float32)]
    monkeypatch.setattr(tx, "find_trtexec", lambda: str(exe))
    record = runner.measure("eSR-TM_s2_K7_C3", 2, cfg, inputs=x)
    t = record["trtexec"]
    assert t["status"] == "ok" and t["version"] == "10.9.0"
    # the fixture's GPU Compute Time and Latency medians; the stand-in GPU's CUDA events say 0.25 ms
    assert t["compute"]["trtexec_ms"] == 111.208 and t["compute"]["harness_ms"] == 0.25
    assert t["compute"]["within"] is False and t["compute"]["verdict"].startswith("harness faster by")
    assert t["e2e"]["trtexec_ms"] == 112.567 and t["e2e"]["harness_ms"] == record["e2e"]["median_ms"]
    args = (tmp_path / "args.txt").read_text().split()  # the last run: the saved engine, with copies
    assert f"--loadEngine={record['session']['engine']}" in args and "--shapes=lr:1x1x540x960" in args
    assert "--noDataTransfers" not in args
    monkeypatch.setattr(tx, "find_trtexec", lambda: None)
    again = runner.measure("eSR-TM_s2_K7_C3", 2, cfg, inputs=x)
    assert again["trtexec"]["status"] == "absent" and "/usr/src/tensorrt/bin" in again["trtexec"]["reason"]
