"""Classical models without a network (MATLAB/OpenCV bicubic) run as they are, on any backend."""
from __future__ import annotations

import numpy as np

from ..models.base import quality_runtime
from .base import Session, from_nchw


class NativeSession(Session):
    form = "native"

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._lr = None
        self._out = None
        # what really computes it, whatever the backend: numpy or opencv (the classical baselines), onnxruntime
        # (an ONNX model on a backend that cannot run its graph itself, e.g. torch)
        runtime = self.details["runtime"] = quality_runtime(model)
        self.details["note"] = ("classical method: runs in Python/NumPy/OpenCV whatever the backend"
                                if runtime in ("numpy", "opencv") else
                                f"no graph for this backend: the model runs as it is ({runtime})")

    def load(self, lr: np.ndarray) -> None:
        self._lr = lr

    def compute(self) -> None:
        x = self._lr
        img = from_nchw(x) if x.ndim == 4 else x
        self._out = np.asarray(self.model(img), dtype=np.float32)

    def fetch(self) -> np.ndarray:
        out = self._out
        return out[None, None] if out.ndim == 2 else np.transpose(out, (2, 0, 1))[None]
