"""Statistics over seeds and episodes, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsd.metrics.stats import (
    aggregate,
    as_number,
    delta_pct,
    excludes_zero,
    finite,
    hierarchical_bootstrap,
    mean_std,
    outcome_rates,
    paired_differences,
    paired_effect,
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


# ---- paired comparisons


def _two_level(rng, seeds: int, units: int, effect: float, tau: float, sigma: float):
    """``(arm, base)`` ``{seed: {unit: value}}`` of a two-level model: per seed a shift
    ``effect + N(0, tau)``, per unit a shared difficulty and N(0, sigma) noise per arm."""
    arm, base = {}, {}
    for s in range(seeds):
        shift = effect + rng.normal(0, tau)
        difficulty = rng.normal(0, 5, units)  # cancels in the pairing
        base[s] = dict(enumerate(difficulty + rng.normal(0, sigma, units)))
        arm[s] = dict(enumerate(difficulty + shift + rng.normal(0, sigma, units)))
    return arm, base


def test_paired_differences_keep_only_what_both_arms_have():
    arm = {0: {"a": 1.0, "b": 2.0, "c": float("nan")}, 1: {"a": 5.0}, 2: {"x": 1.0}}
    base = {0: {"a": 0.5, "b": 1.0, "c": 3.0, "d": 4.0}, 1: {"z": 1.0}, 3: {"a": 1.0}}
    pairs = paired_differences(arm, base)
    assert list(pairs) == [0]  # seed 1 shares no unit, seeds 2 and 3 are in one arm only
    a, b = pairs[0]
    assert a.tolist() == [1.0, 2.0] and b.tolist() == [0.5, 1.0]


def test_a_constant_difference_has_a_zero_width_interval_at_that_value():
    base = {s: {u: float(u * s) for u in range(10)} for s in range(4)}
    arm = {s: {u: v + 0.25 for u, v in units.items()} for s, units in base.items()}
    e = paired_effect(arm, base, n_boot=500)
    assert e["diff"] == pytest.approx(0.25)
    assert e["ci95"] == pytest.approx([0.25, 0.25])
    assert math.isnan(e["d_z"])  # no spread: no standardised effect
    assert e["seeds"] == 4 and e["units"] == 40 and e["p_boot"] == 0.0
    assert e["base_mean"] == pytest.approx(6.75)
    assert e["rel_pct"] == pytest.approx(100 * 0.25 / 6.75)
    assert excludes_zero(e["ci95"])


def test_symmetric_differences_give_an_interval_around_zero():
    # every seed has differences -1 and +1 in equal number: the mean difference is 0
    base = {s: {u: 0.0 for u in range(20)} for s in range(5)}
    arm = {s: {u: (1.0 if u % 2 else -1.0) for u in range(20)} for s in range(5)}
    e = paired_effect(arm, base, n_boot=2000, seed=3)
    lo, hi = e["ci95"]
    assert e["diff"] == 0.0 and lo < 0 < hi
    assert -lo == pytest.approx(hi, rel=0.2)
    assert not excludes_zero(e["ci95"]) and e["p_boot"] > 0.5


def test_the_bootstrap_is_seeded():
    groups = [np.arange(5.0), np.arange(7.0) ** 2]
    assert np.array_equal(
        hierarchical_bootstrap(groups, 50, 1), hierarchical_bootstrap(groups, 50, 1)
    )
    assert not np.array_equal(
        hierarchical_bootstrap(groups, 50, 1), hierarchical_bootstrap(groups, 50, 2)
    )


def test_nothing_to_pair_gives_nans():
    e = paired_effect({0: {"a": 1.0}}, {1: {"a": 1.0}})
    assert math.isnan(e["diff"]) and e["seeds"] == 0 and not excludes_zero(e["ci95"])


def test_hierarchical_bootstrap_covers_the_true_effect_about_95_percent_of_the_time():
    # seed-to-seed spread dominates (tau > sigma / sqrt(units)): a pooled unit-level interval
    # would be far too narrow; the two-level one should cover the truth ~95 % of the time
    rng = np.random.default_rng(0)
    effect, trials, covered, pooled_covered = 1.0, 200, 0, 0
    for k in range(trials):
        arm, base = _two_level(rng, seeds=10, units=20, effect=effect, tau=1.0, sigma=1.0)
        lo, hi = paired_effect(arm, base, n_boot=300, seed=k)["ci95"]
        covered += lo <= effect <= hi
        d = np.concatenate([np.array(list(arm[s].values())) - list(base[s].values()) for s in arm])
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        pooled_covered += abs(d.mean() - effect) <= half
    assert 0.88 <= covered / trials <= 0.99
    assert pooled_covered / trials < 0.8  # what ignoring the clustering would give
