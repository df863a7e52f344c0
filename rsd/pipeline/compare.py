"""Arm vs arm over an experiment directory (``rsd compare``, the experiment's aggregate):
paired effects (:func:`rsd.metrics.stats.paired_effect`) of every metric, paired by training
seed and then by unit.

* closed loop: ``runs/<arm>/seed<S>/drive/episodes.jsonl``; a unit is an episode, identified
  by scenario and scenario seed (``cut_in-10003``); per episode ``driving_score``
  (route completion x the infraction penalties, as :mod:`rsd.metrics.driving`), and 0/100
  indicators ``success_rate``, ``collision_rate``, ``offroad_rate``; over all episodes and
  over the long-tail scenarios only;
* open loop: ``runs/<arm>/seed<S>/eval_<rig>.frames.npz`` (written by ``rsd eval``); a unit is
  a frame id; ``pdm_score`` and its sub-scores, ``ade``, ``fde`` (m), and ``pdm_score_events``
  over the frames in event windows.

:func:`power_rows` turns the closed-loop pairs into a power estimate (:mod:`rsd.metrics.power`):
the variance components measured on the experiment, then the power and the seeds needed to
detect a given relative effect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.metrics.driving import episode_score
from rsd.metrics.plan_score import SUB_SCORES
from rsd.metrics.power import paired_power, seeds_needed, variance_components
from rsd.metrics.stats import paired_effect
from rsd.pipeline.evaluate import PER_FRAME_SUFFIX
from rsd.sim.closed_loop import EpisodeLog

Units = dict[int, dict[str, dict[str, float]]]
"""``{training seed: {metric: {unit: value}}}`` of one arm and one group."""

OPEN_LOOP_KEYS = ("pdm_score", *SUB_SCORES, "ade", "fde")
OUTCOME_RATES = {
    "success_rate": "success",
    "collision_rate": "vehicle_collision",
    "offroad_rate": "offroad",
}
"""Per-episode 0/100 indicators: metric id -> the episode outcome it counts."""


def arm_dir(out: Path, arm: str) -> Path:
    """Where ``arm``'s seed directories are: ``out/runs/<arm>``; for an arm given as
    ``NAME=PATH`` (an arm of another experiment directory, e.g. one trained on other data but
    driven on the same scenario seeds and evaluated on the same frames), ``PATH`` itself."""
    if "=" in arm:
        return Path(arm.split("=", 1)[1])
    return Path(out) / "runs" / arm


def arm_label(arm: str) -> str:
    """The name ``arm`` goes by in tables: ``NAME`` of ``NAME=PATH``, else ``arm``."""
    return arm.split("=", 1)[0]


def seed_dirs(out: Path, arm: str) -> dict[int, Path]:
    """``{seed: runs/<arm>/seed<S>}`` of ``out`` (an experiment directory; see
    :func:`arm_dir` for ``NAME=PATH``)."""
    found = {}
    for d in sorted(arm_dir(out, arm).glob("seed*")):
        m = re.fullmatch(r"seed(\d+)", d.name)
        if m and d.is_dir():
            found[int(m.group(1))] = d
    return found


def arms_of(out: Path) -> list[str]:
    """The arms with at least one run directory under ``out/runs``."""
    root = Path(out) / "runs"
    if not root.is_dir():
        raise ConfigError(f"{out}: not an experiment directory (no runs/)")
    return sorted(d.name for d in root.iterdir() if d.is_dir() and seed_dirs(out, d.name))


def episode_values(logs: Sequence[EpisodeLog]) -> dict[str, dict[str, float]]:
    """``{metric: {episode id: value}}`` of closed-loop episodes (module doc)."""
    out: dict[str, dict[str, float]] = {k: {} for k in ("driving_score", *OUTCOME_RATES)}
    for log in logs:
        # the episode's DS alone: the full table (comfort's Savitzky-Golay fits) cost ~95 % of
        # a comparison's time
        out["driving_score"][log.episode_id] = float(episode_score(log))
        for key, outcome in OUTCOME_RATES.items():
            out[key][log.episode_id] = 100.0 * (log.outcome == outcome)
    return out


def read_episodes(path: Path) -> list[EpisodeLog]:
    return [EpisodeLog.from_json(line) for line in path.read_text().splitlines() if line]


def closed_loop_units(out: Path, arm: str, long_tail: Sequence[str]) -> dict[str, Units]:
    """``{"closed_loop_overall" | "closed_loop_long_tail": Units}`` of ``arm``."""
    groups: dict[str, Units] = {"closed_loop_overall": {}, "closed_loop_long_tail": {}}
    for seed, d in seed_dirs(out, arm).items():
        path = d / "drive" / "episodes.jsonl"
        if not path.exists():
            continue
        logs = read_episodes(path)
        groups["closed_loop_overall"][seed] = episode_values(logs)
        tail = [lg for lg in logs if lg.scenario in long_tail]
        groups["closed_loop_long_tail"][seed] = episode_values(tail)
    return groups


def open_loop_units(out: Path, arm: str) -> dict[str, Units]:
    """``{"open_loop[<rig>]": Units}`` of ``arm``, one group per rig with per-frame values."""
    groups: dict[str, Units] = {}
    for seed, d in seed_dirs(out, arm).items():
        for path in sorted(d.glob(f"eval_*{PER_FRAME_SUFFIX}")):
            rig = path.name[len("eval_") : -len(PER_FRAME_SUFFIX)]
            with np.load(path) as f:
                ids = [str(i) for i in f["frame_id"]]
                vals = {k: dict(zip(ids, f[k].tolist(), strict=True)) for k in OPEN_LOOP_KEYS}
                window = f["in_event_window"]
                vals["pdm_score_events"] = {
                    i: v for i, v, w in zip(ids, f["pdm_score"].tolist(), window, strict=True) if w
                }
            groups.setdefault(f"open_loop[{rig}]", {})[seed] = vals
    return groups


def arm_units(out: Path, arm: str, long_tail: Sequence[str]) -> dict[str, Units]:
    return closed_loop_units(out, arm, long_tail) | open_loop_units(out, arm)


def compare_arms(
    out: Path,
    arm: str,
    base: str,
    long_tail: Sequence[str] = (),
    n_boot: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows ``{"group", "metric", "arm", "base", **paired_effect(...)}`` of ``arm`` against
    ``base`` for every metric both arms have (module doc)."""
    a, b = arm_units(out, arm, long_tail), arm_units(out, base, long_tail)
    rows = []
    for group in [g for g in a if g in b]:
        metrics = {m for units in a[group].values() for m in units}
        metrics &= {m for units in b[group].values() for m in units}
        for metric in sorted(metrics):
            per_a = {s: units.get(metric, {}) for s, units in a[group].items()}
            per_b = {s: units.get(metric, {}) for s, units in b[group].items()}
            effect = paired_effect(per_a, per_b, n_boot=n_boot, seed=seed)
            names = {"arm": arm_label(arm), "base": arm_label(base)}
            rows.append({"group": group, "metric": metric, **names} | effect)
    return rows


