"""Statistics over runs and episodes: mean and sample std over seeds, relative changes, ratios,
binomial rates with a Wilson interval, the per-arm aggregate of ``rsd experiment``, and paired
comparisons of two arms: differences on the same training seeds and the same units (scenario
episodes, frames), a hierarchical bootstrap (seeds, then units) and effect sizes with 95 %
intervals (:func:`paired_effect`).

Pure functions on plain numbers; a value that cannot be computed is ``nan`` (never an
exception), and ``None`` / NaN inputs are left out where a mean is taken. ``scipy.stats`` does
the interval; the means use :mod:`statistics` (exactly rounded sums).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest, norm

Z95 = 1.96
"""The normal quantile of the reported 95 % intervals (the customary rounded value)."""
CONFIDENCE_95 = float(2 * norm.cdf(Z95) - 1)
"""The confidence level whose two-sided quantile is exactly :data:`Z95` (0.950004...), so that
the interval is the textbook ``p +- 1.96 ...`` Wilson interval."""


def as_number(x: Any) -> float:
    """``x`` as a float; NaN for None, booleans and anything that is not a number."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan


def finite(values: Sequence[Any]) -> list[float]:
    """The finite numbers among ``values`` (None, NaN, inf and non-numbers dropped), in order."""
    return [v for v in map(as_number, values) if math.isfinite(v)]


def mean_std(values: Sequence[Any]) -> tuple[float, float, int]:
    """``(mean, sample std (ddof 1), n)`` over the finite ``values``; the mean is NaN without a
    finite value, the std NaN with fewer than two."""
    xs = finite(values)
    mean = statistics.fmean(xs) if xs else math.nan
    std = statistics.stdev(xs) if len(xs) > 1 else math.nan
    return mean, std, len(xs)


def delta_pct(value: float, base: float) -> float:
    """``(value - base) / |base|`` in %; NaN when either is not finite or ``base`` is 0."""
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return math.nan
    return 100.0 * (value - base) / abs(base)


def ratio(num: float | None, den: float | None) -> float:
    """``num / den``; NaN when either is missing or not finite, or ``den`` is 0."""
    a, b = as_number(num), as_number(den)
    return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


