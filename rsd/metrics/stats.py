"""Statistics over runs and episodes: mean and sample std over seeds, relative changes, ratios,
binomial rates with a Wilson interval, and the per-arm aggregate of ``rsd experiment``.

Pure functions on plain numbers; a value that cannot be computed is ``nan`` (never an
exception), and ``None`` / NaN inputs are left out where a mean is taken. ``scipy.stats`` does
the interval; the means use :mod:`statistics` (exactly rounded sums).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

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
