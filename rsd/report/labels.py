"""Display labels of metric identifiers: the only place where a metric key becomes text.

Metric dicts (``rsd.metrics``, ``rsd eval``'s JSON, ``rsd experiment``'s ``results.json``) are
keyed by identifiers (``l2_vad_3s``, ``ade``, ``risk_mae``, ``driving_score``...); tables, the
HTML page and the command-line printouts look their labels (and units) up here.
"""

from __future__ import annotations

VARIANT_ORDER = ("baseline", "rsd")
"""Variants shown first, in this order; others follow alphabetically."""

OPEN_LOOP = [  # (group of the eval JSON, key, label, lower is better)
    ("planning", "l2_vad_1s", "L2 VAD-avg @1s (m)", True),
    ("planning", "l2_vad_2s", "L2 VAD-avg @2s (m)", True),
    ("planning", "l2_vad_3s", "L2 VAD-avg @3s (m)", True),
    ("planning", "l2_vad_avg", "L2 VAD-avg mean (m)", True),
    ("planning", "l2_uniad_3s", "L2 UniAD-step @3s (m)", True),
    ("planning", "ade", "ADE (m)", True),
    ("planning", "fde", "FDE (m)", True),
    ("planning", "collision_box_avg", "plan collision, exact boxes (VAD-avg mean, %)", True),
    ("planning", "collision_vad_grid_avg", "plan collision, VAD grid (VAD-avg mean, %)", True),
    ("plan_score", "pdm_score", "plan score (PDMS-style)", False),
    ("plan_score", "pdm_score_events", "plan score, event windows", False),
    ("detection", "mAP", "mAP", False),
    ("detection", "NDS", "NDS", False),
    ("detection", "mATE", "mATE (m)", True),
    ("detection", "mASE", "mASE", True),
    ("detection", "mAOE", "mAOE (rad)", True),
    ("detection", "mAVE", "mAVE (m/s)", True),
    ("risk", "risk_mae", "risk MAE vs teacher", True),
    ("risk", "risk_kendall_tau", "risk Kendall tau-b", False),
    ("risk", "risk_top1_agreement", "risk top-1 agreement", False),
    ("risk", "risk_map_l1", "risk map L1", True),
    ("risk", "near_miss_auroc", "near-miss AUROC", False),
    ("", "samples_per_s", "model samples/s", False),
]
"""The open-loop rows of ``rsd report`` (group "" = a top-level key of the eval JSON)."""
PCT_KEYS = frozenset({"collision_box_avg", "collision_vad_grid_avg"})
"""Eval-JSON keys that are fractions (0-1) there and shown as % (x100) everywhere else."""
KEPT = ["l2_vad_avg", "ade", "fde", "mAP", "NDS"]
"""Metrics whose retention on an unseen rig (a ratio, :func:`rsd.metrics.stats.retention`)
``rsd report`` shows."""
CLOSED_LOOP = [  # (key of rsd.metrics.driving.summarise, label, lower is better)
    ("driving_score", "Driving Score", False),
    ("success_rate", "Success rate (%)", False),
    ("route_completion", "Route completion (%)", False),
    ("efficiency", "Efficiency (%)", False),
    ("comfortness", "Comfortness (%)", False),
    ("collision_rate", "Collision rate (%)", True),
    ("offroad_rate", "Off-road rate (%)", True),
]

EVAL_TABLE = [  # (group, key, label, unit) of the ``rsd eval`` printout
    ("planning", "l2_vad_1s", "L2 (VAD avg)@1s", "m"),
    ("planning", "l2_vad_2s", "L2 (VAD avg)@2s", "m"),
    ("planning", "l2_vad_3s", "L2 (VAD avg)@3s", "m"),
    ("planning", "l2_vad_avg", "L2 (VAD avg)@avg", "m"),
    ("planning", "l2_uniad_3s", "L2 (UniAD step)@3s", "m"),
    ("planning", "ade", "ADE", "m"),
    ("planning", "fde", "FDE", "m"),
    ("planning", "collision_box_avg", "Collision (exact boxes, VAD avg)@avg", "%"),
    ("planning", "collision_vad_grid_avg", "Collision (VAD grid, VAD avg)@avg", "%"),
    ("detection", "mAP", "mAP", ""),
    ("detection", "NDS", "NDS", ""),
    ("detection", "mATE", "mATE", "m"),
    ("detection", "mASE", "mASE", ""),
    ("detection", "mAOE", "mAOE", "rad"),
    ("detection", "mAVE", "mAVE", "m/s"),
    ("risk", "risk_mae", "risk MAE", ""),
    ("risk", "risk_kendall_tau", "risk Kendall tau-b", ""),
    ("risk", "risk_top1_agreement", "risk top-1 agreement", ""),
    ("risk", "risk_map_l1", "risk map L1", ""),
    ("risk", "near_miss_auroc", "risk AUROC (near-miss)", ""),
]
"""Rows of the ``rsd eval`` printout; a ``%`` row is a fraction shown x100."""

