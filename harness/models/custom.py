"""User models given as ``package.module:ClassName`` (an ``nn.Module`` taking (N, C, H, W) in [0, 1]).

The class is instantiated with ``scale=`` when its constructor takes it, else with no
arguments; ``input_space`` ("y" or "rgb") is read from the class (default "y"). Weights come
from ``--weights FILE`` (a state dict, or a checkpoint with the state dict under ``params``,
``state_dict`` or ``model``).
"""
from __future__ import annotations

import importlib
import inspect

from ..errors import HarnessError
from .base import TorchUpscaler

PATTERN = r"(?P<module>[A-Za-z_][\w.]*):(?P<cls>[A-Za-z_]\w*)"


def build(match, scale: int) -> TorchUpscaler:
    module_name, cls_name = match.group("module"), match.group("cls")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(f"cannot import {module_name} for model {match.group(0)} ({exc}); "
                           f"make it importable (PYTHONPATH) or give an ONNX file") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise HarnessError(f"{module_name} has no class {cls_name} (model {match.group(0)})")
    try:
        takes_scale = "scale" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        takes_scale = False
    try:
        net = cls(scale=scale) if takes_scale else cls()
    except Exception as exc:  # noqa: BLE001 - user code: one line naming the class, not a traceback
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise HarnessError(f"{match.group(0)}: constructing {cls_name} raised {type(exc).__name__}: {first}; fix "
                           f"the class or leave it out") from None
    space = getattr(net, "input_space", getattr(cls, "input_space", "y"))
    if space not in ("y", "rgb"):
        raise HarnessError(f"{match.group(0)}: input_space must be 'y' or 'rgb', not {space!r}")
    return TorchUpscaler(net, id=match.group(0), family="custom", scale=scale, input_space=space, weights="init")


def load_weights(model_id: str, choice: str, model: TorchUpscaler):
    from .base import load_state_strict, read_state_dict

    if choice == "official":
        raise HarnessError(f"{model_id} has no official weights; pass --weights FILE (or init)")
    fix = "give a state dict of this class (saved with torch.save(model.state_dict(), FILE))"
    return load_state_strict(model.module, read_state_dict(choice, model_id, fix), choice, model_id, fix)
