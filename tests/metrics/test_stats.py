"""Statistics over seeds and episodes, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from rsd.metrics.stats import (
    aggregate,
    as_number,
    delta_pct,
    finite,
    mean_std,
    outcome_rates,
    rate_with_interval,
    ratio,
    retention,
    wilson_interval,
)


def _wilson_by_hand(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The textbook formula: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_as_number_and_finite():
    assert as_number(2) == 2.0 and as_number(1.5) == 1.5
    assert all(math.isnan(as_number(x)) for x in (None, True, "3", [1]))
    assert finite([1, None, math.nan, math.inf, 2.5, False]) == [1.0, 2.5]


def test_mean_std_and_delta():
    mean, std, n = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and n == 3
    # sample std: deviations -4/3, -1/3, 5/3 -> (16 + 1 + 25) / 9 / 2 = 7/3
    assert std == pytest.approx(math.sqrt(7 / 3))
    mean, std, n = mean_std([3.0])
    assert mean == 3.0 and math.isnan(std) and n == 1
    mean, std, n = mean_std([math.nan, 2.0, None, 4.0])  # NaN / None values are left out
    assert mean == 3.0 and std == pytest.approx(math.sqrt(2)) and n == 2
    mean, std, n = mean_std([])
    assert math.isnan(mean) and math.isnan(std) and n == 0
    assert delta_pct(1.5, 2.0) == pytest.approx(-25.0)
    assert delta_pct(-1.0, -2.0) == pytest.approx(50.0)  # relative to |base|
    assert math.isnan(delta_pct(1.0, 0.0)) and math.isnan(delta_pct(math.nan, 1.0))


def test_ratio_and_retention():
    assert ratio(3.0, 4.0) == 0.75
    assert all(math.isnan(ratio(a, b)) for a, b in [(1.0, 0.0), (None, 1.0), (1.0, math.nan)])
    # an error (lower is better) 2 m on the training rig, 4 m unseen: half kept
    assert retention(2.0, 4.0, lower_is_better=True) == 0.5
    # a score 0.4 -> 0.3: three quarters kept
    assert retention(0.4, 0.3, lower_is_better=False) == pytest.approx(0.75)
    assert math.isnan(retention(None, 1.0, lower_is_better=True))


def test_wilson_interval_hand_values():
    # k=0, n=10: upper bound z^2 / (n + z^2) = 3.8416 / 13.8416
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(3.8416 / 13.8416, rel=1e-4)
    lo, hi = wilson_interval(5, 10)  # symmetric about 1/2
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


@pytest.mark.parametrize("k,n", [(0, 1), (1, 2), (3, 4), (0, 3), (12, 12), (4, 26), (7, 40)])
def test_wilson_interval_is_the_z_1_96_formula(k, n):
    """scipy's interval at the level of z = 1.96 is the hand formula to rounding."""
    want = _wilson_by_hand(k, n)
    got = wilson_interval(k, n)
    assert got == pytest.approx((max(want[0], 0.0), min(want[1], 1.0)), abs=1e-12)


def test_rates_with_intervals():
    r = rate_with_interval(3, 4)
    assert r["count"] == 3 and r["rate_pct"] == 75.0
    lo, hi = r["ci95_pct"]
    assert lo == pytest.approx(100 * _wilson_by_hand(3, 4)[0]) and lo < 75.0 < hi
    empty = rate_with_interval(0, 0)
    assert math.isnan(empty["rate_pct"]) and all(math.isnan(x) for x in empty["ci95_pct"])
    row = outcome_rates(["success", "offroad", "success", "success"], ("success", "offroad"))
    assert row["episodes"] == 4
    assert row["success"]["count"] == 3 and row["offroad"]["rate_pct"] == 25.0


def test_aggregate_over_seeds_with_deltas():
    per_run = {
        "baseline": {0: {"g": {"ade": 2.0}}, 1: {"g": {"ade": 4.0}}},
        "rsd": {0: {"g": {"ade": 1.0, "extra": None}}, 1: {"g": {"ade": 2.0}}},
    }
    agg = aggregate(per_run, "baseline")
    base, rsd = agg["g"]["ade"]["baseline"], agg["g"]["ade"]["rsd"]
    assert base["values"] == {"0": 2.0, "1": 4.0}
    assert base["mean"] == 3.0 and base["std"] == pytest.approx(math.sqrt(2))
    assert base["delta_pct"] == 0.0 and rsd["mean"] == 1.5 and rsd["delta_pct"] == -50.0
    extra = agg["g"]["extra"]["rsd"]  # missing value -> NaN; no baseline -> no delta
    assert math.isnan(extra["mean"]) and math.isnan(extra["delta_pct"])
