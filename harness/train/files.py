"""Small helpers the training modules share: where the trainer keeps its files, atomic text writes,
strict JSON, one-line error text. Nothing here imports torch."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """``$HARNESS_CACHE/train``: the LR/HR pair caches and the default run folders."""
    from ..weights import cache_dir

    return cache_dir() / "train"


def atomic_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def json_safe(obj):
    """Strict JSON has no NaN/inf (an exact reconstruction's PSNR is inf): those become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (at most 300 characters), else its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
