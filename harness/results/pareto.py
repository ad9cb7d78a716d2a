"""The Pareto front of the quality-speed(-energy) trade-off.

A point is on the front when no other point is at least as good on every objective and
strictly better on one. Objectives: quality up, speed up, and energy down where given.
Points with a NaN/None objective are never on the front (an unmeasured figure cannot
dominate or be compared); exact ties are all kept (neither dominates the other).

:func:`front_with_ties` is the front the tables and figures use: measured speeds are noisy, so a
speed difference within the intervals, or a PSNR difference under 0.01 dB, never decides (see its
docstring); models equal on both stay on the front, marked as statistically tied.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

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


QUALITY_TIE_DB = 0.01  # PSNR differences below this are noise-level (a tie), never a reason to drop a model
_EPS = 1e-9  # float slack: 30.51 - 30.50 counts as 0.01 dB


def speed_interval(low, high, i: int) -> Optional[Tuple[float, float]]:
    """Point ``i``'s speed interval (low, high), or None where it is absent or not an interval."""
    if low is None or high is None:
        return None
    lo, hi = low[i], high[i]
    return (float(lo), float(hi)) if is_finite(lo) and is_finite(hi) and lo <= hi else None


def compare_speed(si: float, sj: float, iv_i: Optional[Tuple[float, float]],
                  iv_j: Optional[Tuple[float, float]]) -> int:
    """+1 when j is faster than i, -1 when slower, 0 when they cannot be told apart: with both
    intervals, faster means the intervals do not overlap; without, the medians decide (old results)."""
    if iv_i is not None and iv_j is not None:
        return 1 if iv_j[0] > iv_i[1] else -1 if iv_i[0] > iv_j[1] else 0
    return (sj > si) - (sj < si)


def compare_quality(qi: float, qj: float, tie_db: float) -> int:
    """+1 when j's PSNR is higher than i's by at least ``tie_db`` dB, -1 when lower, 0 within it
    (``tie_db`` 0: any difference counts)."""
    if tie_db <= 0:
        return (qj > qi) - (qj < qi)
    return 1 if qj - qi >= tie_db - _EPS else -1 if qi - qj >= tie_db - _EPS else 0


def front_with_ties(quality: Sequence[float], speed: Sequence[float],
                    low: Optional[Sequence[Optional[float]]] = None, high: Optional[Sequence[Optional[float]]] = None,
                    tie_db: float = QUALITY_TIE_DB) -> Tuple[List[int], Dict[int, List[int]]]:
    """The quality-speed Pareto front where a difference within the noise never decides.

    The rule, for two points with speed intervals (``low``/``high``, e.g. the 95 % interval of
    FHD/s): speeds whose intervals overlap count as equal, and PSNRs within ``tie_db`` dB count as
    equal. j dominates i when j is at least as good on both and better on one in that sense. So a
    model that a faster-by-noise rival used to drop stays when its PSNR is clearly higher, and is
    dropped when the rival's PSNR is clearly higher however their medians fall: the decision no
    longer hinges on which run was luckier. Two points equal on both are **statistically tied**:
    both stay on the front, each naming the other. Where either point lacks an interval (older
    results), the usual strict domination on the medians decides. Points with a NaN/None quality
    or speed are never on the front.

    Returns ``(front, ties)``: the front's indices sorted by speed (fastest first), and for each
    front member tied with other front members, their indices (``{}`` when none is)."""
    n = len(quality)
    if len(speed) != n or (low is not None and len(low) != n) or (high is not None and len(high) != n):
        raise ValueError("quality, speed, low and high must have the same length")
    valid = [i for i in range(n) if is_finite(quality[i]) and is_finite(speed[i])]
    intervals = {i: speed_interval(low, high, i) for i in valid}

    def relation(i: int, j: int) -> Tuple[int, int]:
        both = intervals[i] is not None and intervals[j] is not None
        return (compare_speed(speed[i], speed[j], intervals[i], intervals[j]),
                compare_quality(quality[i], quality[j], tie_db if both else 0.0))

    front = []
    for i in valid:
        dominated = False
        for j in valid:
            if j != i:
                cs, cq = relation(i, j)
                if cs >= 0 and cq >= 0 and (cs > 0 or cq > 0):
                    dominated = True
                    break
        if not dominated:
            front.append(i)
    ties: Dict[int, List[int]] = {}
    for i in front:
        tied = [j for j in front if j != i and intervals[i] is not None and intervals[j] is not None
                and relation(i, j) == (0, 0)]
        if tied:
            ties[i] = tied
    return sorted(front, key=lambda i: -speed[i]), ties
