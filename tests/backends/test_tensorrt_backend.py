"""The TensorRT backend without a GPU: the probe's one-line reasons where tensorrt/pycuda are
absent, then everything up to the TensorRT calls against FAKE ``tensorrt`` and ``pycuda``
modules (the real ONNX export is parsed; the fake engine runs it in ONNX Runtime on NumPy
"device" buffers): profile, precision flags, int8 rules, parser errors, the engine cache,
and both execution APIs (TensorRT >= 8.5 name-based, TensorRT 8.2 binding index)."""
from __future__ import annotations

import itertools
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from harness.backends import make_backend
from harness.backends import tensorrt_backend as tb
from harness.backends.base import BackendUnavailable
from harness.backends.native import NativeSession
from harness.errors import HarnessError
from harness.export import export_model
from harness.models import resolve

FHD = [(1, 1, 540, 960), (1, 1, 360, 640), (1, 1, 270, 480)]  # x2, x3, x4 LR of one Full-HD frame
MAGIC = b"FAKETRT1"


# --- fakes ----------------------------------------------------------------------------------
class Calls:
    """What the fake TensorRT and pycuda were asked to do."""

    def __init__(self):
        self.builders = 0
        self.network_flags = []
        self.config_flags = []
        self.pool_limits = []
        self.max_workspace = []
        self.profiles = []
        self.calibrators = []
        self.calibration_profiles = []
        self.calibration_batches = []
        self.calibration_cache_reads = 0
        self.deserialized = 0
        self.executes = []
        self.contexts_retained = 0
        self.push = 0
        self.pop = 0
        self.freed = 0


class Enum:
    def __init__(self, *names):
        for n in names:
            setattr(self, n, n)


