"""The median's interval and the adaptive stop of the timed loop, against published and
hand-computed values."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import harness.runner as runner
from harness.runner import BenchConfig, latency_stats, time_session
from harness.stats import latency_summary, median_ci, median_ci_coverage, min_samples_for, supports_quantile

# Conover, Practical Nonparametric Statistics (3rd ed.), Table A3 / the binomial construction:
# n, 1-based order statistics of the 95 % interval of the median, exact coverage
CONOVER = [(6, 1, 6, 0.969), (9, 2, 8, 0.961), (10, 2, 9, 0.979), (20, 6, 15, 0.959), (100, 40, 61, 0.965)]


@pytest.mark.parametrize("n,lo,hi,coverage", CONOVER)
def test_median_interval_matches_the_binomial_table(n, lo, hi, coverage):
    x = np.random.default_rng(n).permutation(np.arange(1, n + 1)) * 1.5  # order does not matter
    assert median_ci(x) == (lo * 1.5, hi * 1.5)
    assert median_ci_coverage(n) == pytest.approx(coverage, abs=5e-4)


def test_too_few_samples_have_no_interval():
    assert median_ci([1, 2, 3, 4, 5]) is None  # 2 * 0.5**5 = 0.0625 > 0.05: even (min, max) is not 95 %
    s = latency_summary([0.01] * 5)
    assert s["median_ms_ci"] is None and math.isnan(s["ci_halfwidth_pct"])


def test_percentiles_are_reported_only_where_the_sample_supports_them():
    # the upper order statistic of a q-quantile's 95 % interval exists when 1 - q**n >= 0.975:
    # n >= ln(0.025) / ln(q): 35.01 -> 36 for p90, 367.04 -> 368 for p99
    assert min_samples_for(0.90) == math.ceil(math.log(0.025) / math.log(0.90)) == 36
    assert min_samples_for(0.99) == math.ceil(math.log(0.025) / math.log(0.99)) == 368
    assert not supports_quantile(35, 0.90) and supports_quantile(36, 0.90)
    s = latency_summary([0.010 + 0.0001 * i for i in range(70)])  # 70 samples: p90 yes, p99 no
    assert s["p90_ms"] == pytest.approx(np.percentile(np.arange(70) * 0.1 + 10.0, 90))
    assert s["p99_ms"] is None and s["percentiles_note"] == "70 samples: p99 needs 368 for a 95 % interval"


def test_latency_stats_known_values():
    ms = [10.0] * 30 + [20.0] * 10  # median 10 ms; sorted interval (x[13], x[26]) of 40 = 10 and 10
    s = latency_stats([m / 1e3 for m in ms])
    assert s["median_ms"] == pytest.approx(10.0) and s["fhd_per_s"] == pytest.approx(100.0)
    assert s["median_ms_ci"] == pytest.approx([10.0, 10.0]) and s["ci_halfwidth_pct"] == pytest.approx(0.0)
    assert s["p90_ms"] == pytest.approx(20.0) and s["p99_ms"] is None
    assert s["cov"] == pytest.approx(np.std(ms) / np.mean(ms))
    skew = latency_stats([m / 1e3 for m in range(1, 21)])  # 1..20 ms: interval (6, 15), median 10.5
    assert skew["median_ms_ci"] == pytest.approx([6.0, 15.0])
    assert skew["fhd_per_s_ci"] == pytest.approx([1000 / 15.0, 1000 / 6.0])
    assert skew["ci_halfwidth_pct"] == pytest.approx(100 * 4.5 / 10.5)
    assert math.isnan(latency_stats([])["median_ms"])


class _Session:
    def load(self, x):
        pass

    def compute(self):
        pass


def _scripted(monkeypatch, values):
    it = iter(values)
    monkeypatch.setattr(runner, "timed_compute", lambda session: (next(it), None))


def test_the_loop_stops_when_the_interval_is_narrow(monkeypatch):
    _scripted(monkeypatch, itertools.cycle([0.010, 0.0101, 0.0099]))
    cfg = BenchConfig(repeats=100, min_repeats=1, max_time_s=60, ci_target_pct=3.0)
    times, _, passes, stop = time_session(_Session(), [None] * 7, cfg)
    assert stop == "interval" and passes == 1 and len(times) == 7  # 7 samples within +-1 %: one pass is enough


def test_a_noisy_model_runs_until_the_pass_limit_or_the_budget(monkeypatch):
    rng = np.random.default_rng(0)
    _scripted(monkeypatch, iter(rng.uniform(0.005, 0.020, 10_000)))  # +-60 %: the interval stays wide
    times, _, passes, stop = time_session(_Session(), [None] * 7, BenchConfig(repeats=4, max_time_s=60))
    assert stop == "pass limit" and passes == 4 and len(times) == 28
    _scripted(monkeypatch, iter(rng.uniform(0.005, 0.020, 10_000)))
    times, _, passes, stop = time_session(_Session(), [None] * 7, BenchConfig(repeats=1000, max_time_s=0.0))
    assert stop == "time budget" and passes == 1


# A noisy first pass of 7 frames (10, 20, 10, 20, 10, 20, 15 ms), then 15 ms on every frame. The interval of
# the median of n sorted times is (x[j], x[n-1-j]) with the largest j such that P(B <= j) <= 0.025 for
# B ~ Binomial(n, 1/2): n = 14: j = 2 (P(B <= 2) = 106/16384 = 0.006, P(B <= 3) = 470/16384 = 0.029) and
# x[2] = 10 ms: wide; n = 15: j = 3 (P(B <= 3) = 576/32768 = 0.018, P(B <= 4) = 1941/32768 = 0.059) and
# x[3] = x[11] = 15 ms: within +-3 %. Whole passes only: n = 21, j = 5 (P(B <= 5) = 27896/2097152 = 0.013,
# P(B <= 6) = 82160/2097152 = 0.039), x[5] = x[15] = 15 ms.
NOISY_THEN_STEADY = [0.010, 0.020, 0.010, 0.020, 0.010, 0.020, 0.015]


def test_the_loop_stops_at_the_first_frame_whose_interval_is_narrow(monkeypatch):
    _scripted(monkeypatch, itertools.chain(NOISY_THEN_STEADY, itertools.repeat(0.015)))
    cfg = BenchConfig(repeats=100, min_repeats=1, max_time_s=60, ci_target_pct=3.0)
    times, _, passes, stop = time_session(_Session(), [None] * 7, cfg)
    assert stop == "interval" and len(times) == 15 and passes == 3  # two whole passes and one frame of a third


def test_a_frame_dependent_model_stops_at_the_end_of_a_pass(monkeypatch):
    _scripted(monkeypatch, itertools.chain(NOISY_THEN_STEADY, itertools.repeat(0.015)))
    cfg = BenchConfig(repeats=100, min_repeats=1, max_time_s=60, ci_target_pct=3.0)
    times, _, passes, stop = time_session(_Session(), [None] * 7, cfg, whole_passes=True)
    assert stop == "interval" and len(times) == 21 and passes == 3


def test_fixed_iterations_time_exactly_that_many_frames(monkeypatch):
    _scripted(monkeypatch, itertools.repeat(0.01))
    times, _, passes, stop = time_session(_Session(), [None] * 7, BenchConfig(iterations=17, ci_target_pct=3.0))
    assert stop == "iterations" and len(times) == 17 and passes == 3  # 7 + 7 + 3: no adaptive stop


def test_prepared_cuts_are_conovers_order_statistics():
    """The vectorised table gives the same order statistics as Conover's table of the median's 95 % interval
    (n = 10: x(2)..x(9); 20: x(6)..x(15); 100: x(40)..x(61)) and as the one-n path for every n up to 2000."""
    from harness import stats

    one_by_one = [stats._cut(n, 0.95) for n in range(1, 2001)]
    stats._cut.cache_clear()
    stats._CUTS.clear()
    stats.prepare_cuts(2000)
    assert [stats._CUTS[(n, 0.95)] for n in range(1, 2001)] == one_by_one
    assert [stats._CUTS[(n, 0.95)] + 1 for n in (10, 20, 100)] == [2, 6, 40]
    assert stats._CUTS[(5, 0.95)] == -1 and stats._CUTS[(6, 0.95)] == 0
