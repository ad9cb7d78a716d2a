"""Training checkpoints: atomic ``torch.save`` (a killed run never leaves a half file), reading
``last.pt`` back with one-line errors, the finite-weights check that guards every save, and the
state digest that records a fine-tune's exact start."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict

from ..errors import HarnessError

CHECKPOINT_FORMAT = 1


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same folder, then an atomic rename."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: Path) -> Dict:
    """A ``last.pt`` of this harness, on the CPU; one-line errors for unreadable or foreign files."""
    import torch

    try:
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
        except TypeError:  # torch < 1.13 has no weights_only
            ckpt = torch.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same user error
        raise HarnessError(f"cannot read checkpoint {path} ({type(exc).__name__}); delete it and train "
                           f"again with --force") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HarnessError(f"{path} is not a training checkpoint of this harness; delete it or train again with --force")
    return ckpt


def all_finite(module, optimizer=None) -> bool:
    """Whether every floating-point tensor of the module's state (and the optimizer's) is finite."""
    import torch

    tensors = list(module.state_dict().values())
    if optimizer is not None:
        tensors += [v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def state_sha256(module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes, bytes): the start of a fine-tune, exactly."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}\t{t.dtype}\t{tuple(t.shape)}\n".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()
