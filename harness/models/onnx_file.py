"""A user's ONNX file as a model: ``path/to/model.onnx`` (1-channel Y or 3-channel RGB).

The scale is read from the model itself: a probe input of 24x32 (or the file's fixed input
size) is run and the output size divided by the input size; it must be the same integer on
both axes (and agree with ``--scale`` when given), else a one-line error says the output is
not scale x input. Backends run the file as it is (``onnx_path``): no re-export.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import HarnessError
from .base import Upscaler

PATTERN = r"(?P<path>.+\.onnx)"


class OnnxFileUpscaler(Upscaler):
    onnx_path: str = ""
    _session = None

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(self.onnx_path, providers=["CPUExecutionProvider"])
        name = self._session.get_inputs()[0].name
        return self._session.run(None, {name: x})[0]

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        x = lr[None, None] if self.input_space == "y" else np.transpose(lr, (2, 0, 1))[None]
        y = self._run(np.ascontiguousarray(x, dtype=np.float32))[0]
        return y[0] if self.input_space == "y" else np.transpose(y, (1, 2, 0))


def probe_scale(path: str, channels: int, fixed_hw=None) -> int:
    """The integer scale of an SR ONNX file, from one probe run."""
    import onnxruntime as ort

    h, w = fixed_hw if fixed_hw else (24, 32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    try:
        out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, channels, h, w), np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - ORT raises several types
        raise HarnessError(f"ONNX file {path} fails on a 1x{channels}x{h}x{w} input ({str(exc).splitlines()[0][:160]}); "
                           f"export it with dynamic height/width or give frames of its fixed size") from None
    if out.ndim != 4 or out.shape[1] != channels or out.shape[2] % h or out.shape[3] % w \
            or out.shape[2] // h != out.shape[3] // w:
        raise HarnessError(f"ONNX file {path}: output shape {tuple(out.shape)} for input (1, {channels}, {h}, {w}) is "
                           f"not scale x input with {channels} channel(s); the harness needs (N, C, sH, sW)")
    return out.shape[2] // h


def build(match, scale: Optional[int]) -> OnnxFileUpscaler:
    from ..export import check_onnx_io, onnx_io

    path = Path(match.group("path")).expanduser()
    if not path.is_file():
        raise HarnessError(f"ONNX file {path} does not exist")
    channels = check_onnx_io(path)
    shape = onnx_io(path)["inputs"][0].shape
    fixed = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
    found = probe_scale(str(path), channels, fixed)
    if scale is not None and found != scale:
        raise HarnessError(f"ONNX file {path} upscales x{found}, not x{scale} as --scale says")
    model = OnnxFileUpscaler(id=path.stem, family="onnx", scale=found, input_space="y" if channels == 1 else "rgb",
                             weights="file")
    model.onnx_path = str(path.resolve())
    return model
