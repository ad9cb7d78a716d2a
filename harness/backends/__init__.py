"""Inference backends by name; each module imports its library lazily."""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

from ..errors import HarnessError
from .base import Backend, BackendUnavailable, Session, as_nchw, from_nchw

_BACKENDS: Dict[str, Tuple[str, str]] = {
    "onnxruntime": ("harness.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "tensorrt": ("harness.backends.tensorrt_backend", "TensorRTBackend"),
    "torch": ("harness.backends.torch_backend", "TorchBackend"),
}


def backend_names():
    return list(_BACKENDS)


def backend_class(name: str):
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise HarnessError(f"unknown backend '{name}' (known: {', '.join(_BACKENDS)})") from None
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, **options) -> Backend:
    return backend_class(name)(**options)


__all__ = ["Backend", "BackendUnavailable", "Session", "as_nchw", "backend_class", "backend_names",
           "from_nchw", "make_backend"]
