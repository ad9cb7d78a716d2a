"""PyTorch eager: the reference path (and the fp32 reference every backend is checked against)."""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import numpy as np

from .base import Backend, BackendUnavailable, Session, Shape
from .native import NativeSession


class TorchSession(Session):
    form = "eager"

    def __init__(self, module, device: str, dtype):
        super().__init__()
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = dtype
        # A copy: Module.to() works in place, and the runner keeps a CPU fp32 reference session of
        # the same model next to this one (sharing the module would move one under the other).
        self.module = copy.deepcopy(module).to(self.device, dtype).eval()
        self._x = None
        self._y = None
        self.details["runtime"] = "torch"
        self._events = None
        if self.device.type == "cuda":  # compute-only GPU time, as the TensorRT session reports it
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def load(self, lr: np.ndarray) -> None:
        # copied as it is, then cast where the model runs: to(device, fp16) casts on the CPU first, on every core
        self._x = self.torch.from_numpy(lr).to(self.device).to(self.dtype)
        self._sync()

    def compute(self) -> None:
        """Run and wait; on CUDA, ``last_gpu_ms`` is this execution's GPU time from CUDA events recorded on
        the device's current stream around the forward pass."""
        if self._events is None:
            with self.torch.inference_mode():
                self._y = self.module(self._x)
            return
        start, end = self._events
        stream = self.torch.cuda.current_stream(self.device)
        with self.torch.cuda.device(self.device), self.torch.inference_mode():
            start.record(stream)
            self._y = self.module(self._x)
            end.record(stream)
        end.synchronize()
        self.last_gpu_ms = float(start.elapsed_time(end))

    def fetch(self) -> np.ndarray:
        return self._y.float().cpu().numpy()

    def device_memory_bytes(self):
        if self.device.type == "cuda":
            return int(self.torch.cuda.max_memory_allocated(self.device))
        return None


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "fp16")

    @classmethod
    def probe(cls) -> Tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError:
            return False, "torch is not installed (./scripts/bootstrap.sh installs it)"
        return True, ""

    def prepare(self, model, input_shapes: List[Shape]) -> Session:
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailable(why)
        import torch

        module = getattr(model, "module", None)
        if module is None:
            return NativeSession(model)
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("torch backend on cuda: this torch build sees no CUDA device "
                                     f"(torch {torch.__version__}); use --backend onnxruntime or a CUDA torch")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise BackendUnavailable("torch fp16 runs on cuda only here; use --precision fp32 on the CPU")
        if self.threads:
            torch.set_num_threads(self.threads)
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        return TorchSession(module, self.device, dtype)

    def versions(self) -> Dict[str, str]:
        import torch

        return {"torch": torch.__version__, "torch_cuda": str(torch.version.cuda)}
