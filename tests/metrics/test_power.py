"""Power of the paired two-level comparison: the formula against simulated rejection rates,
the variance components on hand cases and simulated data, the seeds needed."""

import math

import numpy as np
import pytest
from scipy.stats import ttest_1samp

from rsd.metrics.power import (
    VarianceComponents,
    components_from_rates,
    paired_power,
    power_table,
    seeds_needed,
    variance_components,
)


def _rejection_rate(draw_seed_means, reps: int, seed: int) -> float:
    """Share of ``reps`` simulated experiments (``draw_seed_means(rng, reps)``: (reps, n)
    seeds' mean differences) whose t-test over seeds rejects at 0.05."""
    d = draw_seed_means(np.random.default_rng(seed), reps)
    return float((ttest_1samp(d, 0.0, axis=1).pvalue < 0.05).mean())


@pytest.mark.parametrize(
    ("effect", "between", "within", "n", "m"),
    [(-10.0, 16.0, 4000.0, 8, 50), (3.0, 4.0, 100.0, 4, 20), (-5.0, 30.0, 2000.0, 15, 100)],
)
def test_power_matches_simulated_normal_two_level_model(effect, between, within, n, m):
    """Seeds' effects ~ N(0, between); episodes' paired differences ~ N(0, within)."""

    def draw(rng, reps):
        seed_effect = effect + rng.normal(0, math.sqrt(between), (reps, n))
        episodes = rng.normal(0, math.sqrt(within), (reps, n, m))
        return seed_effect + episodes.mean(axis=2)

    analytic = paired_power(effect, VarianceComponents(between, within), n, m)
    assert analytic == pytest.approx(_rejection_rate(draw, 4000, 0), abs=0.03)


def test_power_matches_simulated_bernoulli_collisions():
    """0/100 collision indicators: the baseline at 34 %, the arm at 24 %, each arm's rate
    varying over training seeds with std 5 points, outcomes independent given the rates; the
    components come from the figures a report would quote (:func:`components_from_rates`)."""
    n, m, tau, m_obs = 10, 100, 5.0, 40

    def draw(rng, reps):
        pb = np.clip(34 + rng.normal(0, tau, (reps, n)), 0, 100) / 100
        pa = np.clip(24 + rng.normal(0, tau, (reps, n)), 0, 100) / 100
        a = rng.binomial(m, pa) / m  # the share of m independent episodes that collide
        b = rng.binomial(m, pb) / m
        return 100.0 * (a - b)

    seed_std = math.sqrt(tau**2 + 34 * 66 / m_obs)  # what 40 episodes per seed would show
    var = components_from_rates(34, 24, seed_std, m_obs)
    assert var.between == pytest.approx(2 * tau**2)
    analytic = paired_power(-10.0, var, n, m)
    assert analytic == pytest.approx(_rejection_rate(draw, 3000, 1), abs=0.04)


def test_power_limits():
    var = VarianceComponents(between=10.0, within=100.0)
    assert paired_power(0.0, var, 10, 40) == pytest.approx(0.05, abs=1e-9)  # size = alpha
    assert paired_power(5.0, VarianceComponents(0.0, 0.0), 3, 1) == 1.0
    assert math.isnan(paired_power(5.0, var, 1, 40))
    assert paired_power(5.0, var, 10, 40) == paired_power(-5.0, var, 10, 40)
    # more seeds or more episodes never hurt; episodes cannot beat the seeds' own spread
    grid = power_table(3.0, var, [3, 5, 10, 20], [10, 40, 160])
    assert (np.diff(grid, axis=0) > 0).all() and (np.diff(grid, axis=1) > 0).all()
    assert paired_power(3.0, var, 5, 10**9) == pytest.approx(
        paired_power(3.0, VarianceComponents(10.0, 0.0), 5, 1), abs=1e-6
    )
    # large effects stay finite (scipy's noncentral t is NaN far in its tails)
    assert paired_power(10.0, VarianceComponents(16.0, 4000.0), 30, 400) == pytest.approx(1.0)


def test_seeds_needed_is_the_first_count_with_enough_power():
    var = components_from_rates(34, 24, 8.0, 40)
    n = seeds_needed(-10.0, var, 100)
    assert n is not None and n > 2
    assert paired_power(-10.0, var, n, 100) >= 0.8 > paired_power(-10.0, var, n - 1, 100)
    # a huge seed-to-seed spread: no affordable count of seeds is enough
    assert seeds_needed(-1.0, VarianceComponents(1e4, 4000.0), 100, max_seeds=50) is None


def test_components_from_rates_by_hand():
    var = components_from_rates(34, 24, 8.0, 40)
    # tau^2 = 64 - 34 * 66 / 40 = 7.9 per arm; within = 24 * 76 + 34 * 66
    assert var.between == pytest.approx(2 * 7.9)
    assert var.within == pytest.approx(1824 + 2244)
    paired = components_from_rates(34, 24, 8.0, 40, correlation=0.5)
    assert paired.within == pytest.approx(4068 - math.sqrt(1824 * 2244))
    assert components_from_rates(34, 24, 1.0, 40).between == 0.0  # all binomial noise


def test_variance_components_by_hand():
    """Seed 0: differences 1, 3 (mean 2); seed 1: 5, 7 (mean 6). Within: (2 + 2) / (4 - 2) =
    2; between: var(2, 6) = 8 less 2 x mean(1/2, 1/2) = 7."""
    base = {0: {"e1": 0.0, "e2": 0.0}, 1: {"e1": 10.0, "e2": 10.0}}
    arm = {0: {"e1": 1.0, "e2": 3.0}, 1: {"e1": 15.0, "e2": 17.0, "only_arm": 99.0}}
    est = variance_components(arm, base)
    assert est["components"] == VarianceComponents(between=7.0, within=2.0)
    assert est["diff"] == 4.0 and est["base_mean"] == 5.0
    assert est["seeds"] == 2 and est["episodes"] == 2.0
    one = variance_components({0: arm[0]}, {0: base[0]})
    assert math.isnan(one["components"].between) and one["components"].within == 2.0


def test_variance_components_recover_simulated_ones():
    rng = np.random.default_rng(3)
    n, m, between, within = 400, 60, 25.0, 900.0
    seed_effect = rng.normal(-4, 5.0, n)
    arm, base = {}, {}
    for s in range(n):
        b = rng.normal(30, 20, m)
        d = seed_effect[s] + rng.normal(0, 30.0, m)
        base[s] = {f"u{i}": float(v) for i, v in enumerate(b)}
        arm[s] = {f"u{i}": float(v) for i, v in enumerate(b + d)}
    est = variance_components(arm, base)["components"]
    assert est.within == pytest.approx(within, rel=0.05)
    assert est.between == pytest.approx(between, rel=0.3)
