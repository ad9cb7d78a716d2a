"""The Pareto front of the quality-speed(-energy) trade-off.

A point is on the front when no other point is at least as good on every objective and
strictly better on one. Objectives: quality up, speed up, and energy down where given.
Points with a NaN/None objective are never on the front (an unmeasured figure cannot
dominate or be compared); exact ties are all kept (neither dominates the other).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from ..numeric import is_finite


def pareto_front(quality: Sequence[float], speed: Sequence[float],
                 energy: Optional[Sequence[Optional[float]]] = None) -> List[int]:
    """Indices of the non-dominated points, sorted by speed (fastest first)."""
    n = len(quality)
    if len(speed) != n or (energy is not None and len(energy) != n):
        raise ValueError("quality, speed and energy must have the same length")
    use_energy = energy is not None
    # minimise everything: -quality, -speed, +energy
    points = []
    for i in range(n):
        vals = [quality[i], speed[i]] + ([energy[i]] if use_energy else [])
        if all(is_finite(v) for v in vals):
            points.append((i, (-quality[i], -speed[i]) + ((energy[i],) if use_energy else ())))
    front = []
    for i, p in points:
        dominated = any(all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p))
                        for j, q in points if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: -speed[i])


def dominators(index_or_point, quality: Sequence[float], speed: Sequence[float]) -> List[int]:
    """Indices of the points that dominate a point (given by index, or as (quality, speed))."""
    if isinstance(index_or_point, int):
        q0, s0, skip = quality[index_or_point], speed[index_or_point], index_or_point
    else:
        (q0, s0), skip = index_or_point, None
    if not (is_finite(q0) and is_finite(s0)):
        return []
    out = []
    for j, (q, s) in enumerate(zip(quality, speed)):
        if j == skip or not (is_finite(q) and is_finite(s)):
            continue
        if q >= q0 and s >= s0 and (q > q0 or s > s0):
            out.append(j)
    return out