def make_fake_trt(calls, version="8.6.1", api="v3", memory_pool=True, serialized=True, fail_build=False,
                  weak_typing=True):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class Severity:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = "internal_error", "error", "warning", "info", "verbose"

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity

    class Logger(ILogger):
        WARNING = Severity.WARNING

        def __init__(self, level=None):
            super().__init__()

    trt.ILogger, trt.Logger = ILogger, Logger

    class IInt8EntropyCalibrator2:  # the pybind base: subclasses call its __init__
        def __init__(self):
            pass

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.BuilderFlag = Enum("FP16", "INT8") if weak_typing else Enum("REFIT")  # TensorRT 11: no precision flags
    trt.TensorIOMode = Enum("INPUT", "OUTPUT")
    trt.DataType = Enum("FLOAT", "HALF")
    trt.nptype = lambda dt: {"FLOAT": np.float32, "HALF": np.float16}[dt]
    if memory_pool:
        trt.MemoryPoolType = Enum("WORKSPACE")

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    class Network:
        def __init__(self, flags):
            self.flags, self.inputs, self.outputs, self.onnx, self.scale = flags, [], [], b"", 1

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

    class ParserError:
        def __init__(self, desc):
            self._desc = desc

        def desc(self):
            return self._desc

        def node(self):
            return -1

    class OnnxParser:
        """Parses the real ONNX bytes with onnx; errors like TensorRT's (num_errors/get_error)."""

        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, data):
            try:
                model = onnx.load_from_string(data)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(ParserError(f"Failed to parse ONNX model from buffer\n{type(exc).__name__}"))
                return False
            g = model.graph
            x = g.input[0]
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in x.type.tensor_type.shape.dim)
            self.network.inputs = [Tensor(x.name, dims)]
            self.network.outputs = [Tensor(o.name, None) for o in g.output]
            props = {p.key: p.value for p in model.metadata_props}
            self.network.scale = int(props.get("scale") or 1)
            self.network.onnx = data
            return True

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i):
            return self.errors[i]

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))
            calls.profiles.append((name, tuple(lo), tuple(opt), tuple(hi)))

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.int8_calibrator = set(), [], None

        def set_flag(self, flag):
            self.flags.add(flag)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def set_calibration_profile(self, profile):
            calls.calibration_profiles.append(dict(profile.shapes))
            return True

        def __setattr__(self, name, value):
            if name == "max_workspace_size":
                calls.max_workspace.append(value)
            object.__setattr__(self, name, value)

    if memory_pool:
        def set_memory_pool_limit(self, pool, size):
            calls.pool_limits.append((pool, size))

        Config.set_memory_pool_limit = set_memory_pool_limit

    def blob(network, config):
        (name, (lo, opt, hi)), = config.profiles[0].shapes.items()
        header = {"in": network.inputs[0].name, "out": network.outputs[0].name, "scale": network.scale,
                  "min": lo, "max": hi, "flags": sorted(config.flags)}
        return MAGIC + json.dumps(header).encode() + b"\n" + network.onnx

    class Builder:
        platform_has_fast_fp16 = True
        platform_has_fast_int8 = True

        def __init__(self, logger):
            self.logger = logger
            calls.builders += 1

        def create_network(self, flags=0):
            calls.network_flags.append(flags)
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def _build(self, network, config):
            calls.config_flags.append(set(config.flags))
            calls.calibrators.append(config.int8_calibrator)
            calibrator = config.int8_calibrator
            if hasattr(calibrator, "get_batch"):  # calibrate like TensorRT: the cache, else batches until None
                if calibrator.read_calibration_cache():
                    calls.calibration_cache_reads += 1
                else:
                    n = calibrator.get_batch_size()
                    shape = next(iter(calls.calibration_profiles[-1].values()))[1]
                    assert shape[0] == n
                    while True:
                        pointers = calibrator.get_batch([network.inputs[0].name])
                        if pointers is None:
                            break
                        raw = MEMORY[int(pointers[0])][:int(np.prod(shape)) * 4]
                        calls.calibration_batches.append(raw.view(np.float32).reshape(shape).copy())
                    calibrator.write_calibration_cache(memoryview(b"TRT-8601-EntropyCalibration2\nlr: 3c010a14\n"))
            if fail_build:
                self.logger.log(Severity.ERROR, "Could not find any implementation for node Conv_0")
                return None
            return blob(network, config)

    if serialized:
        Builder.build_serialized_network = Builder._build
    else:  # TensorRT 7: build_engine returns an engine to serialize
        def build_engine(self, network, config):
            data = self._build(network, config)
            return None if data is None else types.SimpleNamespace(serialize=lambda: data)

        Builder.build_engine = build_engine

    class Context:
        def __init__(self, engine):
            self.engine, self.shape, self.addresses = engine, None, {}

        def _set(self, shape):
            shape = tuple(shape)
            if any(not (a <= d <= b) for a, d, b in zip(self.engine.lo, shape, self.engine.hi)):
                return False
            self.shape = shape
            return True

        def _out_shape(self):
            if self.shape is None:
                return (-1, -1, -1, -1)
            n, c, h, w = self.shape
            s = self.engine.scale
            return (n, c, h * s, w * s)

        def _run(self, in_ptr, out_ptr):
            import onnxruntime as ort

            if self.engine.ort is None:
                self.engine.ort = ort.InferenceSession(self.engine.onnx, providers=["CPUExecutionProvider"])
            x = MEMORY[in_ptr][:int(np.prod(self.shape)) * 4].view(np.float32).reshape(self.shape)
            y = self.engine.ort.run(None, {self.engine.in_name: x})[0]
            MEMORY[out_ptr][:y.nbytes] = np.frombuffer(y.astype(np.float32).tobytes(), np.uint8)
            return True

    class ContextV3(Context):
        def set_input_shape(self, name, shape):
            assert name == self.engine.in_name
            return self._set(shape)

        def get_tensor_shape(self, name):
            assert name == self.engine.out_name
            return self._out_shape()

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream_handle):
            calls.executes.append(("v3", stream_handle))
            return self._run(self.addresses[self.engine.in_name], self.addresses[self.engine.out_name])

    class ContextV2(Context):
        def set_binding_shape(self, index, shape):
            assert index == 0
            return self._set(shape)

        def get_binding_shape(self, index):
            assert index == 1
            return self._out_shape()

        def execute_async_v2(self, bindings, stream_handle):
            calls.executes.append(("v2", stream_handle))
            return self._run(bindings[0], bindings[1])

    class Engine:
        def __init__(self, header, onnx_bytes):
            self.in_name, self.out_name = header["in"], header["out"]
            self.scale, self.lo, self.hi = header["scale"], tuple(header["min"]), tuple(header["max"])
            self.flags, self.onnx, self.ort = header["flags"], onnx_bytes, None
            self.device_memory_size = 12345

    class EngineV3(Engine):
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return (self.in_name, self.out_name)[i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == self.in_name else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return trt.DataType.FLOAT

        def create_execution_context(self):
            return ContextV3(self)

    class EngineV2(Engine):
        num_bindings = 2

        def get_binding_name(self, i):
            return (self.in_name, self.out_name)[i]

        def binding_is_input(self, i):
            return i == 0

        def get_binding_dtype(self, i):
            return trt.DataType.FLOAT

        def get_binding_index(self, name):
            return (self.in_name, self.out_name).index(name)

        def create_execution_context(self):
            return ContextV2(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            calls.deserialized += 1
            data = bytes(data)
            if not data.startswith(MAGIC):
                return None  # what TensorRT does for a corrupt blob (after logging an error)
            header, onnx_bytes = data[len(MAGIC):].split(b"\n", 1)
            return (EngineV3 if api == "v3" else EngineV2)(json.loads(header), onnx_bytes)

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


MEMORY = {}
_ADDRESSES = itertools.count(0x1000, 0x1000)


def make_fake_pycuda(calls):
    pycuda = types.ModuleType("pycuda")
    pycuda.VERSION_TEXT = "2022.2.2"
    driver = types.ModuleType("pycuda.driver")

    class Ctx:
        def push(self):
            calls.push += 1

        def pop(self):
            calls.pop += 1

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def name(self):
            return "Fake GPU (Xavier)"

        def retain_primary_context(self):
            calls.contexts_retained += 1
            return Ctx()

    class Allocation:
        def __init__(self, nbytes):
            self.address = next(_ADDRESSES)
            MEMORY[self.address] = np.zeros(nbytes, np.uint8)

        def __int__(self):
            return self.address

        def free(self):
            calls.freed += 1
            MEMORY.pop(self.address, None)

    class Stream:
        handle = 0xBEEF

        def synchronize(self):
            pass

    class Event:
        def record(self, stream=None):
            self.t = len(calls.executes)

        def synchronize(self):
            pass

        def time_till(self, other):
            return 0.25

    def memcpy_htod_async(dest, src, stream=None):
        raw = np.ascontiguousarray(src).view(np.uint8).ravel()
        MEMORY[int(dest)][:raw.size] = raw

    def memcpy_htod(dest, src):
        memcpy_htod_async(dest, src)

    def memcpy_dtoh_async(dest, src, stream=None):
        raw = dest.view(np.uint8).reshape(-1)
        raw[:] = MEMORY[int(src)][:raw.size]

    driver.init = lambda: None
    driver.Device, driver.Stream, driver.Event = Device, Stream, Event
    driver.Context = types.SimpleNamespace(get_current=lambda: None)
    driver.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    driver.mem_alloc = Allocation
    driver.memcpy_htod_async, driver.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
    driver.memcpy_htod = memcpy_htod
    driver.get_version = lambda: (11, 4, 0)
    driver.get_driver_version = lambda: 11040
    pycuda.driver = driver
    autoinit = types.ModuleType("pycuda.autoinit")
    pycuda.autoinit = autoinit
    return pycuda, driver, autoinit


@pytest.fixture
def fake(monkeypatch):
    """Install fake tensorrt/pycuda; ``fake(**flavour)`` swaps in another TensorRT flavour."""
    calls = Calls()
    pycuda, driver, autoinit = make_fake_pycuda(calls)
    for name, module in (("pycuda", pycuda), ("pycuda.driver", driver), ("pycuda.autoinit", autoinit)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(tb, "_CUDA", tb._SharedContext())
    monkeypatch.setattr(tb, "_LOGGER", None)

    def install(**flavour):
        monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(calls, **flavour))
        monkeypatch.setattr(tb, "_LOGGER", None)
        return calls

    install()
    install.calls = calls
    return install


@pytest.fixture(scope="module")
def espcn():
    """A real x2 network (small ESPCN) and its ONNX export (input ``lr``, output ``sr``, dynamic N/H/W)."""
    return resolve("ESPCN_s2_D0_S3")


@pytest.fixture(scope="module")
def onnx_file(espcn, tmp_path_factory):
    path, form = export_model(espcn.id, espcn.module, tmp_path_factory.mktemp("onnx"), form="naive")
    return path


def backend(tmp_path, precision="fp16", **options):
    return make_backend("tensorrt", precision=precision, device="cuda", workdir=str(tmp_path), **options)


def reference(onnx_path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"lr": x})[0]


# --- probe without the libraries --------------------------------------------------------------
@pytest.mark.torch
def test_probe_without_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    ok, why = tb.TensorRTBackend.probe()
    assert not ok and why == tb.TENSORRT_MISSING and "\n" not in why
    assert "JetPack" in why and "pip install tensorrt" in why
    with pytest.raises(BackendUnavailable, match="tensorrt is not importable"):
        backend(tmp_path).prepare(resolve("ESPCN_s2_D0_S3"), FHD)


def test_probe_without_pycuda(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(Calls()))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.delitem(sys.modules, "pycuda.driver", raising=False)
    ok, why = tb.TensorRTBackend.probe()
    assert not ok and "pip install pycuda" in why and "\n" not in why
    with pytest.raises(BackendUnavailable, match="pycuda"):
        backend(tmp_path).prepare_onnx(tmp_path / "x.onnx", FHD)


def test_the_probe_says_what_is_missing_on_this_host():
    """The probe's verdict follows what is installed, read independently of the backend."""
    import importlib.util

    ok, why = tb.TensorRTBackend.probe()
    if importlib.util.find_spec("tensorrt") is None:
        assert (ok, why) == (False, tb.TENSORRT_MISSING)
    elif importlib.util.find_spec("pycuda") is None:
        assert not ok and "pip install pycuda" in why
    else:
        pytest.skip("tensorrt and pycuda are installed here: the GPU tests cover the probe")


# --- build: profile, flags, workspace ---------------------------------------------------------
@pytest.mark.torch
def test_fp16_engine_profile_covers_the_fhd_shapes(fake, onnx_file, tmp_path):
    calls = fake.calls
    order = [FHD[1], FHD[0], FHD[2]]  # opt is the first shape given, not the largest
    session = backend(tmp_path).prepare_onnx(onnx_file, order)
    assert calls.builders == 1 and calls.network_flags == [1 << 0]  # EXPLICIT_BATCH on TensorRT 8
    assert calls.profiles == [("lr", (1, 1, 270, 480), (1, 1, 360, 640), (1, 1, 540, 960))]
    assert calls.config_flags == [{"FP16"}]
    assert calls.pool_limits == [("WORKSPACE", tb.DEFAULT_WORKSPACE_MB << 20)] and calls.max_workspace == []
    d = session.details
    assert d["engine_source"] == "built" and d["precision"] == "fp16" and d["tensorrt"] == "8.6.1"
    assert d["platform_has_fast_fp16"] is True and isinstance(d["build_s"], float)
    assert d["trt_api"].startswith("v3") and Path(d["engine"]).is_file()
    assert d["profile"] == {"min": [1, 1, 270, 480], "opt": [1, 1, 360, 640], "max": [1, 1, 540, 960]}
    # buffers sized for the largest shape; every prepared shape runs, in any order
    assert session.device_memory_bytes() == 12345 + 4 * (540 * 960 + 1080 * 1920)
    rng = np.random.default_rng(0)
    for shape in (FHD[2], FHD[0], FHD[1]):
        x = rng.random(shape, dtype=np.float32)
        y = session.infer(x)
        assert y.shape == (1, 1, 2 * shape[2], 2 * shape[3]) and y.dtype == np.float32
        np.testing.assert_allclose(y, reference(onnx_file, x), atol=1e-6)
        assert session.last_gpu_ms == 0.25
    assert [e[0] for e in calls.executes] == ["v3"] * 3 and calls.executes[0][1] == 0xBEEF
    with pytest.raises(HarnessError, match="outside the engine's profile"):
        session.load(np.zeros((1, 1, 1080, 1920), np.float32))
    session.close()
    assert calls.freed == 2 and calls.pop == 1


@pytest.mark.torch
def test_fp32_sets_no_fp16_flag(fake, onnx_file, tmp_path):
    session = backend(tmp_path, precision="fp32").prepare_onnx(onnx_file, FHD)
    assert fake.calls.config_flags == [set()]
    assert "_fp32_" in Path(session.details["engine"]).name
    session.close()


@pytest.mark.torch
def test_int8_needs_calibration(fake, onnx_file, tmp_path):
    with pytest.raises(HarnessError, match="int8 needs calibration") as err:
        backend(tmp_path, precision="int8").prepare_onnx(onnx_file, FHD)
    assert str(onnx_file) in str(err.value) and "\n" not in str(err.value)
    assert fake.calls.builders == 0
    calibrator = object()
    session = backend(tmp_path, precision="int8", int8_calibrator=calibrator).prepare_onnx(onnx_file, FHD)
    assert fake.calls.config_flags == [{"INT8", "FP16"}] and fake.calls.calibrators == [calibrator]
    assert session.details["int8_source"] == "calibrator"
    session.close()


def test_int8_with_a_qdq_graph_needs_no_calibrator(fake, tmp_path):
    x = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 1, "h", "w"])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [1 / 127])
    zero = helper.make_tensor("z", TensorProto.INT8, [], [0])
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["lr", "s", "z"], ["q"]),
                               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["sr"])],
                              "qdq", [x], [y], initializer=[scale, zero])
    path = tmp_path / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    session = backend(tmp_path, precision="int8").prepare_onnx(path, FHD)
    assert "INT8" in fake.calls.config_flags[0] and fake.calls.calibrators == [None]
    assert session.details["int8_source"] == "qdq"
    session.close()


