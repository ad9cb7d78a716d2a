"""TensorRT with pycuda buffers: FP16 engines on the Jetson AGX Xavier and on desktop NVIDIA GPUs.

The engine is built once from the model's ONNX export (input ``lr``, dynamic N/H/W) with ONE
optimisation profile covering every input shape of the run, and cached on disk, since an FP16
build takes minutes on a Xavier. The versions in the field differ in API, and every path here
is chosen by what the installed ``tensorrt`` has, not by its version number:

* JetPack 4.6 = TensorRT 8.2: binding-index execution (``set_binding_shape``,
  ``execute_async_v2``), ``max_workspace_size``.
* JetPack 5.1 = TensorRT 8.5, pip 8.6: name-based I/O (``set_input_shape``,
  ``set_tensor_address``, ``execute_async_v3``), ``set_memory_pool_limit``.
* TensorRT 10.x: networks are always explicit-batch (the flag is gone), no ``build_engine``,
  ``device_memory_size_v2``.
* TensorRT 11.x (PyPI's newest since 2026; not on JetPack) builds only strongly typed networks:
  ``BuilderFlag.FP16``/``INT8`` and the INT8 calibrators are gone, so FP16 and INT8 builds here
  stop with a one-line error naming the fix (the ``[nvidia]`` extra pins ``tensorrt<11``); FP32
  builds as before.

``tensorrt`` and ``pycuda`` are imported lazily, so the harness runs (and this module imports)
where they are absent. One CUDA context (the device's primary context, the one TensorRT's
runtime-API calls use) is shared by all sessions of the process; it is pushed while sessions
are open and popped when the last one closes.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cachefile import atomic_write_bytes, file_lock, file_stamp
from ..errors import HarnessError
from .base import Backend, BackendUnavailable, Session, Shape, quick_time
from .native import NativeSession

TENSORRT_MISSING = ("tensorrt is not importable: on a Jetson it comes with JetPack (python3-libnvinfer; the "
                    "harness venv uses system site-packages), on a desktop pip install tensorrt")
PYCUDA_MISSING = "pycuda is not importable: pip install pycuda (needs the CUDA toolkit)"
STRONGLY_TYPED_ONLY = ("TensorRT {version} builds only strongly typed networks: it removed the FP16/INT8 builder "
                       "flags and INT8 calibrators that --precision {precision} uses; install TensorRT 8.5-10.x "
                       "(pip install 'tensorrt>=8.5,<11', what the [nvidia] extra pins) or use --precision fp32")
DEFAULT_WORKSPACE_MB = 1024
_BUILD_FACTS = ("platform_has_fast_fp16", "platform_has_fast_int8", "workspace_bytes", "int8_source", "calibration",
                "timing_cache")
CALIB_BATCH = 8      # calibration patches per TensorRT calibration batch
CALIB_PATCHES = 32   # patches in all: the same calibration_inputs as ONNX Runtime's post-training INT8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _import_trt():
    import tensorrt as trt

    return trt


def _import_cuda():
    import pycuda.driver as cuda

    return cuda


def trt_version(trt) -> str:
    return str(getattr(trt, "__version__", "unknown"))


def _trt_major(trt) -> int:
    try:
        return int(trt_version(trt).split(".")[0])
    except ValueError:
        return 0


# --- one logger, one CUDA context per process --------------------------------------------
_LOGGER = None


def _logger(trt):
    """A process-wide logger that prints warnings and remembers errors (for one-line messages).

    TensorRT wants a single logger that outlives every builder/runtime; a Python subclass of
    ``ILogger`` keeps the last errors so a failed build can say why. Plain ``trt.Logger`` is
    the fallback where subclassing is not possible.
    """
    global _LOGGER
    if _LOGGER is not None:
        return _LOGGER
    try:
        severity = trt.ILogger.Severity
        errors = (severity.INTERNAL_ERROR, severity.ERROR)

        class _Recorder(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: List[str] = []

            def log(self, level, msg):  # called from TensorRT: must never raise
                try:
                    if level in errors:
                        self.errors.append(str(msg))
                        del self.errors[:-20]
                    if level in errors or level == severity.WARNING:
                        print(f"[TensorRT] {msg}", file=sys.stderr)
                except Exception:  # noqa: BLE001
                    pass

        _LOGGER = _Recorder()
    except Exception:  # noqa: BLE001 - bindings without a subclassable ILogger
        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def _last_error(logger, since: int = 0) -> str:
    errors = getattr(logger, "errors", [])[since:]
    return errors[0].strip().splitlines()[0][:200] if errors else "see the TensorRT messages above"


class _SharedContext:
    """The process's one CUDA context, pushed while at least one session is open.

    Creating a context per session leaks contexts on Jetson and makes TensorRT (runtime API,
    primary context) and pycuda disagree about which one is current; so the primary context
    is retained once, pushed on first use, popped when the last session closes, and a context
    already current (``pycuda.autoinit``, another library) is shared instead of replaced.
    """

    def __init__(self):
        self.ctx = None
        self.owned = False
        self.pushed = False
        self.users = 0
        self.device_index: Optional[int] = None
        self._atexit = False

    def acquire(self, cuda, device_index: int) -> None:
        if self.ctx is None:
            cuda.init()
            current = None
            get_current = getattr(getattr(cuda, "Context", None), "get_current", None)
            if get_current is not None:
                current = get_current()
            if current is not None:
                self.ctx, self.owned, self.pushed = current, False, False
            else:
                device = cuda.Device(device_index)
                if hasattr(device, "retain_primary_context"):
                    self.ctx = device.retain_primary_context()
                    self.ctx.push()
                else:  # pycuda < 2017: a context of our own (made current by make_context)
                    self.ctx = device.make_context()
                self.owned, self.pushed = True, True
                if not self._atexit:
                    atexit.register(self._at_exit)
                    self._atexit = True
            self.device_index = device_index
        elif self.device_index != device_index:
            raise HarnessError(f"tensorrt: this process already runs on cuda:{self.device_index}; run cuda:"
                               f"{device_index} in a separate harness invocation")
        elif self.owned and not self.pushed:
            self.ctx.push()
            self.pushed = True
        self.users += 1

    def release(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self.owned and self.pushed:
            self.ctx.pop()
            self.pushed = False

    def _at_exit(self) -> None:
        try:
            if self.pushed:
                self.ctx.pop()
                self.pushed = False
        except Exception:  # noqa: BLE001 - the driver may already be shutting down
            pass


_CUDA = _SharedContext()


# --- engine cache -----------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "gpu"


def profile_of(shapes: Sequence[Shape]) -> Tuple[Shape, Shape, Shape]:
    """(min, opt, max) of one optimisation profile covering ``shapes``: elementwise min/max, opt = the first."""
    lo = tuple(min(s[i] for s in shapes) for i in range(4))
    hi = tuple(max(s[i] for s in shapes) for i in range(4))
    return lo, tuple(shapes[0]), hi  # type: ignore[return-value]


def _normalise_shapes(input_shapes) -> List[Shape]:
    shapes = [tuple(int(d) for d in s) for s in (input_shapes or [])]
    if not shapes or any(len(s) != 4 or min(s) < 1 for s in shapes):
        raise HarnessError(f"tensorrt needs one or more positive (N, C, H, W) input shapes, got {input_shapes}")
    return shapes  # type: ignore[return-value]


# TensorRT DataType name -> NumPy dtype. The harness's own map instead of ``trt.nptype``: TensorRT
# 8.5.2 (JetPack 5.1) builds its map with ``np.bool``, which NumPy 1.24 removed, so every call
# raises AttributeError there (fixed only in 8.5.3).
_NP_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
              "BOOL": np.bool_, "UINT8": np.uint8}


def np_dtype(dtype) -> type:
    """The NumPy dtype of a ``tensorrt.DataType`` (by its name: no ``trt.nptype``)."""
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    try:
        return _NP_DTYPES[str(name).upper()]
    except KeyError:
        raise HarnessError(f"TensorRT tensor type {name} has no NumPy equivalent the harness feeds (float32, "
                           f"float16, int8, int32, int64, bool, uint8); export the model with float32 I/O") from None


def layer_precisions(info) -> Dict[str, int]:
    """Layers per precision they really got, from the engine inspector's JSON (``Format/Datatype`` of each
    layer's first output: ``Half``/``...FP16...`` -> fp16, ``Float``/``FP32`` -> fp32, ``Int8`` -> int8;
    layers without a typed output, e.g. a Shuffle, are ``untyped``)."""
    if isinstance(info, (str, bytes)):
        info = json.loads(info)
    layers = info.get("Layers", []) if isinstance(info, dict) else list(info or [])
    counts: Dict[str, int] = {}
    for layer in layers:
        outputs = layer.get("Outputs") if isinstance(layer, dict) else None
        text = str((outputs[0] or {}).get("Format/Datatype", "")) if outputs else ""
        if re.search(r"int8", text, re.I):
            kind = "int8"
        elif re.search(r"half|fp16", text, re.I):
            kind = "fp16"
        elif re.search(r"float|fp32", text, re.I):
            kind = "fp32"
        else:
            kind = "untyped"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _inspect(trt, engine) -> Optional[Dict[str, int]]:
    """Precision per layer of a loaded engine (None where the inspector or detailed info is unavailable)."""
    try:
        inspector = engine.create_engine_inspector()
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        counts = layer_precisions(text)
    except Exception:  # noqa: BLE001 - TensorRT < 8.2, or an engine built without detailed verbosity
        return None
    return counts or None


def _declared_batch(onnx_bytes: bytes) -> Optional[int]:
    """The first input's fixed batch size in the ONNX file, or None when it is dynamic (or unreadable)."""
    try:
        import onnx

        model = onnx.load_from_string(onnx_bytes)
        weights = {t.name for t in model.graph.initializer}
        first = next(i for i in model.graph.input if i.name not in weights)
        dim = first.type.tensor_type.shape.dim[0]
        return int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None
    except Exception:  # noqa: BLE001
        return None


