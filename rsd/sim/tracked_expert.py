"""The privileged expert's plan, tracked by the controller: the ceiling of any imitator.

A learned planner is trained to output the expert's next 3 s (the recorder's label); in closed
loop the :class:`~rsd.sim.controller.TrajectoryController` tracks what it outputs, re-planned
every 0.5 s. :class:`TrackedExpertPlanner` outputs exactly that label, computed live: at each
re-plan a ``copy.deepcopy`` of the episode and of the expert is driven by the expert for the
horizon and its ego positions become the plan. A student that imitated its labels perfectly
would drive like this planner, so its closed-loop scores bound what imitation can reach with
this controller and re-planning rate (``rsd drive --planner expert_plan``), and the gap to the
expert driving itself (``--planner expert``) is the controller's share of any failure.

The expert runs alongside every step (:meth:`tick`), as it does for DAgger labels, so its lane
choice and comfort state follow the episode. Near the end of an episode, where the copy runs
out of time before the horizon, the plan is extended at its last velocity.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame
from rsd.sim.controller import ego_pose
from rsd.sim.convert import EgoTransform, to_up
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.planners import PlanOutput
from rsd.sim.recorder import KEY_EVERY


def expert_path(ep: Any, expert: PrivilegedExpert) -> np.ndarray:
    """(FUTURE_STEPS, 2) world-up ego positions of a copy of ``ep`` driven by a copy of
    ``expert`` at each keyframe of the horizon; where the copy ends first (its duration, a
    crash, off the road) the rest continues at the last keyframe velocity (from the current
    position if no keyframe was reached)."""
    cp, cx = copy.deepcopy((ep, expert))
    pts: list[np.ndarray] = []
    while len(pts) < FUTURE_STEPS and not cp.done:
        for _ in range(KEY_EVERY):
            if cp.done:
                break
            cp.step(*cx.act())
        else:
            pts.append(to_up(cp.ego.position))
    start = to_up(ep.ego.position)
    if not pts:  # no keyframe: straight on at the current speed
        v = float(ep.ego.speed) * KEYFRAME_DT
        heading = ego_pose(ep.ego)[2]
        step = v * np.array([np.cos(heading), np.sin(heading)])
        return start + step * np.arange(1, FUTURE_STEPS + 1)[:, None]
    while len(pts) < FUTURE_STEPS:
        prev = pts[-2] if len(pts) > 1 else start
        pts.append(pts[-1] + (pts[-1] - prev))
    return np.array(pts)


class TrackedExpertPlanner:
    """A :class:`~rsd.sim.planners.Planner` whose plan is the expert's own 3 s future from the
    live state (see the module doc). Not a deployable planner: it copies the simulator."""

    def __init__(self, episode: Any) -> None:
        self.ep = episode
        self.expert = PrivilegedExpert(episode)

    def tick(self) -> None:
        """Called by the closed loop every simulation step: the expert's state follows."""
        self.expert.act()

    def plan(self, frame: Frame) -> PlanOutput:
        tf = EgoTransform(*ego_pose(self.ep.ego))
        return PlanOutput(tf.points(expert_path(self.ep, self.expert)))
