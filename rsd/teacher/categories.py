"""Risk categories of the privileged teacher (:mod:`rsd.teacher.privileged`): which kind of
conflict each interacting agent poses, from the per-agent physics of
:meth:`~rsd.teacher.privileged.PrivilegedTeacher.features` (ego frame, SI units)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsd.scene import Command, Frame
from rsd.teacher.physics import AgentArrays
from rsd.teacher.schema import RiskCategory

SAME_DIRECTION_RAD = 0.6
"""Heading difference (rad) below which an agent on the path is a lead; above, it crosses."""
INTERACTING_RISK = 0.1
"""Risk from which an agent gets a category other than ``none`` (leads always do)."""
BRAKING_CLOSING, BRAKING_DRAC, BRAKING_TTC = 3.0, 0.2, 0.3
"""A lead counts as braking when closing faster (m/s), or ``c_drac`` / ``c_ttc`` above these."""
MERGE_NEAR_M = 10.0
"""An interacting agent within this longitudinal distance (m) is a merging conflict."""
REAR_CLOSING = 0.5
"""Closing speed (m/s) of an agent behind in the lane that makes it a rear conflict."""
FOLLOW_TIME_S, FOLLOW_MIN_M = 3.0, 30.0
"""A lead is followed within ``max(FOLLOW_TIME_S x v, FOLLOW_MIN_M)`` m."""
MOVES_IN_M = 1.0
"""An agent that comes this much (m) closer to the ego's line within the plan moves in."""
CROSSING_NEAR_M = 2.0
"""Closest planned gap (m) below which a crossing agent in a known lane conflicts."""
_CATS = list(RiskCategory)


def categorise(
    frame: Frame,
    ag: AgentArrays,
    f: dict[str, Any],
    v: float,
    swerve: float,
    plan_n: int,
    hard_brake: float,
) -> np.ndarray:
    """(K,) category codes (index into RiskCategory): the last matching rule wins; only
    interacting agents (and leads) get one."""
    x0, y0, half, ahead = f["x"], f["y"], f["half"], f["ahead"]
    follow, closing = f["follow"], f["closing"]
    crossing = f["dyaw"] > SAME_DIRECTION_RAD
    outside = (np.abs(y0) >= half) & (ag.rel != 0)
    moves_in = np.abs(f["traj"][:, :plan_n, 1]).min(axis=1) < np.abs(y0) - MOVES_IN_M
    came_in = (np.abs(ag.y_past) >= half) & (np.abs(y0) < half) & (ag.rel == 0)
    cut_in = ahead & ((f["enters"] & outside & moves_in) | came_in)
    ego_moves = swerve > 0 or frame.command in (Command.CHANGE_LEFT, Command.CHANGE_RIGHT)
    braking = (
        (ag.accel <= -hard_brake)
        | (closing > BRAKING_CLOSING)
        | (f["c_drac"] > BRAKING_DRAC)
        | (f["c_ttc"] > BRAKING_TTC)
    )
    interacting = f["risk"] >= INTERACTING_RISK
    rear = (f["behind_lane"] | (ag.rel == 0)) & ~ahead & (closing > REAR_CLOSING)
    rules = [  # later rules win
        (
            RiskCategory.MERGING_CONFLICT,
            np.isnan(ag.rel) | ego_moves | (np.abs(x0) < MERGE_NEAR_M),
        ),
        (RiskCategory.REAR, rear),
        (
            RiskCategory.FOLLOWING,
            follow & (f["gap"] < np.maximum(FOLLOW_TIME_S * v, FOLLOW_MIN_M)),
        ),
        (RiskCategory.LEAD_BRAKING, follow & braking),
        (RiskCategory.CUT_IN, cut_in),
        (
            RiskCategory.CROSSING_CONFLICT,
            crossing & (np.isnan(ag.rel) | (f["d_min"] < CROSSING_NEAR_M)),
        ),
    ]
    cat = np.full(len(ag.ids), _CATS.index(RiskCategory.NONE))
    for category, mask in rules:
        lead = category in (RiskCategory.FOLLOWING, RiskCategory.LEAD_BRAKING)
        cat[mask & (interacting | lead)] = _CATS.index(category)
    return cat