POWER_EPISODES = (40, 100, 200, 400)
"""Paired episodes per training seed that :func:`power_rows` gives the seeds needed for."""


def power_rows(
    out: Path,
    arm: str,
    base: str,
    effect: float,
    long_tail: Sequence[str] = (),
    metric: str = "collision_rate",
    episodes: Sequence[int] = POWER_EPISODES,
) -> list[dict[str, Any]]:
    """Per closed-loop group, the power of ``arm`` vs ``base`` on ``metric`` to detect a
    relative effect ``effect`` (0.25: a difference of 25 % of the base mean, either sign):
    ``{"group", "metric", "seeds", "episodes" (mean per seed), "base_mean", "diff" (measured),
    "target" (the absolute difference sought), "between", "within" (the components measured on
    these pairs), "power_now" (at the experiment's own seeds and episodes), "seeds_needed"
    ({episodes: seeds for 80 %, None if > 1000})}``; NaN / None where they cannot be estimated
    (one training seed: no between-seed variance)."""
    a, b = closed_loop_units(out, arm, long_tail), closed_loop_units(out, base, long_tail)
    rows = []
    for group in a:
        per_a = {s: units.get(metric, {}) for s, units in a[group].items()}
        per_b = {s: units.get(metric, {}) for s, units in b[group].items()}
        est = variance_components(per_a, per_b)
        var, n = est["components"], est["seeds"]
        target = effect * abs(est["base_mean"])
        m = round(est["episodes"]) if n else 0
        ok = math.isfinite(var.between) and math.isfinite(var.within) and math.isfinite(target)
        rows.append(
            {
                "group": group,
                "metric": metric,
                "arm": arm_label(arm),
                "base": arm_label(base),
                "seeds": n,
                "episodes": est["episodes"],
                "base_mean": est["base_mean"],
                "diff": est["diff"],
                "target": target,
                "between": var.between,
                "within": var.within,
                "power_now": paired_power(target, var, n, m) if ok else math.nan,
                "seeds_needed": {
                    int(k): (seeds_needed(target, var, int(k)) if ok else None) for k in episodes
                },
            }
        )
    return rows
