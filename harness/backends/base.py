"""The small interface every inference backend implements.

A backend turns a model into a :class:`Session` for given input shapes and precision.
The session separates the three things a benchmark must time apart: ``load`` (host ->
device copy of one LR input), ``compute`` (the inference alone, synchronised, on inputs
already on the device) and ``fetch`` (device -> host copy of the output). On CPU backends
``load``/``fetch`` are near-free; on GPUs, compute-only and end-to-end timings differ and
both are reported.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HarnessError
from ..timing import seconds

Shape = Tuple[int, int, int, int]  # N, C, H, W


class BackendUnavailable(HarnessError):
    """The backend's library or device is absent on this machine (one line says which and how to get it)."""


class Session:
    """A model prepared for a set of input shapes. Subclasses implement load/compute/fetch."""

    #: which graph ran: "naive" or "fast" (the LR-resolution reduction form) or "eager"
    form: str = "eager"
    #: extra facts for the results store (provider, engine path, ...)
    details: Dict[str, object]

    def __init__(self):
        self.details = {}

    def load(self, lr: np.ndarray) -> None:
        raise NotImplementedError

    def compute(self) -> None:
        """Run inference on the loaded input and wait for it to finish."""
        raise NotImplementedError

    def fetch(self) -> np.ndarray:
        raise NotImplementedError

    def infer(self, lr: np.ndarray) -> np.ndarray:
        """End to end: copy in, compute, copy out."""
        self.load(lr)
        self.compute()
        return self.fetch()

    def device_memory_bytes(self) -> Optional[int]:
        """Peak device memory of this session where the backend can tell (GPU), else None."""
        return None

    def close(self) -> None:
        pass


class Backend:
    name = "base"
    #: precisions this backend can run
    precisions: Sequence[str] = ("fp32",)

    def __init__(self, precision: str = "fp32", threads: int = 0, device: str = "cpu",
                 workdir: Optional[str] = None, form: str = "auto", **options):
        if precision not in self.precisions:
            raise HarnessError(f"backend {self.name} does not run {precision}; it runs {', '.join(self.precisions)}")
        self.precision = precision
        self.threads = threads
        self.device = device
        self.workdir = workdir
        self.form = form
        self.options = options

    @classmethod
    def probe(cls) -> Tuple[bool, str]:
        """(usable here, why not) without building anything."""
        return True, ""

    def prepare(self, model, input_shapes: List[Shape]) -> Session:
        raise NotImplementedError

    def versions(self) -> Dict[str, str]:
        return {}


def as_nchw(lr: np.ndarray) -> np.ndarray:
    """HxW (Y) or HxWxC (RGB) float image -> contiguous float32 1xCxHxW."""
    if lr.ndim == 2:
        x = lr[None, None]
    elif lr.ndim == 3:
        x = np.transpose(lr, (2, 0, 1))[None]
    else:
        x = lr
    return np.ascontiguousarray(x, dtype=np.float32)


def from_nchw(y: np.ndarray) -> np.ndarray:
    """1xCxHxW -> HxW (C=1) or HxWxC."""
    y = np.asarray(y)[0]
    return y[0] if y.shape[0] == 1 else np.transpose(y, (1, 2, 0))


def timed_compute(session: Session) -> Tuple[float, Optional[float]]:
    """One ``compute`` under the clock (:func:`harness.timing.seconds`): its wall-clock seconds, and the
    session's own GPU-side ms (``last_gpu_ms``) where the backend measures one, else None."""
    wall = seconds(session.compute)
    gpu_ms = getattr(session, "last_gpu_ms", None)
    return wall, None if gpu_ms is None else float(gpu_ms)


def quick_time(session: Session, shape: Shape, runs: int = 3, warm: bool = True) -> float:
    """Median seconds of a few runs after one warm-up (``warm=False``: none, the session already ran at
    ``shape``): enough to rank two graph forms. Uses the session's GPU-side time (``last_gpu_ms``) where
    the backend measures one."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    session.load(x)
    if warm:
        session.compute()
    times = []
    for _ in range(runs):
        wall, gpu_ms = timed_compute(session)
        times.append(gpu_ms / 1e3 if gpu_ms is not None else wall)
    return float(np.median(times))
