"""The route of an episode: the driving command it implies and the ego's progress along it.

The **driving command** has one definition, :func:`route_command`, used by the recorder (the
training label) and by the closed loop (the planner's input) alike: the privileged expert's
lane choice on the route (:meth:`~rsd.sim.expert.PrivilegedExpert.choose_lane`) decides it
from the state now, never from what happens later. Route progress definitions are in
:mod:`rsd.sim.closed_loop`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Command
from rsd.sim.controller import ego_pose
from rsd.sim.convert import lane_relation, to_up
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.layouts import GOAL_DISTANCE

TURN_YAW = 0.6
"""Heading change (rad) of the route over the look-ahead above which the command is a turn."""
GOAL_LAYOUTS = ("roundabout", "intersection")
"""Layouts whose episodes end at a goal; their route is the lane route to it."""
ROUTE_TOLERANCE = 8.0
"""The ego earns route progress only within this distance (m) of the route."""
COMMAND_MIN_SPEED = 5.0
"""The turn look-ahead is ``max(v, COMMAND_MIN_SPEED)`` m/s x the 3 s future."""


ROUTE_AHEAD = 64.0
"""Length (m) of the route ahead handed to the planner (:attr:`rsd.scene.Frame.route`): past the
front edge of the BEV grid (56 m)."""
ROUTE_STEP = 2
"""Spacing (m) of the route's points (whole metres: every other point of the 1 m walk)."""


def route_command(episode: Any, expert: PrivilegedExpert) -> Command:
    """The driving command of ``episode`` now, as ``expert`` sees its route
    (:func:`route_guidance`'s command)."""
    return route_guidance(episode, expert)[0]


def route_guidance(episode: Any, expert: PrivilegedExpert) -> tuple[Command, np.ndarray]:
    """The driving command of ``episode`` now and the route ahead, as ``expert`` sees them.

    ``expert`` first updates its lane choice (:meth:`PrivilegedExpert.choose_lane`, which
    its ``act`` repeats with the same result on the same state). The **route** is the
    centreline of the lane the expert wants (its target lane, so a lane change it has decided
    on shows), followed along the episode's route through junctions for ``ROUTE_AHEAD`` m
    from the ego's projection, every ``ROUTE_STEP`` m: ``(N, 2)`` world-up points (what a
    navigation system hands a car). The **command**, in this order:

    * ``TURN_LEFT`` / ``TURN_RIGHT``: the heading of that path ``max(v, COMMAND_MIN_SPEED) x
      3 s`` metres ahead of the ego differs from the ego's heading by more than ``TURN_YAW``
      (counter-clockwise positive: left);
    * ``CHANGE_LEFT`` / ``CHANGE_RIGHT``: the lane the expert wants is another lane of the
      ego's road (lane indices grow to the right);
    * else ``KEEP_LANE``.

    Only the present state counts (the route ahead, the expert's lane choice): a car waiting
    at a junction before a turn is told TURN, in training and in closed loop alike.
    """
    ego = episode.ego
    expert.choose_lane()
    dist = max(float(ego.speed), COMMAND_MIN_SPEED) * FUTURE_STEPS * KEYFRAME_DT
    # one walk along the route at 1 m: the command reads it to ``dist``, the route every 2 m
    full = expert.lane_path(expert.target, max(dist, ROUTE_AHEAD))
    path = full[: int(dist) + 1]
    ahead = full[: int(ROUTE_AHEAD) + 1 : round(ROUTE_STEP)]
    route = to_up(ahead[:, :2]) if len(ahead) else np.zeros((0, 2))
    if len(path) >= 2:
        dyaw = -float(np.angle(np.exp(1j * (path[-1, 2] - ego.heading))))  # to counter-cw
        if abs(dyaw) > TURN_YAW:
            return (Command.TURN_LEFT if dyaw > 0 else Command.TURN_RIGHT), route
    rel = lane_relation(tuple(ego.lane_index), expert.target)
    if rel:
        return (Command.CHANGE_LEFT if rel > 0 else Command.CHANGE_RIGHT), route
    return Command.KEEP_LANE, route


class RouteCommander:
    """The driving command of a closed-loop episode: :func:`route_command` with a privileged
    expert run in shadow (it never drives), or with ``expert`` when one is given (e.g. the
    expert that drives, or a copy of one)."""

    def __init__(self, episode: Any, expert: PrivilegedExpert | None = None) -> None:
        self.ep = episode
        self.shadow = expert if expert is not None else PrivilegedExpert(episode)

    def guidance(self) -> tuple[Command, np.ndarray]:
        """The command and the route ahead (world-up), :func:`route_guidance`."""
        return route_guidance(self.ep, self.shadow)


class RouteProgress:
    """Monotone progress (m) of a point along a reference path (N, 2)."""

    def __init__(self, path: np.ndarray) -> None:
        self.path = np.asarray(path, dtype=np.float64).reshape(-1, 2)
        seg = np.diff(self.path, axis=0)
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        self.length = float(self.cum[-1])
        self.progress = 0.0
        self._i = 0

    def update(self, xy: np.ndarray) -> float:
        n = len(self.path)
        if n < 2:
            return self.progress
        lo, hi = max(self._i - 50, 0), min(self._i + 400, n - 1)
        a, b = self.path[lo:hi], self.path[lo + 1 : hi + 1]
        seg = b - a
        l2 = np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-12)
        u = np.clip(np.einsum("ij,ij->i", xy - a, seg) / l2, 0.0, 1.0)
        d = np.hypot(*(a + u[:, None] * seg - xy).T)
        k = int(np.argmin(d))
        if d[k] <= ROUTE_TOLERANCE:
            self._i = lo + k
            s = self.cum[lo + k] + u[k] * (self.cum[lo + k + 1] - self.cum[lo + k])
            self.progress = max(self.progress, float(s))
        return self.progress


@functools.lru_cache(maxsize=64)
def reference_route(scenario: str, seed: int) -> np.ndarray:
    """(N, 2) world-up positions of the privileged expert driving ``scenario`` / ``seed``."""
    ep = make_episode(scenario, seed)
    try:
        expert = PrivilegedExpert(ep)
        pts = [ego_pose(ep.ego)[:2]]
        while not ep.done:
            ep.step(*expert.act())
            pts.append(ego_pose(ep.ego)[:2])
        return np.array(pts)
    finally:
        ep.close()


def goal_route(ep: Any) -> np.ndarray:
    """(N, 2) world-up centreline of ``ep``'s route from the ego's start to its goal
    (``GOAL_DISTANCE`` m down the exit road), 1 m apart: the route of goal scenarios."""
    path = PrivilegedExpert(ep).lane_path(tuple(ep.ego.lane_index), 1000.0)[:, :2]
    fr, to, i = ep.route[-1]
    goal = ep.road.network.get_lane((fr, to, i or 0)).position(GOAL_DISTANCE, 0.0)
    d = np.hypot(*(path - goal).T)
    near = np.flatnonzero(d < 3.0)  # the first pass: the road network may loop back
    end = int(near[0]) if near.size else int(np.argmin(d))
    return to_up(path[: end + 1])


def route_progress(ep: Any, scenario: str, seed: int, direct: bool) -> RouteProgress | None:
    """The route ``ep``'s progress is measured on: the goal route of goal scenarios, else the
    expert's reference drive; None when the expert drives (``direct``) an open road itself."""
    if ep.layout in GOAL_LAYOUTS:
        return RouteProgress(goal_route(ep))
    return None if direct else RouteProgress(reference_route(scenario, seed))