def _has_qdq(onnx_bytes: bytes) -> bool:
    """Whether the graph is explicitly quantised (QuantizeLinear/DequantizeLinear): INT8 without a calibrator."""
    try:
        import onnx

        model = onnx.load_from_string(onnx_bytes)
        ops = {n.op_type for n in model.graph.node}
        return "QuantizeLinear" in ops and "DequantizeLinear" in ops
    except Exception:  # noqa: BLE001 - onnx absent or unreadable: the op names appear verbatim
        return b"QuantizeLinear" in onnx_bytes and b"DequantizeLinear" in onnx_bytes


def _parse_device_index(device: str) -> int:
    if ":" in str(device):
        tail = str(device).rsplit(":", 1)[1]
        if not tail.isdigit():
            raise HarnessError(f"tensorrt device '{device}' is not cuda or cuda:N; use e.g. --device cuda:0")
        return int(tail)
    return 0


def _device_memory_size(engine) -> int:
    """Activation memory of one execution context (TRT 10.1+ ``*_v2``, else ``device_memory_size``)."""
    for name in ("device_memory_size_v2", "get_device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, name, None)
        if value is None:
            continue
        try:
            value = value() if callable(value) else value
            return int(value)
        except Exception:  # noqa: BLE001 - deprecated accessors may raise on newer engines
            continue
    return 0


# --- INT8 calibration ------------------------------------------------------------------
_CALIBRATOR_CLASSES: Dict[Tuple[int, int], type] = {}


def entropy_calibrator_class(trt=None, cuda=None) -> type:
    """The ``EntropyCalibrator`` class: a subclass of ``trt.IInt8EntropyCalibrator2``, made on first
    use (tensorrt is optional, so the class cannot exist at import time) and kept per module pair.

    ``EntropyCalibrator(batches, cache_path)`` feeds each (N, C, h, w) float32 batch through one
    pycuda device buffer (``get_batch`` returns its pointer, then None when the batches are spent)
    and keeps TensorRT's calibration table in ``cache_path``: a later build (another profile,
    a deleted engine) reads it instead of calibrating again.
    """
    trt = trt if trt is not None else _import_trt()
    cuda = cuda if cuda is not None else _import_cuda()
    key = (id(trt), id(cuda))
    if key in _CALIBRATOR_CLASSES:
        return _CALIBRATOR_CLASSES[key]
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise HarnessError(f"TensorRT {trt_version(trt)} has no IInt8EntropyCalibrator2 (implicit INT8 "
                           f"calibration); give a QDQ ONNX with signed zero-point-0 INT8, or use --precision fp16")

    class EntropyCalibrator(base):
        def __init__(self, batches, cache_path):
            base.__init__(self)
            self.batches = [np.ascontiguousarray(b, dtype=np.float32) for b in batches]
            if not self.batches or len({b.shape for b in self.batches}) != 1 or self.batches[0].ndim != 4:
                raise HarnessError(f"INT8 calibration needs one or more (N, C, H, W) batches of one shape, got "
                                   f"{[b.shape for b in self.batches]}")
            self.shape: Shape = tuple(int(d) for d in self.batches[0].shape)  # type: ignore[assignment]
            self.cache_path = Path(cache_path)
            self.index = 0
            self.cache_read = False
            self.cache_written = False
            self.device_input = cuda.mem_alloc(self.batches[0].nbytes)

        def get_batch_size(self):
            return int(self.shape[0])

        def get_batch(self, names, *args):  # called by TensorRT: must not raise
            try:
                if self.index >= len(self.batches) or self.device_input is None:
                    return None
                cuda.memcpy_htod(self.device_input, self.batches[self.index])
                self.index += 1
                return [int(self.device_input)]
            except Exception as exc:  # noqa: BLE001
                print(f"[harness] INT8 calibration batch failed ({_first_line(exc)})", file=sys.stderr)
                return None

        def read_calibration_cache(self, *args):
            try:
                if self.cache_path.is_file():
                    data = self.cache_path.read_bytes()
                    self.cache_read = bool(data)
                    return data or None
            except OSError:
                pass
            return None

        def write_calibration_cache(self, cache, *args):
            try:
                atomic_write_bytes(self.cache_path, bytes(cache))
                self.cache_written = True
            except Exception as exc:  # noqa: BLE001 - a cache that cannot be written only costs time
                print(f"[harness] {self.cache_path}: calibration cache not written ({_first_line(exc)})",
                      file=sys.stderr)

        def free(self) -> None:
            if self.device_input is not None and hasattr(self.device_input, "free"):
                self.device_input.free()
            self.device_input = None

    _CALIBRATOR_CLASSES[key] = EntropyCalibrator
    return EntropyCalibrator


def calibration_batches(scale: int, input_space: str, folders=None, batch: int = CALIB_BATCH,
                        count: int = CALIB_PATCHES) -> List[np.ndarray]:
    """The calibration patches of ONNX Runtime's post-training INT8 stacked into (batch, C, h, w) arrays."""
    from ..quantize import calibration_inputs

    patches = calibration_inputs(scale, input_space, count=count, folders=folders)
    return [np.concatenate(patches[i:i + batch]) for i in range(0, len(patches) - batch + 1, batch)]


# --- the session -----------------------------------------------------------------------
class TensorRTSession(Session):
    """An engine, its execution context and fixed device buffers sized for the largest input shape."""

    def __init__(self, trt, cuda, engine, shapes: Sequence[Shape], profile, form: str,
                 details: Dict[str, object], release=None, runtime=None):
        super().__init__()
        self.runtime = runtime  # TensorRT 8 wants the runtime to outlive its engines
        self.form = form
        self.details.update(details)
        self.details["runtime"] = "tensorrt"
        self.cuda = cuda
        self.engine = engine
        self.profile = profile
        self._release = release
        self._closed = False
        self.last_gpu_ms: Optional[float] = None
        self._shape: Optional[Shape] = None
        self._out_shape: Optional[Tuple[int, ...]] = None
        self.d_in = self.d_out = None
        self.context = engine.create_execution_context()
        if self.context is None:
            raise HarnessError(f"{details.get('engine')}: TensorRT could not create an execution context "
                               f"(device memory?); close other GPU programs or use smaller input shapes")
        self.v3 = all(hasattr(engine, a) for a in ("num_io_tensors", "get_tensor_name")) and \
            all(hasattr(self.context, a) for a in ("set_input_shape", "set_tensor_address", "execute_async_v3"))
        try:
            self._setup(trt, cuda, shapes)
        except BaseException:
            self._free()  # the caller releases the CUDA context
            raise

    def _setup(self, trt, cuda, shapes: Sequence[Shape]) -> None:
        self._find_io(trt)
        self.details["trt_api"] = "v3 (name-based)" if self.v3 else "v2 (binding index)"
        # Output size for every prepared shape: the buffers fit the largest, so no reallocation later.
        out_elems = 0
        for shape in shapes:
            out_elems = max(out_elems, int(np.prod(self._set_shape(shape))))
        in_elems = max(int(np.prod(s)) for s in shapes)
        self.h_in = cuda.pagelocked_empty(in_elems, self.in_dtype)
        self.h_out = cuda.pagelocked_empty(out_elems, self.out_dtype)
        self.d_in = cuda.mem_alloc(max(1, self.h_in.nbytes))
        self.d_out = cuda.mem_alloc(max(1, self.h_out.nbytes))
        self.buffer_bytes = int(self.h_in.nbytes + self.h_out.nbytes)
        if self.v3:
            self.context.set_tensor_address(self.in_name, int(self.d_in))
            self.context.set_tensor_address(self.out_name, int(self.d_out))
        else:
            self.bindings = [0] * self.num_bindings
            self.bindings[self.in_index] = int(self.d_in)
            self.bindings[self.out_index] = int(self.d_out)
        self.stream = cuda.Stream()
        self._start, self._end = cuda.Event(), cuda.Event()
        self._set_shape(tuple(shapes[0]))

    def _find_io(self, trt) -> None:
        engine = self.engine
        inputs, outputs = [], []
        if self.v3:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                (inputs if is_input else outputs).append((name, i, np_dtype(engine.get_tensor_dtype(name))))
        else:
            self.num_bindings = engine.num_bindings
            for i in range(self.num_bindings):
                entry = (engine.get_binding_name(i), i, np_dtype(engine.get_binding_dtype(i)))
                (inputs if engine.binding_is_input(i) else outputs).append(entry)
        if len(inputs) != 1 or len(outputs) != 1:
            raise HarnessError(f"{self.details.get('onnx')}: the engine has {len(inputs)} inputs and {len(outputs)} "
                               f"outputs; the harness feeds one (N, C, H, W) image and reads one: re-export it")
        (self.in_name, self.in_index, self.in_dtype), = inputs
        (self.out_name, self.out_index, self.out_dtype), = outputs
        self.details["io_dtypes"] = {self.in_name: np.dtype(self.in_dtype).name,
                                     self.out_name: np.dtype(self.out_dtype).name}

    def _set_shape(self, shape: Shape) -> Tuple[int, ...]:
        """Set the input shape on the context (if it changed) and return the output shape it implies."""
        shape = tuple(int(d) for d in shape)
        if shape == self._shape:
            return self._out_shape  # type: ignore[return-value]
        lo, _, hi = self.profile
        if len(shape) != 4 or any(not (a <= d <= b) for a, d, b in zip(lo, shape, hi)):
            raise HarnessError(f"{self.details.get('engine')}: input shape {shape} is outside the engine's profile "
                               f"{tuple(lo)}..{tuple(hi)}; prepare the session with this shape too")
        if self.v3:
            ok = self.context.set_input_shape(self.in_name, shape)
            out = self.context.get_tensor_shape(self.out_name)
        else:
            ok = self.context.set_binding_shape(self.in_index, shape)
            out = self.context.get_binding_shape(self.out_index)
        out = tuple(int(d) for d in out)
        if ok is False or any(d < 0 for d in out):
            raise HarnessError(f"{self.details.get('engine')}: TensorRT rejects input shape {shape} (output {out}); "
                               f"delete the engine file to rebuild it for these shapes")
        self._shape, self._out_shape = shape, out
        return out

    def load(self, lr: np.ndarray) -> None:
        x = np.asarray(lr)
        self._set_shape(x.shape)
        host = self.h_in[:x.size].reshape(x.shape)
        np.copyto(host, x, casting="unsafe")
        self.cuda.memcpy_htod_async(self.d_in, host, self.stream)
        self.stream.synchronize()

    def compute(self) -> None:
        """Execute and wait; ``last_gpu_ms`` is the GPU time of this execution from CUDA events."""
        self._start.record(self.stream)
        if self.v3:
            ok = self.context.execute_async_v3(self.stream.handle)
        else:
            ok = self.context.execute_async_v2(bindings=self.bindings, stream_handle=self.stream.handle)
        self._end.record(self.stream)
        self.stream.synchronize()
        if ok is False:
            raise RuntimeError(f"TensorRT execution failed for input {self._shape} ({self.details.get('engine')})")
        self.last_gpu_ms = float(self._start.time_till(self._end))

    def fetch(self) -> np.ndarray:
        shape = self._out_shape
        host = self.h_out[:int(np.prod(shape))].reshape(shape)
        self.cuda.memcpy_dtoh_async(host, self.d_out, self.stream)
        self.stream.synchronize()
        return host.astype(np.float32, copy=True)

    def device_memory_bytes(self) -> Optional[int]:
        return _device_memory_size(self.engine) + self.buffer_bytes

    def close(self) -> None:
        """Free the device buffers and TensorRT objects while the context is current, then release it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._free()
        finally:
            if self._release is not None:
                self._release()

    def _free(self) -> None:
        for buf in (self.d_in, self.d_out):
            if buf is not None and hasattr(buf, "free"):
                buf.free()
        self.d_in = self.d_out = None
        self.context = None
        self.engine = None
        self.runtime = None


# --- the backend -----------------------------------------------------------------------
class TensorRTBackend(Backend):
    """TensorRT engines built from the ONNX export; options: ``workspace_mb``, ``int8_calibrator``."""

    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")

    @classmethod
    def probe(cls) -> Tuple[bool, str]:
        try:
            _import_trt()
        except ImportError as exc:
            missing = str(getattr(exc, "name", None) or "")
            if missing.split(".")[0].startswith("tensorrt"):  # tensorrt itself, or its pip bindings/libs
                return False, TENSORRT_MISSING
            return False, f"tensorrt is installed but does not import ({_first_line(exc)}); reinstall it"
        except Exception as exc:  # noqa: BLE001 - e.g. OSError for a missing libnvinfer
            return False, f"tensorrt is installed but does not import ({_first_line(exc)}); reinstall it"
        try:
            cuda = _import_cuda()
        except ImportError as exc:
            if getattr(exc, "name", None) in ("pycuda", "pycuda.driver"):
                return False, PYCUDA_MISSING
            return False, f"pycuda does not import ({_first_line(exc)}); pip install --force-reinstall pycuda"
        except Exception as exc:  # noqa: BLE001
            return False, f"pycuda does not import ({_first_line(exc)}); pip install --force-reinstall pycuda"
        try:
            cuda.init()
            if cuda.Device.count() < 1:
                return False, "no CUDA device is visible (check nvidia-smi / tegrastats and CUDA_VISIBLE_DEVICES)"
        except Exception as exc:  # noqa: BLE001 - pycuda raises its own error types
            return False, f"CUDA does not initialise ({_first_line(exc)}); check the NVIDIA driver"
        return True, ""

    # -- public entry points --
    def prepare(self, model, input_shapes: List[Shape]) -> Session:
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailable(why)
        calibration = None
        if self.precision == "int8" and getattr(model, "scale", None):
            calibration = {"scale": int(model.scale), "input_space": model.input_space,
                           "folders": self.options.get("calib_data") or None}
        if getattr(model, "onnx_path", None):  # a user's ONNX file runs as it is
            return self.prepare_onnx(model.onnx_path, input_shapes, form="onnx", calibration=calibration)
        if getattr(model, "module", None) is None:
            return NativeSession(model)
        if hasattr(model, "onnx_pipeline"):  # routed (ClassSR): data-dependent batches per branch, no single engine
            raise HarnessError(f"{model.id} routes patches between several networks on the host and has no single "
                               f"TensorRT engine; run it with --backend onnxruntime (its TensorRT provider on GPU)")
        from .onnxruntime_backend import exported_onnx

        shapes = _normalise_shapes(input_shapes)
        onnx_dir = Path(self.workdir or ".") / "onnx"
        forms = ["fast", "naive"] if self.form == "auto" else [self.form]
        candidates: Dict[str, Path] = {}
        for form in forms:
            path, got = exported_onnx(model, form, onnx_dir)
            candidates.setdefault(got, path)
        sessions: Dict[str, TensorRTSession] = {}
        try:
            for form, path in candidates.items():
                sessions[form] = self.prepare_onnx(path, shapes, form=form, calibration=calibration)
            if len(sessions) == 1:
                return next(iter(sessions.values()))
            timings = {form: quick_time(s, shapes[0]) for form, s in sessions.items()}
        except BaseException:
            for s in sessions.values():
                s.close()
            raise
        best = min(timings, key=timings.get)
        for form, s in sessions.items():
            if form != best:
                s.close()
        chosen = sessions[best]
        chosen.details["form_trial_ms"] = {k: round(v * 1e3, 3) for k, v in timings.items()}
        return chosen

    def prepare_onnx(self, onnx_path, input_shapes: List[Shape], form: str = "onnx",
                     calibration: Optional[Dict[str, object]] = None) -> TensorRTSession:
        """A session for an ONNX file (one input, one output): the engine from the cache or freshly built.

        ``calibration`` (``{"scale", "input_space", "folders"}``) lets an int8 build of a graph
        without QDQ nodes calibrate itself with :func:`entropy_calibrator_class` on the harness's
        calibration patches; ``prepare`` passes it for zoo models and user ONNX files.
        """
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailable(why)
        trt, cuda = _import_trt(), _import_cuda()
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise HarnessError(f"ONNX file {onnx_path} does not exist; give the path of a .onnx model")
        shapes = _normalise_shapes(input_shapes)
        index = _parse_device_index(self.device)
        _CUDA.acquire(cuda, index)
        try:
            engine, runtime, details = self._engine(trt, cuda, onnx_path, shapes, index, calibration)
            details["form"] = form
            return TensorRTSession(trt, cuda, engine, shapes, profile_of(shapes), form, details,
                                   release=_CUDA.release, runtime=runtime)
        except BaseException:
            _CUDA.release()
            raise

    def versions(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        try:
            out["tensorrt"] = trt_version(_import_trt())
        except Exception:  # noqa: BLE001
            return out
        try:
            import pycuda

            cuda = _import_cuda()
            out["pycuda"] = str(getattr(pycuda, "VERSION_TEXT", "unknown"))
            out["cuda_pycuda_built"] = ".".join(str(v) for v in cuda.get_version())
            driver = int(cuda.get_driver_version())
            out["cuda_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
        except Exception:  # noqa: BLE001 - versions are informative only
            pass
        return out

    # -- engine cache and build --
    def _workspace_bytes(self) -> int:
        return int(float(self.options.get("workspace_mb", DEFAULT_WORKSPACE_MB)) * (1 << 20))

    def _calibrator(self):
        return self.options.get("int8_calibrator") or self.options.get("calibrator")

    def engine_path(self, onnx_bytes: bytes, shapes: Sequence[Shape], trt_ver: str, device_name: str,
                    int8: Optional[str] = None) -> Path:
        """``<workdir>/trt-engines/<onnx sha>_<precision>_trt<ver>_<device>_<settings hash>.engine``;
        the settings are the profile, the workspace and, for int8, what calibrated it (``int8``)."""
        lo, opt, hi = profile_of(shapes)
        if int8 is None and self.precision == "int8":
            calibrator = self._calibrator()
            int8 = type(calibrator).__name__ if calibrator is not None else "qdq"
        settings = {"min": lo, "opt": opt, "max": hi, "workspace": self._workspace_bytes(),
                    "int8": int8 if self.precision == "int8" else None}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        name = (f"{hashlib.sha256(onnx_bytes).hexdigest()[:16]}_{self.precision}_trt{trt_ver}_"
                f"{slug(device_name)}_{key}.engine")
        return Path(self.workdir or ".") / "trt-engines" / name

    def _engine(self, trt, cuda, onnx_path: Path, shapes: List[Shape], index: int,
                calibration: Optional[Dict[str, object]] = None):
        data = onnx_path.read_bytes()
        auto = None  # the harness's own entropy calibration: (spec, its source record)
        int8_key = None
        if self.precision == "int8" and self._calibrator() is None and not _has_qdq(data):
            if calibration is None:
                raise HarnessError(f"int8 needs calibration: {onnx_path} has no QuantizeLinear/DequantizeLinear "
                                   f"nodes and no int8_calibrator was given; pass a calibrator, a QDQ-quantised "
                                   f"ONNX, or use --precision fp16")
            from ..quantize import calibration_source

            auto = (calibration, calibration_source(calibration.get("folders")))
            int8_key = f"EntropyCalibrator:{auto[1]['key']}"
        try:
            device_name = cuda.Device(index).name()
        except Exception:  # noqa: BLE001
            device_name = f"cuda{index}"
        version = trt_version(trt)
        path = self.engine_path(data, shapes, version, device_name, int8=int8_key)
        logger = _logger(trt)
        runtime = trt.Runtime(logger)
        lo, opt, hi = profile_of(shapes)
        details: Dict[str, object] = {"engine": str(path), "onnx": str(onnx_path), "tensorrt": version,
                                      "precision": self.precision, "device_name": device_name,
                                      "profile": {"min": list(lo), "opt": list(opt), "max": list(hi)}}

        def from_cache():
            """The cached engine; None when there is none or it does not load (then rebuilt, with a warning)."""
            if not path.is_file():
                return None
            loaded = self._deserialize(runtime, path.read_bytes())
            if loaded is None:
                print(f"[harness] {path}: cached TensorRT engine does not load; rebuilding it", file=sys.stderr)
            else:
                meta = _read_meta(path)  # the build's facts: no Builder is created on a cache hit
                details.update({k: meta.get(k) for k in _BUILD_FACTS}, engine_source="cache",
                               build_s=meta.get("build_s"))
            return loaded

        seen = file_stamp(path)
        engine = from_cache()
        with file_lock(path) if engine is None else contextlib.nullcontext():  # runs sharing the workdir build it once
            if engine is None and file_stamp(path) != seen:  # another run built it while this one waited
                engine = from_cache()
            if engine is None:
                t0 = time.perf_counter()
                calibrator = None
                if auto is not None:
                    spec, source = auto
                    cache = path.parent / (f"{hashlib.sha256(data).hexdigest()[:16]}_int8-{source['key']}_"
                                           f"trt{version}_{slug(device_name)}.calib")
                    fixed = _declared_batch(data)  # a user ONNX with a fixed batch is calibrated at that batch
                    batches = calibration_batches(int(spec["scale"]), str(spec["input_space"]), spec.get("folders"),
                                                  batch=fixed or CALIB_BATCH)
                    calibrator = entropy_calibrator_class(trt, cuda)(batches, cache)
                timing = path.parent / f"timing_trt{version}_{slug(device_name)}.cache"
                try:
                    serialized, build_facts = self._build(trt, logger, onnx_path, data, shapes, calibrator,
                                                          timing_cache=timing)
                finally:
                    if calibrator is not None:
                        calibrator.free()
                if calibrator is not None:
                    build_facts["calibration"] = dict(auto[1], method="trt-entropy2", cache=str(calibrator.cache_path),
                                                      batches=len(calibrator.batches),
                                                      batch_shape=list(calibrator.shape),
                                                      cache_read=calibrator.cache_read)
                build_s = round(time.perf_counter() - t0, 3)
                meta = dict(build_facts, build_s=build_s, onnx=str(onnx_path), tensorrt=version,
                            precision=self.precision, device_name=device_name, profile=details["profile"])
                atomic_write_bytes(_meta_path(path), json.dumps(meta, indent=1, default=str).encode())
                atomic_write_bytes(path, serialized)  # a unique temporary name, renamed: never half an engine
                engine = self._deserialize(runtime, serialized)
                if engine is None:
                    raise HarnessError(f"{path}: TensorRT {version} cannot load the engine it just built "
                                       f"({_last_error(logger)}); delete {path.parent} and retry")
                details.update(build_facts, engine_source="built", build_s=build_s)
        precisions = _inspect(trt, engine)
        if precisions is not None:  # FP16/INT8 are allowed, not forced: what the layers really run at
            details["layer_precisions"] = precisions
        return engine, runtime, details

    @staticmethod
    def _deserialize(runtime, blob: bytes):
        try:
            return runtime.deserialize_cuda_engine(blob)
        except Exception:  # noqa: BLE001 - some versions raise instead of returning None
            return None

    def _build(self, trt, logger, onnx_path: Path, data: bytes, shapes: List[Shape], auto_calibrator=None,
               timing_cache: Optional[Path] = None):
        """Parse the ONNX, configure precision/workspace/profile and build the serialized engine.

        ``auto_calibrator`` (an :func:`entropy_calibrator_class` instance) calibrates an int8 build
        with its own profile fixed at its batch shape (TensorRT calibrates at the calibration
        profile's shapes), where no user calibrator was given. ``timing_cache``: a file of kernel
        timings shared by every build for this TensorRT and GPU (read before, written after), so the
        second form and every later model build without re-timing the same kernels."""
        if self.precision in ("fp16", "int8") and not hasattr(getattr(trt, "BuilderFlag", None), "FP16"):
            raise HarnessError(STRONGLY_TYPED_ONLY.format(version=trt_version(trt), precision=self.precision))
        since = len(getattr(logger, "errors", []))
        builder = trt.Builder(logger)
        flag_enum = getattr(trt, "NetworkDefinitionCreationFlag", None)
        explicit = getattr(flag_enum, "EXPLICIT_BATCH", None)
        if _trt_major(trt) >= 10 or explicit is None:  # explicit batch is the only mode in TensorRT 10
            flags = 0
        else:
            flags = 1 << int(explicit)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(data):
            first = "no error reported"
            if parser.num_errors:
                err = parser.get_error(0)
                desc = err.desc() if hasattr(err, "desc") else str(err)
                node = err.node() if hasattr(err, "node") else -1
                first = (f"node {node}: " if isinstance(node, int) and node >= 0 else "") + str(desc)
            first = " ".join(first.split())[:300]
            raise HarnessError(f"{onnx_path}: TensorRT {trt_version(trt)} cannot parse it ({first}); re-export "
                               f"the model (harness export) or try the naive form")
        if network.num_inputs != 1 or network.num_outputs != 1:
            raise HarnessError(f"{onnx_path}: {network.num_inputs} inputs and {network.num_outputs} outputs; the "
                               f"harness feeds one (N, C, H, W) image and reads one: re-export it")
        tensor = network.get_input(0)
        declared = tuple(int(d) for d in tensor.shape)
        lo, opt, hi = profile_of(shapes)
        for shape in shapes:
            if len(declared) != 4 or any(d >= 0 and d != s for d, s in zip(declared, shape)):
                raise HarnessError(f"{onnx_path}: input '{tensor.name}' is {declared} but the run feeds {shape}; "
                                   f"use a model with the run's channels (Y: 1, RGB: 3) and dynamic H/W")
        config = builder.create_builder_config()
        workspace = self._workspace_bytes()
        if hasattr(config, "set_memory_pool_limit") and hasattr(trt, "MemoryPoolType"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
        else:  # TensorRT < 8.4 (JetPack 4.6)
            config.max_workspace_size = workspace
        if self.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)  # on by default: Ampere+ would run "fp32" convolutions at TF32
        if hasattr(trt, "ProfilingVerbosity") and hasattr(config, "profiling_verbosity"):
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector then says each layer's type
        fast_fp16 = bool(getattr(builder, "platform_has_fast_fp16", False))
        fast_int8 = bool(getattr(builder, "platform_has_fast_int8", False))
        if self.precision in ("fp16", "int8"):
            if not fast_fp16:
                print(f"[harness] TensorRT: this GPU has no fast FP16; {self.precision} may not be faster than "
                      f"fp32", file=sys.stderr)
            config.set_flag(trt.BuilderFlag.FP16)  # for int8: the fallback for layers without int8 kernels
        calibrator = None
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            calibrator = self._calibrator() or auto_calibrator
            if calibrator is not None:
                config.int8_calibrator = calibrator
        profile = builder.create_optimization_profile()
        try:
            profile.set_shape(tensor.name, lo, opt, hi)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise HarnessError(f"{onnx_path}: TensorRT {trt_version(trt)} rejects the profile {lo}..{hi} for input "
                               f"'{tensor.name}' {declared} ({_first_line(exc)}); export it with dynamic "
                               f"batch/height/width") from None
        config.add_optimization_profile(profile)
        if calibrator is not None and calibrator is auto_calibrator:
            shape = auto_calibrator.shape
            if len(declared) != 4 or any(d >= 0 and d != s for d, s in zip(declared, shape)):
                raise HarnessError(f"{onnx_path}: input '{tensor.name}' is {declared} but the calibration patches "
                                   f"are {shape}; give a QDQ ONNX or an int8_calibrator for this model")
            if not hasattr(config, "set_calibration_profile"):
                raise HarnessError(f"TensorRT {trt_version(trt)} cannot set a calibration profile for dynamic "
                                   f"shapes; give a QDQ ONNX or use --precision fp16")
            calib_profile = builder.create_optimization_profile()
            try:
                calib_profile.set_shape(tensor.name, shape, shape, shape)
                accepted = config.set_calibration_profile(calib_profile) is not False
            except (RuntimeError, ValueError, TypeError) as exc:
                raise HarnessError(f"{onnx_path}: TensorRT {trt_version(trt)} rejects the calibration profile "
                                   f"{shape} for input '{tensor.name}' {declared} ({_first_line(exc)}); give a QDQ "
                                   f"ONNX or use --precision fp16") from None
            if not accepted:
                raise HarnessError(f"{onnx_path}: TensorRT {trt_version(trt)} rejects the calibration profile "
                                   f"{shape} ({_last_error(logger, since)})")
        elif calibrator is not None and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)
        timing = None
        if timing_cache is not None and hasattr(config, "create_timing_cache") and hasattr(config, "set_timing_cache"):
            try:
                previous = timing_cache.read_bytes() if timing_cache.is_file() else b""
                timing = config.create_timing_cache(previous)
                config.set_timing_cache(timing, True)  # a cache of another TensorRT/GPU is ignored, not fatal
            except Exception as exc:  # noqa: BLE001 - the cache only saves time
                print(f"[harness] TensorRT timing cache {timing_cache} not used ({_first_line(exc)})", file=sys.stderr)
                timing = None
        if hasattr(builder, "build_serialized_network"):
            serialized = builder.build_serialized_network(network, config)
            blob = None if serialized is None else bytes(serialized)
        else:  # TensorRT 7
            engine = builder.build_engine(network, config)
            blob = None if engine is None else bytes(engine.serialize())
        if not blob:
            raise HarnessError(f"{onnx_path}: TensorRT {trt_version(trt)} could not build a {self.precision} engine "
                               f"({_last_error(logger, since)}); try --precision fp32 or a larger workspace_mb")
        int8_source = None
        if self.precision == "int8":
            int8_source = "calibrator" if calibrator is not None else "qdq"
        facts = {"platform_has_fast_fp16": fast_fp16, "platform_has_fast_int8": fast_int8,
                 "workspace_bytes": workspace, "int8_source": int8_source}
        if timing is not None:
            try:
                cache_bytes = bytes(config.get_timing_cache().serialize())
                atomic_write_bytes(timing_cache, cache_bytes)
                facts["timing_cache"] = {"path": str(timing_cache), "bytes": len(cache_bytes)}
            except Exception as exc:  # noqa: BLE001
                print(f"[harness] TensorRT timing cache {timing_cache} not saved ({_first_line(exc)})", file=sys.stderr)
        return blob, facts


def _meta_path(engine_path: Path) -> Path:
    return engine_path.with_suffix(".json")


def _read_meta(engine_path: Path) -> Dict[str, object]:
    try:
        return json.loads(_meta_path(engine_path).read_text())
    except Exception:  # noqa: BLE001 - the sidecar is informative only
        return {}

