"""ClassSR's routed pipeline on ONNX Runtime: NumPy patching, routing and stitching around four sessions.

The graphs are :func:`harness.export.export_classsr_parts`'s (a classifier and three
FSRCNN branches, each with a dynamic batch); grid, padding, argmax routing, one batch per branch
and sum/count stitching are those of the PyTorch module (:mod:`harness.models.classsr.routing`).
:class:`ClassSROnnx` has the ``load/compute/fetch`` interface of a backend session, so end-to-end
time (classifier and stitching included) is measured on ONNX Runtime.

Built by :class:`~harness.backends.onnxruntime_backend.OnnxRuntimeBackend` for a zoo model
(:meth:`ClassSROnnx.of_module`, graphs cached under the backend's key for the weights) or an
export folder's entry, and by :class:`harness.exported.ExportedPipeline`. Imports flow one way:
this module imports from :mod:`harness.models.classsr`, never the reverse.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..errors import HarnessError
from ..models.classsr.routing import coverage, padded_hw, patch_grid, routing_stats
from ..models.classsr.spec import MODEL_ID, ONNX_PARTS, PATCH, PROBS_NAME, SCALE, STRIDE, part_files
from ..ortsession import ort_session
from .base import Session


class ClassSROnnx(Session):
    """The routed pipeline in NumPy around four ONNX Runtime sessions (classifier + three branches).

    Same grid, padding, argmax routing, one batch per branch and sum/count stitching as the
    PyTorch module. Call it on an HxW Y image (like an Upscaler) or use it as a backend session
    (``load``/``compute``/``fetch``/``infer`` on (N, 1, H, W) float32): ``compute`` times the
    whole pipeline, classification and stitching included. ``last_routing`` is the last run's
    :func:`~harness.models.classsr.routing.routing_stats`; ``last_times_ms`` splits the last run
    into its stages.
    """

    form = "routed"

    def __init__(self, paths: Union[Dict[str, Union[str, Path]], str, Path], threads: Optional[int] = None,
                 providers: Optional[Sequence] = None, scale: int = SCALE, patch: int = PATCH, stride: int = STRIDE,
                 macs: Optional[Dict[str, object]] = None):
        super().__init__()
        self.macs = macs  # a macs_table() (an export folder's), else routing stats compute it with PyTorch
        if not isinstance(paths, dict):
            paths = part_files(paths)
        missing = [p for p in ONNX_PARTS if p not in paths or not Path(paths[p]).is_file()]
        if missing:
            raise HarnessError(f"{MODEL_ID}: ONNX graphs missing for {', '.join(missing)}; "
                               f"write them with harness.export.export_classsr_parts(module, DIR)")
        self.paths = {p: Path(paths[p]) for p in ONNX_PARTS}
        self.scale, self.patch, self.stride = scale, patch, stride
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.sessions = {p: ort_session(self.paths[p], threads, self.providers) for p in ONNX_PARTS}
        self.classifier = self.sessions["classifier"]
        self.branches = [self.sessions[f"branch{i}"] for i in range(len(ONNX_PARTS) - 1)]
        self.last_routing: Optional[Dict[str, object]] = None
        self.last_times_ms: Dict[str, float] = {}
        self.details: Dict[str, object] = {"runtime": "onnxruntime", "onnx": {p: str(v) for p, v in self.paths.items()},
                                           "providers": self.classifier.get_providers()}
        self._x = None
        self._y = None

    @classmethod
    def of_module(cls, module, folder: Union[str, Path], threads: Optional[int] = None,
                  providers: Optional[Sequence] = None) -> "ClassSROnnx":
        """The pipeline of a PyTorch ``ClassSR`` module (or a model holding one): its graphs in ``folder``,
        exported there first unless all four are present and match their checksum records (a damaged
        part is exported again with a warning). The caller names ``folder`` after the weights (the ONNX
        Runtime backend: ``<workdir>/ClassSR-FSRCNN_s4.<module_digest>``), so other weights get other
        graphs."""
        from ..export import cached_classsr_parts

        return cls(cached_classsr_parts(module, folder), threads=threads, providers=providers)

    def run(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) float32 -> (N, 1, 4H, 4W): classify, route, one batch per branch, stitch."""
        t0 = time.perf_counter()
        x = np.ascontiguousarray(x, dtype=np.float32)
        n, c, h, w = x.shape
        p, s = self.patch, self.scale
        hp, wp = padded_hw(h, w, p)
        if (hp, wp) != (h, w):
            x = np.pad(x, ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode="edge")
        grid = patch_grid(hp, wp, p, self.stride)
        patches = np.stack([x[:, :, y:y + p, x0:x0 + p] for y, x0 in grid], axis=1).reshape(n * len(grid), c, p, p)
        t1 = time.perf_counter()
        probs = self.classifier.run([PROBS_NAME], {"lr": patches})[0]
        labels = probs.argmax(axis=1)
        t2 = time.perf_counter()
        sp = s * p
        hr = np.empty((patches.shape[0], c, sp, sp), np.float32)
        for i, sess in enumerate(self.branches):
            idx = np.flatnonzero(labels == i)
            if idx.size:
                hr[idx] = sess.run(None, {"lr": np.ascontiguousarray(patches[idx])})[0]
        t3 = time.perf_counter()
        hr = hr.reshape(n, len(grid), c, sp, sp)
        out = np.zeros((n, c, s * hp, s * wp), np.float32)
        for k, (y, x0) in enumerate(grid):
            out[:, :, s * y:s * y + sp, s * x0:s * x0 + sp] += hr[:, k]
        out /= coverage(hp, wp, s, p, self.stride)
        out = np.ascontiguousarray(out[:, :, :s * h, :s * w])
        t4 = time.perf_counter()
        self.last_times_ms = {"patch": (t1 - t0) * 1e3, "classify": (t2 - t1) * 1e3, "branches": (t3 - t2) * 1e3,
                              "stitch": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        self.last_routing = routing_stats(labels, n, (h, w), p, self.stride, table=self.macs)
        return out

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        """HxW Y image in [0, 1] -> 4Hx4W (unclamped), like an Upscaler."""
        return self.run(np.asarray(lr, dtype=np.float32)[None, None])[0, 0]

    # the backend Session interface (harness.backends.base.Session), duck-typed
    def load(self, lr: np.ndarray) -> None:
        self._x = lr

    def compute(self) -> None:
        self._y = self.run(self._x)

    def fetch(self) -> np.ndarray:
        return self._y

    def close(self) -> None:
        self.sessions = {}
        self.classifier = None
        self.branches = []
