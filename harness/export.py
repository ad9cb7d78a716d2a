"""ONNX export of the model zoo, its verification against PyTorch, and checks of user ONNX files.

Export uses the TorchScript exporter (``dynamo=False``): it needs no onnxscript and behaves
the same on the old torch of JetPack 5. Every file has one input ``lr`` (N, C, H, W) and
one output ``sr`` with batch, height and width dynamic, so one file serves every scale's
Full-HD input and any test image. ``metadata_props`` records the model id, the form
(``naive``: the published graph; ``fast``: :mod:`harness.models.fast`), the scale and the
harness version, so a file found on a device says what it is.
"""
from __future__ import annotations

import inspect
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from .errors import HarnessError

FORMS = ("naive", "fast")
INPUT_NAME, OUTPUT_NAME = "lr", "sr"
_FLOAT_TYPES = ("float", "float16")


def harness_version() -> str:
    """The installed package version (``unknown`` when running from a bare checkout)."""
    try:
        from importlib.metadata import version
        return version("sr-edge-harness")
    except Exception:  # noqa: BLE001 - not installed, or Python without importlib.metadata
        return "unknown"


def _infer_channels(module) -> int:
    """Input channels of the first conv (every zoo network starts with one); 1 if none found."""
    from torch import nn

    if isinstance(getattr(module, "in_channels", None), int):  # models that say so (BSRN repeats its input)
        return int(module.in_channels)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return int(m.in_channels)
    return 1