def test_parser_error_names_the_onnx_file(fake, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xff")
    with pytest.raises(HarnessError) as err:
        backend(tmp_path).prepare_onnx(bad, FHD)
    msg = str(err.value)
    assert str(bad) in msg and "Failed to parse ONNX model" in msg and "\n" not in msg
    assert fake.calls.pop == fake.calls.push == 1  # the context is released on failure


@pytest.mark.torch
def test_build_failure_reports_the_tensorrt_error(fake, onnx_file, tmp_path):
    fake(fail_build=True)
    with pytest.raises(HarnessError, match="could not build a fp16 engine .*Could not find any implementation"):
        backend(tmp_path).prepare_onnx(onnx_file, FHD)


@pytest.mark.torch
def test_channels_mismatch_is_a_harness_error(fake, onnx_file, tmp_path):
    with pytest.raises(HarnessError, match="channels"):
        backend(tmp_path).prepare_onnx(onnx_file, [(1, 3, 540, 960)])


# --- engine cache -----------------------------------------------------------------------------
@pytest.mark.torch
def test_engine_cache_is_reused(fake, onnx_file, tmp_path):
    calls = fake.calls
    first = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    path = Path(first.details["engine"])
    first.close()
    assert path.parent == tmp_path / "trt-engines"
    sha, precision, version, device, key = path.stem.split("_")
    assert len(sha) == 16 and precision == "fp16" and version == "trt8.6.1" and device == "fake-gpu-xavier"
    second = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    assert calls.builders == 1 and second.details["engine_source"] == "cache"
    assert second.details["engine"] == str(path) and second.details["platform_has_fast_fp16"] is True
    assert second.infer(np.zeros(FHD[0], np.float32)).shape == (1, 1, 1080, 1920)
    second.close()
    # other shapes or another TensorRT version: another engine
    backend(tmp_path).prepare_onnx(onnx_file, FHD[:2]).close()
    fake(version="8.5.2.2")
    backend(tmp_path).prepare_onnx(onnx_file, FHD).close()
    assert calls.builders == 3 and len(list((tmp_path / "trt-engines").glob("*.engine"))) == 3
    assert calls.contexts_retained == 1 and calls.push == calls.pop == 4  # one context per process


@pytest.mark.torch
def test_corrupt_cached_engine_is_rebuilt(fake, onnx_file, tmp_path):
    calls = fake.calls
    path = Path(backend(tmp_path).prepare_onnx(onnx_file, FHD).details["engine"])
    path.write_bytes(b"truncated engine")
    session = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    assert calls.builders == 2 and session.details["engine_source"] == "built"
    assert path.read_bytes().startswith(MAGIC)
    session.close()


# --- other TensorRT versions ------------------------------------------------------------------
@pytest.mark.torch
def test_tensorrt_8_2_binding_api(fake, onnx_file, tmp_path):
    """JetPack 4.6: no set_memory_pool_limit, no name-based execution."""
    calls = fake(version="8.2.1.8", api="v2", memory_pool=False)
    session = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    assert session.details["trt_api"].startswith("v2")
    assert calls.max_workspace == [tb.DEFAULT_WORKSPACE_MB << 20] and calls.pool_limits == []
    for shape in (FHD[0], FHD[2]):
        x = np.random.default_rng(1).random(shape, dtype=np.float32)
        np.testing.assert_allclose(session.infer(x), reference(onnx_file, x), atol=1e-6)
    assert [e[0] for e in calls.executes] == ["v2", "v2"]
    assert "_trt8.2.1.8_" in session.details["engine"]
    session.close()


@pytest.mark.torch
def test_tensorrt_10_and_7_build_paths(fake, onnx_file, tmp_path):
    calls = fake(version="10.3.0")
    backend(tmp_path).prepare_onnx(onnx_file, FHD).close()
    assert calls.network_flags == [0]  # explicit batch is implicit in TensorRT 10
    fake(version="7.2.3", serialized=False)
    session = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    assert calls.builders == 2 and session.details["engine_source"] == "built"
    session.close()


@pytest.mark.torch
def test_tensorrt_11_refuses_fp16_and_int8_with_the_fix_and_builds_fp32(fake, onnx_file, tmp_path):
    """TensorRT 11 removed weak typing (BuilderFlag.FP16/INT8, calibrators): a clear error, not an AttributeError."""
    calls = fake(version="11.4.0", weak_typing=False)
    for precision, options in (("fp16", {}), ("int8", {"int8_calibrator": object()})):
        with pytest.raises(HarnessError, match=r"TensorRT 11\.4\.0 builds only strongly typed.*"
                                               rf"--precision {precision}.*tensorrt>=8\.5,<11") as err:
            backend(tmp_path, precision=precision, **options).prepare_onnx(onnx_file, FHD)
        assert "\n" not in str(err.value)
    assert calls.builders == 0  # refused before any build work
    session = backend(tmp_path, precision="fp32").prepare_onnx(onnx_file, FHD)
    assert calls.config_flags == [set()] and session.details["tensorrt"] == "11.4.0"
    session.close()


def test_the_nvidia_extra_pins_a_tensorrt_with_weak_typing():
    from harness.devices import tomllib

    extra = tomllib.loads((Path(tb.__file__).parents[2] / "pyproject.toml").read_text())
    pins = [r for r in extra["project"]["optional-dependencies"]["nvidia"] if r.startswith("tensorrt")]
    assert pins == ["tensorrt>=8.5,<11"]


# --- through prepare(model, shapes) -----------------------------------------------------------
@pytest.mark.torch
def test_prepare_exports_and_picks_a_form(fake, tmp_path):
    model = resolve("eSR-MAX_s2_K3_C2")
    session = make_backend("tensorrt", precision="fp16", device="cuda:0", workdir=str(tmp_path),
                           form="auto").prepare(model, FHD)
    assert set(session.details["form_trial_ms"]) == {"fast", "naive"} and session.form in ("fast", "naive")
    assert fake.calls.builders == 2 and tmp_path / "onnx" in Path(session.details["onnx"]).parents
    assert session.infer(np.zeros(FHD[1], np.float32)).shape == (1, 1, 720, 1280)
    session.close()
    assert fake.calls.push == fake.calls.pop == 1
    classical = resolve("bicubic-matlab", scale=2)  # no network: runs as it is
    assert isinstance(make_backend("tensorrt", workdir=str(tmp_path)).prepare(classical, FHD), NativeSession)


def test_versions(fake):
    v = tb.TensorRTBackend().versions()
    assert v == {"tensorrt": "8.6.1", "pycuda": "2022.2.2", "cuda_pycuda_built": "11.4.0", "cuda_driver": "11.4"}


@pytest.mark.torch
def test_an_existing_context_is_shared_not_popped(fake, onnx_file, tmp_path, monkeypatch):
    """With ``pycuda.autoinit`` (or another library) a context is already current: use it, leave it."""
    current = object()
    monkeypatch.setattr(sys.modules["pycuda.driver"], "Context", types.SimpleNamespace(get_current=lambda: current))
    session = backend(tmp_path).prepare_onnx(onnx_file, FHD)
    session.close()
    assert tb._CUDA.ctx is current and fake.calls.contexts_retained == 0
    assert fake.calls.push == fake.calls.pop == 0


# --- INT8 with the harness's entropy calibrator -----------------------------------------------
def test_entropy_calibrator_feeds_device_batches_then_none_and_keeps_its_cache(fake, tmp_path):
    trt = sys.modules["tensorrt"]
    cls = tb.entropy_calibrator_class()
    assert cls.__name__ == "EntropyCalibrator" and issubclass(cls, trt.IInt8EntropyCalibrator2)
    assert tb.entropy_calibrator_class() is cls  # made once per tensorrt module
    rng = np.random.default_rng(0)
    batches = [rng.random((2, 3, 8, 10), dtype=np.float32) for _ in range(3)]
    cache = tmp_path / "engines" / "model.calib"
    cal = cls(batches, cache)
    assert cal.get_batch_size() == 2 and cal.shape == (2, 3, 8, 10)
    for batch in batches:
        pointers = cal.get_batch(["lr"])
        assert len(pointers) == 1 and pointers[0] == int(cal.device_input)
        np.testing.assert_array_equal(MEMORY[pointers[0]].view(np.float32).reshape(batch.shape), batch)
    assert cal.get_batch(["lr"]) is None and cal.get_batch(["lr"]) is None
    assert cal.read_calibration_cache() is None and not cal.cache_read
    cal.write_calibration_cache(memoryview(b"calibration table"))
    assert cache.read_bytes() == b"calibration table" and cal.cache_written
    again = cls(batches, cache)
    assert again.read_calibration_cache() == b"calibration table" and again.cache_read
    freed = fake.calls.freed
    cal.free()
    cal.free()
    assert fake.calls.freed == freed + 1 and cal.get_batch(["lr"]) is None
    with pytest.raises(HarnessError, match="batches of one shape"):
        cls([batches[0], batches[0][:1]], cache)


def test_entropy_calibrator_needs_the_tensorrt_class(fake, monkeypatch):
    trt = sys.modules["tensorrt"]
    monkeypatch.delattr(trt, "IInt8EntropyCalibrator2")
    monkeypatch.setattr(tb, "_CALIBRATOR_CLASSES", {})
    with pytest.raises(HarnessError, match="no IInt8EntropyCalibrator2"):
        tb.entropy_calibrator_class()


@pytest.mark.torch
def test_int8_without_qdq_calibrates_itself_and_reuses_the_cache(fake, tmp_path):
    calls = fake.calls
    model = resolve("ABPN_s3")  # RGB x3, a plain FP32 export: no QDQ nodes
    shapes = [(1, 3, 36, 64)]
    be = make_backend("tensorrt", precision="int8", device="cuda", workdir=str(tmp_path), form="naive")
    session = be.prepare(model, shapes)
    assert calls.config_flags == [{"INT8", "FP16"}] and type(calls.calibrators[0]).__name__ == "EntropyCalibrator"
    batch = (tb.CALIB_BATCH, 3, 32, 32)  # 96-pixel HR patches at x3, 8 per batch
    assert calls.calibration_profiles == [{"lr": (batch, batch, batch)}]
    assert len(calls.calibration_batches) == tb.CALIB_PATCHES // tb.CALIB_BATCH
    expected = tb.calibration_batches(3, "rgb")
    for got, want in zip(calls.calibration_batches, expected):
        np.testing.assert_array_equal(got, want)  # the same patches as ONNX Runtime's calibration
    d = session.details
    assert d["int8_source"] == "calibrator"
    cal = d["calibration"]
    assert cal["source"] == "embedded" and cal["method"] == "trt-entropy2" and cal["cache_read"] is False
    assert Path(cal["cache"]).parent == Path(d["engine"]).parent and Path(cal["cache"]).is_file()
    assert session.infer(np.zeros(shapes[0], np.float32)).shape == (1, 3, 108, 192)
    session.close()
    # a cached engine: no build, the calibration facts come from its sidecar
    cached = make_backend("tensorrt", precision="int8", device="cuda", workdir=str(tmp_path), form="naive")
    session = cached.prepare(model, shapes)
    assert calls.builders == 1 and session.details["calibration"]["source"] == "embedded"
    session.close()
    # another profile: another engine, calibrated from the cache file, not from batches
    session = be.prepare(model, [(1, 3, 24, 40)])
    assert calls.builders == 2 and calls.calibration_cache_reads == 1 and len(calls.calibration_batches) == 4
    assert session.details["calibration"]["cache_read"] is True
    assert session.details["engine"] != d["engine"]
    session.close()


@pytest.mark.torch
def test_int8_calibration_folders_make_their_own_engine_and_cache(fake, tmp_path, rng):
    from conftest import write_png

    folder = tmp_path / "train"
    for i in range(2):
        write_png(folder / f"t{i}.png", rng.integers(0, 255, (100, 120, 3), dtype=np.uint8))
    model = resolve("ABPN_s3")
    shapes = [(1, 3, 36, 64)]
    plain = make_backend("tensorrt", precision="int8", device="cuda", workdir=str(tmp_path), form="naive")
    own = make_backend("tensorrt", precision="int8", device="cuda", workdir=str(tmp_path), form="naive",
                       calib_data=[str(folder)])
    a, b = plain.prepare(model, shapes), own.prepare(model, shapes)
    assert fake.calls.builders == 2 and a.details["engine"] != b.details["engine"]
    ca, cb = a.details["calibration"], b.details["calibration"]
    assert ca["source"] == "embedded" and cb["source"] == "folders" and cb["folders"] == [str(folder.resolve())]
    assert cb["images"] == 2 and ca["cache"] != cb["cache"] and cb["key"] in cb["cache"]
    fed = fake.calls.calibration_batches
    assert len(fed) == 8 and not np.array_equal(fed[0], fed[4])  # other images, other patches
    a.close()
    b.close()
