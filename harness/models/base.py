"""What every model of the harness looks like to the rest of the pipeline.

An :class:`Upscaler` takes an LR image in [0, 1] (HxW for ``input_space='y'`` models, the
ITU-R BT.601 Y channel; HxWx3 for ``'rgb'`` models) and returns the HR image of the same
space, *unclamped*: the quality protocol clamps. ``module`` is the PyTorch network where
there is one (exported to ONNX by later stages); classical methods have none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np


@dataclass
class Upscaler:
    id: str
    family: str
    scale: int
    input_space: str = "y"  # "y" (1 channel) or "rgb" (3 channels)
    weights: str = "none"   # which weights ran: none (fixed/classical), shipped, official, a path
    notes: Dict[str, str] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return 1 if self.input_space == "y" else 3

    def upscale(self, lr: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        expected = 2 if self.input_space == "y" else 3
        if lr.ndim != expected or (expected == 3 and lr.shape[2] != 3):
            raise ValueError(f"{self.id} takes {'HxW Y' if expected == 2 else 'HxWx3 RGB'} input, got {lr.shape}")
        return self.upscale(lr)


class TorchUpscaler(Upscaler):
    """An eager PyTorch network (the reference path; ONNX/TensorRT backends come later)."""

    def __init__(self, module, **kwargs):
        super().__init__(**kwargs)
        self.module = module.eval()

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))
        x = x[None, None] if self.input_space == "y" else x.permute(2, 0, 1)[None]
        weight = next(iter(self.module.parameters()), None)
        if weight is not None and weight.device.type != "cpu":  # a module training on a GPU, validated there
            x = x.to(weight.device)
        with torch.inference_mode():
            y = self.module(x)
        y = y[0, 0] if self.input_space == "y" else y[0].permute(1, 2, 0)
        return y.cpu().numpy()


#: the libraries a model's output can be computed by (``runtime`` in the results' records)
RUNTIMES = ("numpy", "opencv", "onnxruntime", "tensorrt", "torch")


def quality_runtime(model) -> str:
    """The library that computes ``model(lr)``, i.e. its quality figures (and its speed where a backend
    runs it as it is, ``NativeSession``): one of :data:`RUNTIMES`, or ``"unknown"`` for a model that
    says nothing of itself.

    A model's own ``runtime`` attribute first (the classical baselines: ``bicubic-matlab`` is NumPy,
    ``bicubic-opencv`` OpenCV); then an ONNX file, an export folder's graphs or ClassSR's exported
    pipeline run on ONNX Runtime; then a PyTorch module runs in PyTorch (fp32, eager)."""
    declared = getattr(model, "runtime", None)
    if isinstance(declared, str) and declared:
        return declared
    if any(getattr(model, attr, None) for attr in ("onnx_path", "onnx_forms", "onnx_parts")):
        return "onnxruntime"
    if getattr(model, "module", None) is not None:
        return "torch"
    return "unknown"


# Where checkpoints nest their state dict: BasicSR ('params', 'params_ema'), common trainers.
_NESTED_KEYS = ("params", "params_ema", "state_dict", "model")


def read_state_dict(path, model_id: str, fix: str) -> Dict:
    """A weights file as a float32 state dict; one-line errors naming the file, ending in ``fix``.

    Accepts a bare state dict, a checkpoint nesting it (``_NESTED_KEYS``), a pickled module,
    and DataParallel's ``module.`` key prefix; fp16 files (the official eSR bicubic) are cast.
    """
    from pathlib import Path

    import torch

    from ..errors import HarnessError

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"weights file {path} for {model_id} does not exist; {fix}")
    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except TypeError:  # torch < 1.13 (JetPack 5) has no weights_only
            obj = torch.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise HarnessError(f"cannot read weights file {path} for {model_id} ({reason}); {fix}") from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HarnessError(f"weights file {path} is not a PyTorch state_dict (found {type(obj).__name__}); {fix}")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_state_strict(module, state, path, model_id: str, fix: str):
    """``module.load_state_dict(state, strict=True)`` with a one-line error naming the file:
    which keys are missing or unexpected and which shapes differ, and ``fix``."""
    from ..errors import HarnessError

    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (want {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape " + ", ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""))
        if missing:
            parts.append(f"{len(missing)} missing, e.g. " + ", ".join(missing[:3]))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. " + ", ".join(unexpected[:3]))
        raise HarnessError(f"weights file {path} is not a {model_id} model ({'; '.join(parts)}); {fix}")
    module.load_state_dict(state, strict=True)
    return module.eval()
