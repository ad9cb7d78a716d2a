"""The full-colour application path around a backend session: an RGB frame in, an RGB frame out, timed as one.

A speed row times the model alone on what it eats: the Y channel for the eSR pool, RGB for
ABPN and the classical baselines. An application upscaling a colour frame does more for a Y
model, and :class:`ColorPipeline` times all of it inside one ``compute()``:

1. RGB -> YCbCr, ITU-R BT.601 as :mod:`harness.color` (the coefficients the quality protocol
   uses), in float32 on the [0, 1] scale: Y is exactly the model's usual input;
2. the Y model on Y through the wrapped backend session (``load``, ``compute``, ``fetch``: host
   to host, so on a GPU backend the copies are part of the figure), its output clamped to [0, 1];
3. Cb and Cr upscaled by ``cv2.resize(..., INTER_CUBIC)``, what an application uses;
4. YCbCr -> RGB, clamped to [0, 1].

For an RGB model (ABPN, ``bicubic-matlab``, ``bicubic-opencv``) the pipeline is the model
itself, then the clamp: its timing is the model's own, plus the clamp.

Input: the LR RGB frame as float32 NCHW ``(1, 3, H, W)`` in [0, 1] (``as_nchw`` of an entry of
:func:`lr_rgb_inputs`, which is ``frames.lr_inputs(frames, scale, "rgb")``); output: float32
``(1, 3, sH, sW)`` in [0, 1]. The session interface is that of :class:`harness.backends.base.Session`,
so :func:`~harness.backends.base.timed_compute` and the runner's timed loop time it unchanged.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np

from .backends.base import Session
from .color import rgb_to_ycbcr
from .errors import HarnessError
from .frames import Frame, lr_inputs

# BT.601 on the [0, 1] scale, column form (3x3 matrix on the three planes), read from harness.color:
# YCbCr/255 = FWD @ RGB + OFFSET; RGB = INV @ YCbCr/255 + BIAS
_OFFSET64 = rgb_to_ycbcr(np.zeros((1, 3)))[0] / 255.0
_FWD64 = (rgb_to_ycbcr(np.eye(3)) / 255.0 - _OFFSET64).T
_INV64 = np.linalg.inv(_FWD64)
FWD = _FWD64.astype(np.float32)
OFFSET = _OFFSET64.astype(np.float32)
INV = _INV64.astype(np.float32)
BIAS = (-_INV64 @ _OFFSET64).astype(np.float32)

Y_STEPS = ("RGB -> BT.601 YCbCr (float32, numpy); Y model on Y ({runtime}), clamped; Cb, Cr by cv2.resize "
           "INTER_CUBIC (opencv); YCbCr -> RGB (numpy), clamped: host RGB in to host RGB out, timed as one")
RGB_STEPS = "RGB model on RGB ({runtime}), clamped: the model itself, host RGB in to host RGB out"


def lr_rgb_inputs(frames: List[Frame], scale: int, cache: bool = True) -> List[np.ndarray]:
    """The pipeline's inputs: each frame's LR RGB (HxWx3 float32 in [0, 1], the MATLAB bicubic of the
    frame, as for RGB models); ``as_nchw`` makes the (1, 3, H, W) the pipeline loads."""
    return lr_inputs(frames, scale, "rgb", cache=cache)


class ColorPipeline(Session):
    """A backend ``session`` of ``model`` (prepared for the model's own input: (1, 1, H, W) for a Y
    model, (1, 3, H, W) for an RGB one) as the whole colour application path (module docstring).

    ``load`` takes the LR RGB frame (1, 3, H, W) float32 in [0, 1]; ``compute`` runs every step;
    ``fetch`` gives (1, 3, sH, sW) in [0, 1]. ``details`` are the session's, plus ``pipeline``
    ("color") and ``pipeline_steps`` (what is timed); ``last_times_ms`` splits the last run into its
    steps. There is no ``last_gpu_ms``: the figure is host-to-host wall-clock time (the model's own
    GPU time of the last run is ``model_gpu_ms``)."""

    def __init__(self, session: Session, model, scale: Optional[int] = None):
        super().__init__()
        self.session = session
        self.model = model
        self.scale = int(scale if scale is not None else model.scale)
        self.input_space = getattr(model, "input_space", "y")
        if self.input_space not in ("y", "rgb"):
            raise HarnessError(f"{getattr(model, 'id', model)}: input space '{self.input_space}' is neither y nor rgb")
        self.details = dict(session.details)
        runtime = str(session.details.get("runtime", "unknown"))
        self.details["pipeline"] = "color"
        self.details["pipeline_steps"] = (Y_STEPS if self.input_space == "y" else RGB_STEPS).format(runtime=runtime)
        self.last_times_ms: Dict[str, float] = {}
        self._x: Optional[np.ndarray] = None
        self._y: Optional[np.ndarray] = None

    @property
    def form(self) -> str:
        return self.session.form

    @property
    def last_routing(self):
        """A routed model's (ClassSR) routing of the last run, as its own session reports it."""
        return getattr(self.session, "last_routing", None)

    @property
    def model_gpu_ms(self) -> Optional[float]:
        return getattr(self.session, "last_gpu_ms", None)

    def load(self, lr: np.ndarray) -> None:
        if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
            raise HarnessError(f"the colour pipeline takes one LR RGB frame (1, 3, H, W), got {tuple(lr.shape)}")
        self._x = np.ascontiguousarray(lr, dtype=np.float32)

    def compute(self) -> None:
        self._y = self._rgb(self._x) if self.input_space == "rgb" else self._y_model(self._x)

    def fetch(self) -> np.ndarray:
        return self._y

    def _model(self, x: np.ndarray, channels: int) -> np.ndarray:
        self.session.load(x)
        self.session.compute()
        out = self.session.fetch()
        _, _, h, w = x.shape
        want = (1, channels, h * self.scale, w * self.scale)
        if tuple(out.shape) != want:
            raise HarnessError(f"{getattr(self.model, 'id', 'model')}: output {tuple(out.shape)} for input "
                               f"{tuple(x.shape)} is not {want} (x{self.scale})")
        return out

    def _rgb(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self._model(x, 3)
        t1 = time.perf_counter()
        rgb = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
        t2 = time.perf_counter()
        self.last_times_ms = {"model": (t1 - t0) * 1e3, "clamp": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3}
        return rgb

    def _y_model(self, x: np.ndarray) -> np.ndarray:
        import cv2

        t0 = time.perf_counter()
        _, _, h, w = x.shape
        ycc = FWD @ x.reshape(3, h * w)  # (3, H*W): Y, Cb, Cr on the [0, 1] scale
        ycc += OFFSET[:, None]
        t1 = time.perf_counter()
        y_hr = self._model(ycc[0].reshape(1, 1, h, w), 1)
        t2 = time.perf_counter()
        sh, sw = h * self.scale, w * self.scale
        hr = np.empty((3, sh, sw), np.float32)
        np.clip(y_hr.reshape(sh, sw), 0.0, 1.0, out=hr[0])
        for c in (1, 2):
            hr[c] = cv2.resize(ycc[c].reshape(h, w), (sw, sh), interpolation=cv2.INTER_CUBIC)
        t3 = time.perf_counter()
        rgb = INV @ hr.reshape(3, sh * sw)
        rgb += BIAS[:, None]
        np.clip(rgb, 0.0, 1.0, out=rgb)
        t4 = time.perf_counter()
        self.last_times_ms = {"to_ycbcr": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "chroma": (t3 - t2) * 1e3,
                              "to_rgb": (t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        return rgb.reshape(1, 3, sh, sw)

    def device_memory_bytes(self) -> Optional[int]:
        return self.session.device_memory_bytes()

    def close(self) -> None:
        self.session.close()
