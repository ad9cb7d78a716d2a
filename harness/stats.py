"""Statistics of timed samples: the median with its confidence interval, and which percentiles a
sample supports.

The interval of the median is the distribution-free order-statistic interval: for ``n`` sorted
samples, ``(x[j], x[n-1-j])`` with the largest ``j`` for which a Binomial(n, 1/2) count falls
below ``j`` with probability at most ``alpha/2`` (Conover, *Practical Nonparametric Statistics*,
sect. 3.2). It assumes nothing about the shape of the distribution (latencies are skewed), only
that the samples are exchangeable: a host whose speed drifts during a measurement breaks that,
which is what interleaved rounds (``--rounds``) are for. It needs at least 6 samples at 95 %.

A percentile ``q`` is *supported* when the same construction gives it a two-sided interval inside
the sample: both order statistics of its interval exist (at 95 %: p90 needs 36 samples, p99 368).
An unsupported percentile is not reported as a number.
"""
from __future__ import annotations

import functools
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

CONFIDENCE = 0.95


def _binom():
    from scipy.stats import binom

    return binom


_CUTS: Dict[Tuple[int, float], int] = {}  # filled by prepare_cuts: a lookup instead of a SciPy call in the loop


def prepare_cuts(n_max: int, confidence: float = CONFIDENCE) -> None:
    """Compute :func:`_cut` for every n up to ``n_max`` in one vectorised SciPy call (and import SciPy),
    so that the timed loop, which asks after every frame, pays neither the import (about a second, once)
    nor ~0.1 ms a new n inside the timed window (where a power meter integrates)."""
    if (int(n_max), confidence) in _CUTS:  # filled up to n_max already (each call fills 1..n_max)
        return
    alpha = 1.0 - confidence
    n = np.arange(1, int(n_max) + 1)
    binom = _binom()
    j = binom.ppf(alpha / 2.0, n, 0.5).astype(np.int64)
    j -= (binom.cdf(j, n, 0.5) > alpha / 2.0)
    _CUTS.update({(int(k), confidence): int(v) for k, v in zip(n, j)})


@functools.lru_cache(maxsize=4096)  # the timed loop asks after every frame; SciPy takes ~0.1 ms a call
def _cut(n: int, confidence: float) -> int:
    """Samples cut from each end for the median's interval: the largest j with P(B <= j - 1) <= alpha/2,
    B ~ Binomial(n, 1/2), as a 0-based index (-1: no interval at this n)."""
    known = _CUTS.get((n, confidence))
    if known is not None:
        return known
    alpha = 1.0 - confidence
    j = int(_binom().ppf(alpha / 2.0, n, 0.5))
    if _binom().cdf(j, n, 0.5) > alpha / 2.0:
        j -= 1
    return j  # P(B <= j) <= alpha/2: (x[j], x[n-1-j]) covers the median with >= confidence


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Optional[Tuple[float, float]]:
    """The distribution-free ``confidence`` interval of the median of ``values``; None when the
    sample is too small for one (fewer than 6 values at 95 %)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    j = _cut(n, confidence) if n else -1
    if j < 0:
        return None
    return float(x[j]), float(x[n - 1 - j])


def median_ci_coverage(n: int, confidence: float = CONFIDENCE) -> Optional[float]:
    """The exact coverage of :func:`median_ci`'s interval for ``n`` samples (at least ``confidence``)."""
    j = _cut(n, confidence)
    if j < 0:
        return None
    return float(1.0 - 2.0 * _binom().cdf(j, n, 0.5))


def supports_quantile(n: int, q: float, confidence: float = CONFIDENCE) -> bool:
    """Whether ``n`` samples give the ``q``-quantile a two-sided distribution-free ``confidence``
    interval inside the sample (both order statistics exist)."""
    if n <= 0:
        return False
    alpha = 1.0 - confidence
    binom = _binom()
    upper = int(binom.ppf(1.0 - alpha / 2.0, n, q)) + 1  # 1-based index of the upper order statistic
    lower = int(binom.ppf(alpha / 2.0, n, q))            # 1-based index of the lower one
    return lower >= 1 and upper <= n


def min_samples_for(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest samples that support the ``q``-quantile (see :func:`supports_quantile`)."""
    n = 1
    while not supports_quantile(n, q, confidence):
        n = n * 2 if n < 64 else n + max(1, n // 64)
    lo = max(1, n // 2)
    while lo < n:  # the smallest n in (n/2, n] that supports q (support is monotone in n here)
        mid = (lo + n) // 2
        if supports_quantile(mid, q, confidence):
            n = mid
        else:
            lo = mid + 1
    return n


def latency_summary(seconds: Sequence[float], confidence: float = CONFIDENCE) -> Dict[str, object]:
    """Per-iteration latencies (s) -> median/mean/min ms with the median's interval, FHD/s with its
    interval (1000 / the latency bounds), the interval's half-width in % of the median, the CoV,
    and p90/p99 where the sample supports them (else None, with ``percentiles_note``)."""
    nan = float("nan")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    n = int(ms.size)
    out: Dict[str, object] = {"n": n}
    if n == 0:
        out.update(median_ms=nan, p90_ms=nan, p99_ms=nan, mean_ms=nan, min_ms=nan, cov=nan, fhd_per_s=nan,
                   median_ms_ci=None, fhd_per_s_ci=None, ci_halfwidth_pct=nan)
        return out
    median = float(np.median(ms))
    mean = float(ms.mean())
    out.update(median_ms=median, mean_ms=mean, min_ms=float(ms.min()),
               cov=float(ms.std() / mean) if mean > 0 else nan,
               fhd_per_s=1000.0 / median if median > 0 else nan)
    ci = median_ci(ms, confidence)
    if ci is not None and median > 0:
        lo, hi = ci
        out["median_ms_ci"] = [lo, hi]
        out["fhd_per_s_ci"] = [1000.0 / hi if hi > 0 else nan, 1000.0 / lo if lo > 0 else nan]
        out["ci_halfwidth_pct"] = 100.0 * (hi - lo) / 2.0 / median
    else:
        out.update(median_ms_ci=None, fhd_per_s_ci=None, ci_halfwidth_pct=nan)
    unsupported = []
    for q, key in ((0.90, "p90_ms"), (0.99, "p99_ms")):
        if supports_quantile(n, q, confidence):
            out[key] = float(np.percentile(ms, q * 100))
        else:
            out[key] = None
            unsupported.append(f"{key[:3]} needs {min_samples_for(q, confidence)}")
    if unsupported:
        out["percentiles_note"] = f"{n} samples: " + ", ".join(unsupported) + " for a 95 % interval"
    return out


def pooled_halfwidth_pct(values: Sequence[float]) -> float:
    """:func:`latency_summary`'s interval half-width (% of the median) of raw values, NaN when none."""
    x = np.asarray(values, dtype=np.float64)
    ci = median_ci(x)
    med = float(np.median(x)) if x.size else float("nan")
    if ci is None or not med > 0 or not math.isfinite(med):
        return float("nan")
    return 100.0 * (ci[1] - ci[0]) / 2.0 / med