def retention(train: float | None, unseen: float | None, lower_is_better: bool) -> float:
    """Share of the training-rig performance kept on an unseen rig, as a ratio (1: nothing
    lost, below 1: worse there): ``train / unseen`` for an error (lower is better), ``unseen /
    train`` for a score. NaN when a value is missing or the denominator is 0."""
    return ratio(train, unseen) if lower_is_better else ratio(unseen, train)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE_95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n`` (fractions in [0, 1]); NaNs when ``n``
    is 0. Default: the 95 % interval with ``z = 1.96``."""
    if n <= 0:
        return math.nan, math.nan
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def rate_with_interval(k: int, n: int) -> dict[str, Any]:
    """``{"count": k, "rate_pct", "ci95_pct": [lo, hi]}``: a binomial rate and its Wilson 95 %
    interval in % (NaN for ``n`` = 0)."""
    lo, hi = wilson_interval(k, n)
    return {
        "count": k,
        "rate_pct": 100 * k / n if n else math.nan,
        "ci95_pct": [100 * lo, 100 * hi],
    }


def outcome_rates(outcomes: Sequence[str], kinds: Sequence[str]) -> dict[str, Any]:
    """``{"episodes": n, kind: rate_with_interval(count of kind, n), ...}`` over the episode
    outcomes of a pool of episodes (e.g. every episode of every seed of one arm)."""
    n = len(outcomes)
    row: dict[str, Any] = {"episodes": n}
    for kind in kinds:
        row[kind] = rate_with_interval(sum(o == kind for o in outcomes), n)
    return row


def aggregate(
    per_run: Mapping[str, Mapping[int, Mapping[str, Mapping[str, Any]]]], baseline: str
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Over seeds, per arm: ``{group: {metric: {arm: {"values": {seed: v}, "mean", "std",
    "delta_pct"}}}}`` from ``{arm: {seed: {group: {metric: v}}}}``. ``mean`` / ``std`` as
    :func:`mean_std`; ``delta_pct`` is the arm's mean against the ``baseline`` arm's mean
    (:func:`delta_pct`; NaN without a baseline)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for arm, runs in per_run.items():
        for seed, groups in runs.items():
            for g, metrics in groups.items():
                for m, v in metrics.items():
                    cell = out.setdefault(g, {}).setdefault(m, {}).setdefault(arm, {})
                    cell.setdefault("values", {})[str(seed)] = as_number(v)
    for g in out.values():
        for cells in g.values():
            for cell in cells.values():
                cell["mean"], cell["std"], _ = mean_std(list(cell["values"].values()))
            base = cells.get(baseline, {}).get("mean", math.nan)
            for cell in cells.values():
                cell["delta_pct"] = delta_pct(cell["mean"], base)
    return out


# ---- paired comparisons: arm vs arm on the same training seeds and the same scenarios/frames


def paired_differences(
    arm: Mapping[Any, Mapping[Any, Any]], base: Mapping[Any, Mapping[Any, Any]]
) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """``{seed: (arm values, base values)}`` (two aligned (U,) float arrays) over the training
    seeds present in both ``{seed: {unit: value}}`` maps and, within a seed, the units (scenario
    episodes, frames) present in both with finite values, in sorted unit order. Seeds left with
    no unit are dropped."""
    out: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for seed in sorted(set(arm) & set(base), key=str):
        a, b = arm[seed], base[seed]
        units = sorted(set(a) & set(b), key=str)
        pairs = [(as_number(a[u]), as_number(b[u])) for u in units]
        pairs = [(x, y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
        if pairs:
            out[seed] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    return out


def hierarchical_bootstrap(
    groups: Sequence[np.ndarray], n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """(n_boot,) bootstrap replicates of the two-level mean of ``groups`` (one (U_i,) array of
    per-unit values per training seed): each replicate draws the seeds with replacement, then,
    for every seed drawn, its units with replacement, and averages the seeds' unit means (every
    seed weighs the same). ``seed`` seeds the generator: the same call gives the same draws."""
    rng = np.random.default_rng(seed)
    s = len(groups)
    picks = rng.integers(0, s, size=(n_boot, s))
    means = np.empty((n_boot, s))
    for i, values in enumerate(groups):
        slots = picks == i
        k = int(slots.sum())
        if k:  # every slot that drew seed i resamples its units afresh
            draws = rng.integers(0, len(values), size=(k, len(values)))
            means[slots] = values[draws].mean(axis=1)
    return means.mean(axis=1)


def paired_effect(
    arm: Mapping[Any, Mapping[Any, Any]],
    base: Mapping[Any, Mapping[Any, Any]],
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired effect of ``arm`` against ``base`` (both ``{training seed: {unit: value}}``,
    :func:`paired_differences`): ``diff`` the two-level mean of arm - base (seeds weigh the
    same), ``ci95`` its percentile interval from :func:`hierarchical_bootstrap`, ``base_mean``
    and ``rel_pct`` = 100 diff / |base_mean| with ``rel_ci95_pct`` (the interval over the same
    fixed base mean), ``d_z`` the standardised effect (diff over the sample std of the unit
    differences; NaN when they do not vary) with ``d_z_ci95`` (``ci95`` over the same std),
    ``p_boot`` the two-sided share of replicates on the far side of 0, ``seeds`` and
    ``units``. NaNs when nothing pairs. With one training seed the interval covers the units
    only (that seed's model is fixed)."""
    pairs = paired_differences(arm, base)
    nan2 = [math.nan, math.nan]
    out: dict[str, Any] = {"diff": math.nan, "ci95": nan2, "base_mean": math.nan}
    out |= {"rel_pct": math.nan, "rel_ci95_pct": nan2, "d_z": math.nan, "d_z_ci95": nan2}
    out |= {
        "p_boot": math.nan,
        "seeds": len(pairs),
        "units": sum(len(a) for a, _ in pairs.values()),
    }
    if not pairs:
        return out
    diffs = [a - b for a, b in pairs.values()]
    diff = float(np.mean([d.mean() for d in diffs]))
    base_mean = float(np.mean([b.mean() for _, b in pairs.values()]))
    boot = hierarchical_bootstrap(diffs, n_boot, seed)
    tail = 100 * (1 - confidence) / 2
    lo, hi = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
    sd = float(np.concatenate(diffs).std(ddof=1)) if out["units"] > 1 else math.nan
    scale = 100 / abs(base_mean) if base_mean else math.nan
    out |= {"diff": diff, "ci95": [lo, hi], "base_mean": base_mean}
    out |= {"rel_pct": diff * scale, "rel_ci95_pct": [lo * scale, hi * scale]}
    if sd > 0:
        out |= {"d_z": diff / sd, "d_z_ci95": [lo / sd, hi / sd]}
    out["p_boot"] = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    return out


def excludes_zero(interval: Sequence[Any]) -> bool:
    """Whether a ``[lo, hi]`` interval lies wholly on one side of 0 (False with a NaN end)."""
    lo, hi = (as_number(v) for v in interval)
    return math.isfinite(lo) and math.isfinite(hi) and (lo > 0 or hi < 0)
