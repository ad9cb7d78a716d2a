import pytest

from harness.results.pareto import dominators, pareto_front


def test_front_on_quality_and_speed():
    q = [30.0, 31.0, 32.0, 30.5, 29.0]
    s = [100.0, 50.0, 10.0, 40.0, 200.0]
    # 3 (30.5 @ 40) is dominated by 1 (31 @ 50)
    assert pareto_front(q, s) == [4, 0, 1, 2]
    assert dominators(3, q, s) == [1]
    assert dominators((30.0, 5.0), q, s) == [0, 1, 2, 3]


def test_ties_and_nans():
    q = [30.0, 30.0, float("nan"), 31.0, None]
    s = [100.0, 100.0, 500.0, float("nan"), 1000.0]
    # identical points do not dominate each other; NaN/None never on the front
    assert pareto_front(q, s) == [0, 1]
    assert dominators(2, q, s) == []


def test_energy_as_third_objective():
    q = [30.0, 30.0, 31.0]
    s = [100.0, 100.0, 50.0]
    e = [5.0, 2.0, 9.0]
    assert pareto_front(q, s, e) == [1, 2]  # 0 is dominated by 1 (same q and s, less energy)
    assert pareto_front(q, s, [5.0, None, 9.0]) == [0, 2]
    with pytest.raises(ValueError):
        pareto_front(q, s[:2])


def test_single_and_empty():
    assert pareto_front([], []) == []
    assert pareto_front([1.0], [1.0]) == [0]