EXPERIMENT_GROUPS = {
    "open_loop": "Open loop, training rig (validation split)",
    "unseen_rig": "Open loop, unseen rig",
    "closed_loop_long_tail": "Closed loop, long-tail scenarios",
    "closed_loop_nominal": "Closed loop, nominal scenarios",
    "closed_loop_overall": "Closed loop, all scenarios",
    "collision_per_scenario": "Closed loop, collision rate (%) per scenario",
}
"""Metric groups of ``results.json`` / ``results.md``, in order, with their titles."""
EXPERIMENT_LABELS = {
    "l2_vad_avg": "L2 (m)",
    "ade": "ADE (m)",
    "fde": "FDE (m)",
    "collision_box_avg_pct": "plan collision, exact boxes (%)",
    "collision_vad_grid_avg_pct": "plan collision, VAD grid (%)",
    "mAP": "mAP",
    "NDS": "NDS",
    "mASE": "mASE",
    "mAVE": "mAVE (m/s)",
    "risk_mae": "risk MAE",
    "risk_kendall_tau": "risk Kendall tau-b",
    "risk_top1_agreement": "risk top-1 agreement",
    "risk_map_l1": "risk map L1",
    "near_miss_auroc": "risk AUROC (near-miss)",
    "student_risk_on_risky": "student risk on teacher-risky objects",
    "teacher_risk_on_risky": "teacher risk on its risky objects",
    "risk_collapsed": "student risk map collapsed (1 = yes)",
    "ade_retention": "ADE retention",
    "nds_retention": "NDS retention",
    "pdm_score": "plan score (PDMS-style)",
    "pdm_score_events": "plan score, event windows",
    "driving_score": "DS",
    "success_rate": "SR (%)",
    "collision_rate": "collision (%)",
    "offroad_rate": "off-road (%)",
    "route_completion": "route completion (%)",
    "episodes": "episodes",
}
"""Row labels of ``results.md``; a key not listed (a scenario name) is its own label."""


def experiment_label(key: str) -> str:
    """The ``results.md`` label of a metric key of ``rsd experiment``."""
    return EXPERIMENT_LABELS.get(key, key)


POOLED_OUTCOMES = ("vehicle_collision", "offroad", "success")
"""Episode outcomes ``rsd experiment`` pools over seeds (rates with Wilson intervals)."""


# ---- plan score and paired comparisons (issue 12, items 4-5) ----

PLAN_SCORE_LABELS = {
    "pdm_score": "PDM-style score",
    "pdm_nc": "no at-fault collision (NC)",
    "pdm_dac": "drivable-area compliance (DAC)",
    "pdm_ttc": "time to collision within bound (TTC)",
    "pdm_ep": "ego progress (EP)",
    "pdm_comfort": "comfort (C)",
    "pdm_frames": "frames scored",
    "nc": "NC",
    "dac": "DAC",
    "ttc": "TTC",
    "ep": "EP",
    "comfort": "C",
}
"""Labels of the plan-score keys (``rsd eval``'s ``plan_score`` group, per-frame values);
a key with the suffix ``_events`` is the same over event windows."""
COMPARE_GROUPS = {
    "closed_loop_overall": "Closed loop, all scenarios (paired by scenario + seed)",
    "closed_loop_long_tail": "Closed loop, long-tail scenarios (paired by scenario + seed)",
}
"""Titles of ``rsd compare``'s groups; ``open_loop[<rig>]`` groups are titled by rig."""
LOWER_IS_BETTER = {
    *(key for _, key, _, lower in OPEN_LOOP if lower),
    *(key for key, _, lower in CLOSED_LOOP if lower),
    "collision_box_avg_pct",
    "collision_vad_grid_avg_pct",
}
"""Metric keys where a negative paired difference is an improvement."""


def plan_score_label(key: str) -> str:
    """Label of a plan-score key, ``..._events`` as ``... (event windows)``."""
    base, events = (key[: -len("_events")], True) if key.endswith("_events") else (key, False)
    label = PLAN_SCORE_LABELS.get(base) or experiment_label(base)
    return f"{label} (event windows)" if events else label


def compare_group_title(group: str) -> str:
    if group.startswith("open_loop["):
        return f"Open loop on rig {group[len('open_loop[') : -1]} (paired by frame)"
    return COMPARE_GROUPS.get(group, group)
