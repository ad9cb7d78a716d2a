"""Small helpers the training modules share: where the trainer keeps its files and atomic text writes
(strict JSON is :func:`harness.numeric.json_safe`, one-line error text
:func:`harness.errors.first_line`). Nothing here imports torch."""
from __future__ import annotations

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

