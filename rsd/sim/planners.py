"""Planners for closed-loop driving: the :class:`Planner` protocol and the expert.

A planner sees the live :class:`~rsd.scene.Frame` (past context, no future, the driving
command) and returns a :class:`PlanOutput`: ``(T, 2)`` waypoints in the ego frame at 0.5 s
steps, and its risk-attention map when it has one. :class:`ExpertPlanner` is the privileged
expert (the reference). A :class:`PlannerRecipe` is the picklable recipe that worker processes
build their planner from; :class:`ExpertRecipe` is the expert's. Planners that run a trained
model live outside the simulator, in :mod:`rsd.policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame
from rsd.sim.convert import EgoTransform, to_up
from rsd.sim.expert import PrivilegedExpert


@dataclass
class PlanOutput:
    waypoints: np.ndarray
    """(T, 2) x, y in the ego frame at the plan's time, 0.5 s apart."""
    risk_map: np.ndarray | None = None
    """(H, W) risk-attention map on the model's BEV grid, if it has one."""


class Planner(Protocol):
    def plan(self, frame: Frame) -> PlanOutput: ...


class PlannerRecipe(Protocol):
    """A picklable description of a planner: what :func:`rsd.sim.closed_loop.drive` sends to
    its worker processes, each of which builds its own planner from it."""

    @property
    def name(self) -> str:
        """The planner's name in the episode logs."""
        ...

    @property
    def replan_s(self) -> float:
        """Seconds between two plans."""
        ...

    def factory(self) -> Callable[[Any], Planner]:
        """``episode -> planner`` (called once per episode)."""
        ...

    def init_worker(self) -> None:
        """Per-process set-up of a worker process (e.g. thread counts)."""
        ...


class ExpertPlanner:
    """The privileged expert's own actions (the reference, an upper bound). It drives with
    :meth:`act` every step, bypassing the tracking controller; :meth:`plan` only gives its
    intent for display: its target lane's centreline at the current speed."""

    def __init__(self, episode: Any) -> None:
        self.ep = episode
        self.expert = PrivilegedExpert(episode)

    def act(self) -> tuple[float, float]:
        return self.expert.act()

    def plan(self, frame: Frame) -> PlanOutput:
        v = max(float(self.ep.ego.speed), 1.0)
        return PlanOutput(_route_ahead(self.expert, frame, v))


@dataclass(frozen=True)
class ExpertRecipe:
    """The recipe of :class:`ExpertPlanner` (the default planner of the closed loop)."""

    replan_s: float = KEYFRAME_DT

    @property
    def name(self) -> str:
        return "expert"

    def factory(self) -> Callable[[Any], Planner]:
        return ExpertPlanner

    def init_worker(self) -> None:
        """Nothing to set up: the expert is plain numpy."""


def _route_ahead(expert: PrivilegedExpert, frame: Frame, speed: float) -> np.ndarray:
    """(T, 2) points of ``expert``'s target path at ``speed`` x 0.5 s steps, ego frame."""
    path = expert.lane_path(expert.target, speed * KEYFRAME_DT * FUTURE_STEPS + 2.0)
    tf = EgoTransform(frame.ego.world_x, frame.ego.world_y, frame.ego.world_yaw)
    if len(path) < 2:
        return np.zeros((FUTURE_STEPS, 2))
    pts = tf.points(to_up(path[:, :2]))
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    want = speed * KEYFRAME_DT * np.arange(1, FUTURE_STEPS + 1)
    return np.column_stack([np.interp(want, s, pts[:, 0]), np.interp(want, s, pts[:, 1])])
