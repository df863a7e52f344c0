"""Statistical power of a paired arm-vs-arm comparison over training seeds and episodes.

The two-level model of :func:`rsd.metrics.stats.paired_effect`'s data: training seed ``s`` of
both arms is driven on the same ``m`` scenario episodes; the paired difference of episode
``i`` is ``D_si = a_si - b_si`` (e.g. collision indicators in 0/100 points). Seed ``s``'s mean
difference ``d_s = mean_i D_si`` then has

    Var(d_s) = sigma_b^2 + sigma_w^2 / m

with ``sigma_b^2`` the **between-seed** variance of the seeds' true mean differences (two
independently trained models per seed: both arms' run-to-run spread) and ``sigma_w^2`` the
**within-seed** variance of one episode's paired difference. The test is a two-sided one-sample
t-test of ``d_1 .. d_n`` against 0 at level ``alpha``; with ``d_s`` normal its power is exact:

    power = P(|T| > t_{1 - alpha/2, n - 1}),  T ~ noncentral t(n - 1, delta / sqrt(Var(d_s) / n))

(the normal approximation of a mean of ``m`` 0/1 episodes is the only approximation; the
tests check the formula against simulated rejection rates, Bernoulli episodes included).

Pure functions on plain numbers and arrays; NaN where a value cannot be computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import nct
from scipy.stats import t as student_t

from rsd.metrics.stats import paired_differences

MAX_SEEDS = 1000
"""The largest number of training seeds :func:`seeds_needed` searches."""


@dataclass(frozen=True)
class VarianceComponents:
    """Variance components of paired differences (squared units of the metric)."""

    between: float
    """``sigma_b^2``: variance over training seeds of a seed's true mean difference."""
    within: float
    """``sigma_w^2``: variance of one episode's paired difference within a seed."""

    def seed_mean_var(self, episodes: int) -> float:
        """``Var(d_s)`` of a seed's mean difference over ``episodes`` paired episodes."""
        return self.between + self.within / episodes


def paired_power(
    effect: float, var: VarianceComponents, seeds: int, episodes: int, alpha: float = 0.05
) -> float:
    """Power (0-1) of the two-sided t-test over ``seeds`` training seeds (each with
    ``episodes`` paired episodes) to detect a true mean difference ``effect`` (the metric's
    units; its sign does not matter) at level ``alpha``. NaN for fewer than 2 seeds or
    episodes < 1; ``alpha`` if ``effect`` is 0; 1 if the seeds' means do not vary at all."""
    if seeds < 2 or episodes < 1 or not 0 < alpha < 1:
        return math.nan
    v = var.seed_mean_var(episodes)
    if not math.isfinite(v) or not math.isfinite(effect) or v < 0:
        return math.nan
    if v == 0:
        return 1.0 if effect != 0 else alpha
    df = seeds - 1
    ncp = abs(effect) / math.sqrt(v / seeds)
    crit = float(student_t.ppf(1 - alpha / 2, df))
    upper, lower = float(nct.sf(crit, df, ncp)), float(nct.cdf(-crit, df, ncp))
    # scipy's noncentral t gives NaN far in a tail at large ncp: the wrong-sign tail is then
    # below P(T < crit), itself ~0, and the right one is 1 - P(T < crit)
    if not math.isfinite(lower):
        lower = 0.0
    if not math.isfinite(upper):
        upper = 1.0 - float(nct.cdf(crit, df, ncp))
    return min(1.0, upper + lower)


def seeds_needed(
    effect: float,
    var: VarianceComponents,
    episodes: int,
    power: float = 0.8,
    alpha: float = 0.05,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """The fewest training seeds (>= 2) whose test reaches ``power`` with ``episodes`` paired
    episodes per seed; None if ``max_seeds`` do not (power grows with the seeds, so a
    bisection finds it)."""
    if not paired_power(effect, var, max_seeds, episodes, alpha) >= power:
        return None
    lo, hi = 1, max_seeds  # power(lo) < target (by convention for 1 seed), power(hi) >= target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if paired_power(effect, var, mid, episodes, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def power_table(
    effect: float,
    var: VarianceComponents,
    seeds: Sequence[int],
    episodes: Sequence[int],
    alpha: float = 0.05,
) -> np.ndarray:
    """(len(seeds), len(episodes)) powers of :func:`paired_power` on the grid."""
    return np.array([[paired_power(effect, var, n, m, alpha) for m in episodes] for n in seeds])


def variance_components(
    arm: Mapping[Any, Mapping[Any, Any]], base: Mapping[Any, Mapping[Any, Any]]
) -> dict[str, Any]:
    """Estimated components of paired data (``{training seed: {unit: value}}`` per arm,
    paired as :func:`~rsd.metrics.stats.paired_differences`), by the method of moments of the
    one-way random-effects model: ``within`` the pooled within-seed variance of the unit
    differences, ``between`` the variance of the seeds' mean differences (ddof 1) less
    ``within`` x the mean of ``1 / m_s`` (clipped at 0). Returns ``{"components":
    VarianceComponents, "diff", "base_mean", "seeds", "episodes" (mean units per seed)}``;
    ``between`` is NaN with one seed, ``within`` NaN without two units in any seed."""
    pairs = paired_differences(arm, base)
    diffs = [a - b for a, b in pairs.values()]
    n = len(diffs)
    units = np.array([len(d) for d in diffs], dtype=float)
    dof = float(units.sum()) - n
    ss = sum(float(((d - d.mean()) ** 2).sum()) for d in diffs)
    within = ss / dof if dof > 0 else math.nan
    means = np.array([d.mean() for d in diffs])
    between = math.nan
    if n >= 2 and math.isfinite(within):
        between = max(0.0, float(means.var(ddof=1)) - within * float(np.mean(1.0 / units)))
    base_mean = float(np.mean([b.mean() for _, b in pairs.values()])) if n else math.nan
    return {
        "components": VarianceComponents(between, within),
        "diff": float(means.mean()) if n else math.nan,
        "base_mean": base_mean,
        "seeds": n,
        "episodes": float(units.mean()) if n else math.nan,
    }


def components_from_rates(
    base_rate: float,
    arm_rate: float,
    seed_std: float,
    measured_episodes: int,
    correlation: float = 0.0,
) -> VarianceComponents:
    """Components for a 0/100 indicator (e.g. collisions, in points) from the figures a
    report quotes: each arm's rate (``base_rate``, ``arm_rate``, points), the seed-to-seed std
    of one arm's observed rate (``seed_std``, points) measured over ``measured_episodes``
    episodes per seed, and the correlation of the two arms' outcomes on the same episode
    (``correlation``; 0 ignores the pairing's help, hence errs on the side of too many seeds).

    One arm's true seed-to-seed variance is the observed one less its binomial part,
    ``tau^2 = seed_std^2 - p (100 - p) / measured_episodes`` (clipped at 0); the arms are
    trained independently, so ``between = 2 tau^2``; ``within = p_a (100 - p_a) +
    p_b (100 - p_b) - 2 correlation sqrt(p_a (100 - p_a) p_b (100 - p_b))``."""
    va, vb = arm_rate * (100 - arm_rate), base_rate * (100 - base_rate)
    tau2 = max(0.0, seed_std**2 - vb / measured_episodes)
    within = va + vb - 2 * correlation * math.sqrt(va * vb)
    return VarianceComponents(between=2 * tau2, within=within)
