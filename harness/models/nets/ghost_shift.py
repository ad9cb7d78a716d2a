"""The arithmetic of GhostSR's ghost channels, torch-free at import (:mod:`harness.models.ghost`
describes the method): the nine shift directions, the shift itself, how many channels are ghosts,
and the defaults of a ghost layer. Shared by the transform (:mod:`harness.models.ghost`) and the
layer (:class:`harness.models.nets.ghost.GhostConv2d`).
"""
from __future__ import annotations

from typing import Tuple

RATIO = 0.5
TAU_END = 0.05  # the Gumbel-softmax temperature reached at the last fine-tune step
CENTER = 4  # the direction index of "no shift"


def offset(direction: int) -> Tuple[int, int]:
    """``(dy, dx)`` of direction ``k`` in 0..8: ``ghost[y, x] = source[y + dy, x + dx]``."""
    return direction // 3 - 1, direction % 3 - 1


def shift(x, direction: int):
    """``x`` (N, C, H, W) shifted by :func:`offset` with zeros coming in: one Pad and one Slice.

    Only the side the content moves away from is padded, so the slices are static (no shape
    arithmetic in the exported graph, which stays valid at every input size).
    """
    import torch.nn.functional as F

    dy, dx = offset(direction)
    if dy == 0 and dx == 0:
        return x
    x = F.pad(x, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)))
    rows = slice(1, None) if dy > 0 else slice(0, -1) if dy < 0 else slice(None)
    cols = slice(1, None) if dx > 0 else slice(0, -1) if dx < 0 else slice(None)
    return x[:, :, rows, cols]


def ghost_channels(out_channels: int, ratio: float) -> int:
    """How many of ``out_channels`` a layer with ``ratio`` makes by shifting: floor(ratio * out)."""
    return int(out_channels * ratio + 1e-9)
