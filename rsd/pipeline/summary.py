"""What an experiment reads of one run (open loop on two rigs, closed-loop episodes), the
closed-loop outcomes pooled over seeds, and the issue's targets checked on the aggregate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rsd.metrics.driving import driving_metrics
from rsd.metrics.stats import as_number, outcome_rates, retention
from rsd.pipeline.experiment_config import BASELINE
from rsd.report.labels import POOLED_OUTCOMES
from rsd.report.tables import cell_of, fmt_number, fmt_pct

CANDIDATE = "rsd"
"""The arm the issue's targets are checked for (and every arm of :data:`ALSO_CHECKED`)."""
ALSO_CHECKED = ("rsd_riskweighted", "rsd_balanced_rw")
"""Further arms whose targets are checked against the baseline when they are configured."""


def _closed_loop(summary: Mapping[str, Any]) -> dict[str, float]:
    """The closed-loop metrics kept per run (keys of :func:`rsd.metrics.driving.summarise`)."""
    keys = ("driving_score", "success_rate", "collision_rate", "offroad_rate")
    return {k: as_number(summary.get(k)) for k in (*keys, "route_completion", "episodes")}


def run_metrics(
    seen: Mapping[str, Any],
    unseen: Mapping[str, Any],
    logs: Sequence[Any],
    long_tail: Sequence[str],
) -> dict[str, dict[str, float]]:
    """``{group: {metric: value}}`` of one run from its two evaluations (``rsd eval`` JSON on
    the training and on the unseen rig) and its closed-loop episode logs. Missing values are
    NaN. Keys are identifiers (labels: :data:`rsd.report.labels.EXPERIMENT_LABELS`). Units:
    metres, % (``collision_box_avg_pct``, ``collision_vad_grid_avg_pct``, the closed-loop
    rates) and the detection scores as ``rsd eval`` gives them; the retentions are ratios
    (1: nothing lost on the unseen rig, below 1: worse there;
    :func:`rsd.metrics.stats.retention`)."""
    plan, det = seen.get("planning") or {}, seen.get("detection") or {}
    score = seen.get("plan_score") or {}
    uplan, udet = unseen.get("planning") or {}, unseen.get("detection") or {}
    open_loop = {
        "l2_vad_avg": as_number(plan.get("l2_vad_avg")),
        "ade": as_number(plan.get("ade")),
        "fde": as_number(plan.get("fde")),
        "collision_box_avg_pct": 100 * as_number(plan.get("collision_box_avg")),
        "collision_vad_grid_avg_pct": 100 * as_number(plan.get("collision_vad_grid_avg")),
        "mAP": as_number(det.get("mAP")),
        "NDS": as_number(det.get("NDS")),
        "mASE": as_number(det.get("mASE")),
        "mAVE": as_number(det.get("mAVE")),
        "pdm_score": as_number(score.get("pdm_score")),
        "pdm_score_events": as_number(score.get("pdm_score_events")),
    }
    for k, v in (seen.get("risk") or {}).items():
        open_loop[k] = as_number(v)
    unseen_rig = {
        "ade": as_number(uplan.get("ade")),
        "l2_vad_avg": as_number(uplan.get("l2_vad_avg")),
        "collision_box_avg_pct": 100 * as_number(uplan.get("collision_box_avg")),
        "collision_vad_grid_avg_pct": 100 * as_number(uplan.get("collision_vad_grid_avg")),
        "NDS": as_number(udet.get("NDS")),
        "ade_retention": retention(open_loop["ade"], uplan.get("ade"), lower_is_better=True),
        "nds_retention": retention(open_loop["NDS"], udet.get("NDS"), lower_is_better=False),
    }
    tail = [lg for lg in logs if lg.scenario in long_tail]
    nominal = [lg for lg in logs if lg.scenario not in long_tail]
    dm = driving_metrics(list(logs)) if logs else {"overall": {}, "per_scenario": {}}
    return {
        "open_loop": open_loop,
        "unseen_rig": unseen_rig,
        "closed_loop_long_tail": _closed_loop(driving_metrics(tail)["overall"] if tail else {}),
        "closed_loop_nominal": _closed_loop(driving_metrics(nominal)["overall"] if nominal else {}),
        "closed_loop_overall": _closed_loop(dm["overall"]),
        "collision_per_scenario": {
            k: as_number(v.get("collision_rate")) for k, v in sorted(dm["per_scenario"].items())
        },
    }