def export_onnx(module, path: Union[str, Path], channels: int = 1, opset: int = 17, form_name: str = "naive",
                model_id: Optional[str] = None) -> Path:
    """Export ``module`` to ``path`` (input ``lr``, output ``sr``, dynamic N/H/W), check it, tag it."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # H != W and neither a multiple of the other, so the tracer cannot conflate the two axes.
    dummy = torch.rand(1, channels, 24, 36)
    kwargs = dict(
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset, do_constant_folding=True,
        dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                      OUTPUT_NAME: {0: "batch", 2: "sr_height", 3: "sr_width"}})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.1; absent on JetPack 5
        kwargs["dynamo"] = False
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer warnings
            torch.onnx.export(module, (dummy,), str(path), **kwargs)
    finally:
        module.train(was_training)
    model = onnx.load(str(path))
    props = {"model_id": model_id or type(module).__name__, "form": form_name,
             "scale": str(getattr(module, "scale", "")), "harness_version": harness_version()}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def _ort_session(path: Union[str, Path], threads: Optional[int] = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def verify_onnx(path: Union[str, Path], module, shape: Tuple[int, ...] = (1, 1, 40, 52), atol: float = 1e-4) -> float:
    """Max abs difference of ONNX Runtime (CPU) vs PyTorch eager on a seeded random input.

    Raises HarnessError naming ``path`` when the shapes differ or the difference exceeds ``atol``.
    """
    import torch

    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    sess = _ort_session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
    finally:
        module.train(was_training)
    if got.shape != want.shape:
        raise HarnessError(f"{path}: ONNX Runtime output shape {got.shape} != PyTorch {want.shape} for input "
                           f"{tuple(shape)}; re-export the model (or use the naive form)")
    diff = float(np.abs(got.astype(np.float64) - want).max())
    if not diff <= atol:  # also catches NaN
        raise HarnessError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.3g} > {atol:g} on input "
                           f"{tuple(shape)}; re-export the model (or use the naive form)")
    return diff


def export_model(model_id: str, module, out_dir: Union[str, Path], form: str = "fast",
                 opset: int = 17) -> Tuple[Path, str]:
    """Write ``<out_dir>/<model_id>.<form>.onnx``; ``form='fast'`` falls back to naive where none exists.

    Returns (path, the form actually written).
    """
    from .models.fast import fast_form

    if form not in FORMS:
        raise HarnessError(f"unknown export form '{form}' for {model_id}; use one of: {', '.join(FORMS)}")
    net = module
    if form == "fast":
        net = fast_form(module)
        if net is None:
            net, form = module, "naive"
    path = Path(out_dir) / f"{model_id}.{form}.onnx"
    export_onnx(net, path, channels=_infer_channels(module), opset=opset, form_name=form, model_id=model_id)
    return path, form


# --- inspecting ONNX files (the runner's check of user-supplied models) ----------------------
class TensorInfo(NamedTuple):
    name: str
    shape: Optional[Tuple[Union[int, str, None], ...]]  # ints, symbolic names, None (unknown); None if rank unknown
    dtype: str  # "float", "float16", ...


def _load_graph_model(path: Path):
    import onnx

    if not path.is_file():
        raise HarnessError(f"ONNX file {path} does not exist; give the path of a .onnx model")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any unparsable file is the same user error
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"cannot read ONNX file {path} ({reason}); give a valid .onnx model") from None


def _tensor_info(value_info) -> TensorInfo:
    import onnx

    tt = value_info.type.tensor_type
    dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower() if tt.elem_type else "unknown"
    shape = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return TensorInfo(value_info.name, shape, dtype)


def onnx_io(path: Union[str, Path]) -> Dict[str, List[TensorInfo]]:
    """``{'inputs': [...], 'outputs': [...]}`` of the graph (initializers listed as inputs left out)."""
    model = _load_graph_model(Path(path))
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    return {"inputs": [_tensor_info(v) for v in graph.input if v.name not in weights],
            "outputs": [_tensor_info(v) for v in graph.output]}


def check_onnx_io(path: Union[str, Path]) -> int:
    """The input channel count (1: Y, 3: RGB) of an SR model file; HarnessError if the runner cannot feed it.

    The runner feeds one float (N, C, H, W) image tensor and reads one output.
    """
    io = onnx_io(path)
    ins, outs = io["inputs"], io["outputs"]
    if len(ins) != 1:
        names = ", ".join(i.name for i in ins) or "none"
        raise HarnessError(f"ONNX file {path} has {len(ins)} inputs ({names}); the harness feeds exactly one "
                           f"(N, C, H, W) image tensor: re-export it with a single input")
    x = ins[0]
    if x.shape is None or len(x.shape) != 4:
        got = "unknown rank" if x.shape is None else f"shape {x.shape}"
        raise HarnessError(f"ONNX file {path}: input '{x.name}' has {got}; the harness feeds (N, C, H, W) "
                           f"with C = 1 (Y) or 3 (RGB): re-export it with a 4-D input")
    c = x.shape[1]
    if c not in (1, 3) or not isinstance(c, int):
        what = f"dynamic channel dimension '{c}'" if not isinstance(c, int) else f"{c} input channels"
        raise HarnessError(f"ONNX file {path}: input '{x.name}' {x.shape} has {what}; the harness feeds "
                           f"C = 1 (Y) or 3 (RGB): re-export it with a fixed C of 1 or 3")
    if x.dtype not in _FLOAT_TYPES:
        raise HarnessError(f"ONNX file {path}: input '{x.name}' is {x.dtype}; the harness feeds float "
                           f"images in [0, 1]: re-export it with a float32 (or float16) input")
    if len(outs) != 1:
        names = ", ".join(o.name for o in outs) or "none"
        raise HarnessError(f"ONNX file {path} has {len(outs)} outputs ({names}); the harness reads exactly one "
                           f"(N, C, sH, sW) image: re-export it with a single output")
    return c


# --- naive vs fast speed (a quick CPU benchmark, not a test) --------------------------------
def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_forms(model_id: str, threads: int = 2, repeats: int = 10,
               scale_input: Tuple[int, int] = (540, 960)) -> Dict[str, object]:
    """Median latency (ms) of the naive and fast forms in ONNX Runtime (CPU) and eager PyTorch.

    ``scale_input`` is the LR (H, W): 540x960 is the x2 input of one Full-HD frame. The
    module is freshly initialised (speed does not depend on the weights). ``*_fast_ms`` are
    None for families without a fast form.
    """
    import torch

    from .models import resolve
    from .models.fast import fast_form

    module = getattr(resolve(model_id), "module", None)
    if module is None:
        raise HarnessError(f"model {model_id} is not a network (no ONNX export); pick a network id")
    fast = fast_form(module)
    channels = _infer_channels(module)
    x = np.random.default_rng(0).random((1, channels) + tuple(scale_input), dtype=np.float32)
    xt = torch.from_numpy(x)
    result: Dict[str, object] = {"model_id": model_id, "input": tuple(scale_input), "threads": threads,
                                 "repeats": repeats}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for form, net in (("naive", module), ("fast", fast)):
                if net is None:
                    result[f"ort_{form}_ms"] = result[f"torch_{form}_ms"] = None
                    continue
                path = export_onnx(net, Path(tmp) / f"{model_id}.{form}.onnx", channels=channels,
                                   form_name=form, model_id=model_id)
                sess = _ort_session(path, threads=threads)
                result[f"ort_{form}_ms"] = _median_ms(lambda: sess.run(None, {INPUT_NAME: x}), repeats)
                with torch.inference_mode():
                    result[f"torch_{form}_ms"] = _median_ms(lambda: net(xt), repeats)
                del sess
    finally:
        torch.set_num_threads(previous_threads)
    if result["ort_fast_ms"]:
        result["ort_speedup"] = result["ort_naive_ms"] / result["ort_fast_ms"]
    return result
