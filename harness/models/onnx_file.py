"""A user's ONNX file as a model: ``path/to/model.onnx`` (1-channel Y or 3-channel RGB).

The scale is read from the model itself: a probe input of 24x32 (or the file's fixed input
size) is run and the output size divided by the input size; it must be the same integer on
both axes (and agree with ``--scale`` when given), else a one-line error says the output is
not scale x input. Backends run the file as it is (``onnx_path``): no re-export.

:func:`onnx_io` lists a graph's inputs and outputs and :func:`check_onnx_io` says, in one line,
why the runner cannot feed a file (it feeds one float (N, C, H, W) image and reads one output).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..errors import HarnessError, first_line
from ..ortsession import ort_reason, ort_session
from .base import Upscaler

PATTERN = r"(?P<path>.+\.onnx)"
_FLOAT_TYPES = ("float", "float16")


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
        raise HarnessError(f"cannot read ONNX file {path} ({first_line(exc, 200)}); give a valid .onnx model") from None


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
    if x.dtype != "float":  # float16 I/O: the harness feeds float32 everywhere (TensorRT makes FP16 itself)
        raise HarnessError(f"ONNX file {path}: input '{x.name}' is {x.dtype}; the harness feeds float32 "
                           f"images in [0, 1]: re-export it with a float32 input and output (fp16 inside is fine)")
    fixed = [d for d in x.shape[2:] if isinstance(d, int) and d > 0]
    if fixed:
        raise HarnessError(f"ONNX file {path}: input '{x.name}' {x.shape} has a fixed height/width; the harness "
                           f"feeds every test image and Full-HD frame at its own size: re-export it with dynamic "
                           f"height and width (torch.onnx.export dynamic_axes={{'input': {{2: 'h', 3: 'w'}}}})")
    if len(outs) != 1:
        names = ", ".join(o.name for o in outs) or "none"
        raise HarnessError(f"ONNX file {path} has {len(outs)} outputs ({names}); the harness reads exactly one "
                           f"(N, C, sH, sW) image: re-export it with a single output")
    y = outs[0]
    if y.dtype not in _FLOAT_TYPES:  # an integer image would be scored as if it were in [0, 1]
        raise HarnessError(f"ONNX file {path}: output '{y.name}' is {y.dtype}; the harness reads a float "
                           f"image in [0, 1]: re-export it with a float32 output (no rounding to integers)")
    return c


class OnnxFileUpscaler(Upscaler):
    onnx_path: str = ""
    _session = None

    def run_onnx(self, x: np.ndarray) -> np.ndarray:
        """The file's output for one float32 (N, C, H, W) input, on ONNX Runtime's CPU provider (the
        reference a backend's run of the same file is checked against)."""
        if self._session is None:
            self._session = ort_session(self.onnx_path)
        name = self._session.get_inputs()[0].name
        return self._session.run(None, {name: x})[0]

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        x = lr[None, None] if self.input_space == "y" else np.transpose(lr, (2, 0, 1))[None]
        y = self.run_onnx(np.ascontiguousarray(x, dtype=np.float32))[0]
        return y[0] if self.input_space == "y" else np.transpose(y, (1, 2, 0))


def probe_scale(path: str, channels: int, fixed_hw=None) -> int:
    """The integer scale of an SR ONNX file, from one probe run."""
    h, w = fixed_hw if fixed_hw else (24, 32)
    sess = ort_session(path)
    try:
        out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, channels, h, w), np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - ORT raises several types
        raise HarnessError(f"ONNX file {path} fails on a 1x{channels}x{h}x{w} float32 input "
                           f"({ort_reason(exc, 160)}); check that it runs in ONNX Runtime on such an input") from None
    if out.ndim != 4 or out.shape[1] != channels or out.shape[2] % h or out.shape[3] % w \
            or out.shape[2] // h != out.shape[3] // w:
        raise HarnessError(f"ONNX file {path}: output shape {tuple(out.shape)} for input (1, {channels}, {h}, {w}) is "
                           f"not scale x input with {channels} channel(s); the harness needs (N, C, sH, sW)")
    return out.shape[2] // h


def build(match, scale: Optional[int]) -> OnnxFileUpscaler:
    path = Path(match.group("path")).expanduser()
    if not path.is_file():
        raise HarnessError(f"ONNX file {path} does not exist")
    channels = check_onnx_io(path)  # dynamic height/width, float32 input, float output
    found = probe_scale(str(path), channels)
    if scale is not None and found != scale:
        raise HarnessError(f"ONNX file {path} upscales x{found}, not x{scale} as --scale says")
    model = OnnxFileUpscaler(id=path.stem, family="onnx", scale=found, input_space="y" if channels == 1 else "rgb",
                             weights="file")
    model.onnx_path = str(path.resolve())
    return model