def reference_metrics(logs: Sequence[Any], long_tail: Sequence[str]) -> dict[str, dict[str, float]]:
    """The closed-loop groups of :func:`run_metrics` (same keys and units) for one set of
    episode logs, e.g. the privileged expert's: the reference column of the closed-loop
    tables."""
    return {
        k: v
        for k, v in run_metrics({}, {}, logs, long_tail).items()
        if k.startswith(("closed", "coll"))
    }


def pool_outcomes(logs: Sequence[Any], long_tail: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"long_tail" | "nominal" | "overall": {"episodes": n, outcome: {"count", "rate_pct",
    "ci95_pct": [lo, hi]}}}`` over episode logs pooled across seeds
    (:func:`rsd.metrics.stats.outcome_rates`): the seed-to-seed std of a rate says how much
    training varies, the Wilson interval how much the episodes sampled do."""
    groups = {
        "long_tail": [lg for lg in logs if lg.scenario in long_tail],
        "nominal": [lg for lg in logs if lg.scenario not in long_tail],
        "overall": list(logs),
    }
    return {
        g: outcome_rates([lg.outcome for lg in members], POOLED_OUTCOMES)
        for g, members in groups.items()
    }


def check_targets(
    agg: Mapping[str, Any], arm: str = CANDIDATE, baseline: str = BASELINE
) -> list[dict[str, Any]]:
    """The issue's targets for ``arm`` against ``baseline``: ``[{"target", "measured",
    "met"}]``; ``met`` is None when a value is missing (NaN)."""

    def pair(group: str, metric: str) -> tuple[dict, dict]:
        return cell_of(agg, group, metric, arm), cell_of(agg, group, metric, baseline)

    rows: list[dict[str, Any]] = []

    def rel(target: str, group: str, metric: str, at_most_pct: float) -> None:
        a, b = pair(group, metric)
        d = a["delta_pct"]
        rows.append(
            {
                "target": target,
                "measured": f"{fmt_number(a['mean'])} vs {fmt_number(b['mean'])} ({fmt_pct(d)})",
                "met": None if math.isnan(as_number(d)) else bool(d <= at_most_pct),
            }
        )

    def cmp(target: str, group: str, metric: str, higher: bool, slack_std: bool = False) -> None:
        a, b = pair(group, metric)
        x, y = as_number(a["mean"]), as_number(b["mean"])
        slack = as_number(b["std"]) if slack_std else 0.0
        slack = 0.0 if math.isnan(slack) else slack
        if math.isnan(x) or math.isnan(y):
            met = None
        elif slack_std:
            met = x >= y - slack if higher else x <= y + slack
        else:
            met = x > y if higher else x < y
        rows.append(
            {"target": target, "measured": f"{fmt_number(x)} vs {fmt_number(y)}", "met": met}
        )

    rel("long-tail collision rate >= 30% lower", "closed_loop_long_tail", "collision_rate", -30)
    cmp("long-tail driving score higher", "closed_loop_long_tail", "driving_score", higher=True)
    cmp(
        "nominal driving score not lower (by more than 1 std of baseline)",
        "closed_loop_nominal",
        "driving_score",
        higher=True,
        slack_std=True,
    )
    rel("ADE >= 10% lower", "open_loop", "ade", -10)
    rel("L2 >= 10% lower", "open_loop", "l2_vad_avg", -10)
    cmp("mASE lower", "open_loop", "mASE", higher=False)
    cmp("mAVE lower", "open_loop", "mAVE", higher=False)
    cmp("plan collision lower", "open_loop", "collision_box_avg_pct", higher=False)
    cmp("unseen-rig ADE retention higher", "unseen_rig", "ade_retention", higher=True)
    for r in rows:
        r["target"] = f"{arm} vs {baseline}: {r['target']}"
    return rows
