"""Closed-loop driving: a planner drives a seeded episode; what happened is logged.

A :class:`Planner` sees the live :class:`~rsd.scene.Frame` (past context, no future, the
driving command) and returns a :class:`PlanOutput`: ``(T, 2)`` waypoints in the ego frame at
0.5 s steps (and optionally its risk map). The :class:`~rsd.sim.controller.TrajectoryController`
tracks the plan at 10 Hz; the planner is asked again every ``replan_s`` (0.5 s by default).

Definitions (what :class:`EpisodeLog` records and :mod:`rsd.metrics.driving` scores):

* **Command** (:class:`RouteCommander`): the privileged expert's lane choice runs in shadow
  (it never drives): ``CHANGE_LEFT``/``CHANGE_RIGHT`` while the lane it wants differs from the
  ego's, ``TURN_LEFT``/``TURN_RIGHT`` when the route's heading turns by more than
  ``TURN_YAW`` (0.6 rad) over the distance ``max(v, 5 m/s) x 3 s`` ahead, else ``KEEP_LANE`` -
  the recorder's rule, applied to the route instead of the expert's recorded future.
* **Route completion** (0-100): on roundabouts and intersections the route is the centreline
  of the ego's lane route from its start to the goal (:func:`goal_route`); on open roads
  (highway, merge) it is the path the privileged expert drives on the same scenario and seed
  ("as far as the expert gets in the duration"; the expert itself scores 100 there by
  definition). Progress is the ego's projection onto the route (monotone, only while within
  ``ROUTE_TOLERANCE`` m of it); completion = ``100 * min(progress / route length, 1)``, and
  100 once the goal is reached.
* **Infractions** (time, type): ``vehicle_collision`` and ``offroad`` end the episode;
  ``stuck`` (slower than 0.3 m/s for ``STUCK_S`` s) ends it too; ``timeout`` (goal scenarios:
  the duration ran out before the goal). Only the first two carry a penalty (see
  :mod:`rsd.metrics.driving`).
* Per step the log keeps the ego's world-up pose, speed and the mean speed of the other
  vehicles within ``NEARBY_M`` m (NaN if none), for comfort and efficiency.

Seeds: training data uses seeds ``0..N-1`` (``rsd generate``); driving evaluation starts at
``EVAL_SEED`` = 10 000 so that the two never overlap.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Command, Frame
from rsd.sim.controller import TrajectoryController, ego_pose, steps_per_replan
from rsd.sim.planners import (  # noqa: F401 (re-exported: the closed-loop API in one place)
    ExpertPlanner,
    ModelPlanner,
    Planner,
    PlannerSpec,
    PlanOutput,
    load_planner,
    planner_factory,
    tiny_model_planner,
)
from rsd.sim.recorder import KEY_EVERY, PAST_STEPS, TURN_YAW, _snapshot, live_frame

EVAL_SEED = 10_000
"""First seed of driving evaluation; training uses ``0..N-1``."""
NEARBY_M = 50.0
"""Radius (m) of the vehicles whose mean speed efficiency compares with."""
STUCK_S = 20.0
"""An ego slower than ``STUCK_SPEED`` for this long is stuck (the episode ends)."""
STUCK_SPEED = 0.3
GOAL_LAYOUTS = ("roundabout", "intersection")
"""Layouts whose episodes end at a goal; their route is the lane route to it."""
ROUTE_TOLERANCE = 8.0
"""The ego earns route progress only within this distance (m) of the route."""


# -- the route: command and progress ------------------------------------------------------


class RouteCommander:
    """The driving command from the route (see the module doc): the expert's lane choice and
    path, run in shadow."""

    def __init__(self, episode: Any) -> None:
        from rsd.sim.expert import PrivilegedExpert

        self.ep = episode
        self.shadow = PrivilegedExpert(episode)

    def command(self) -> Command:
        from rsd.sim.convert import lane_relation

        sh, ego = self.shadow, self.ep.ego
        sh._update_target()
        sh._maybe_change_lane()
        dist = max(float(ego.speed), 5.0) * FUTURE_STEPS * KEYFRAME_DT
        path = sh._path(sh.target, dist)
        if len(path) >= 2:
            dyaw = -float(np.angle(np.exp(1j * (path[-1, 2] - ego.heading))))  # to counter-cw
            if abs(dyaw) > TURN_YAW:
                return Command.TURN_LEFT if dyaw > 0 else Command.TURN_RIGHT
        rel = lane_relation(tuple(ego.lane_index), sh.target)
        if rel:
            return Command.CHANGE_LEFT if rel > 0 else Command.CHANGE_RIGHT
        return Command.KEEP_LANE


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
    from rsd.sim.episode import make_episode
    from rsd.sim.expert import PrivilegedExpert

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
    from rsd.sim.convert import to_up
    from rsd.sim.expert import PrivilegedExpert
    from rsd.sim.layouts import GOAL_DISTANCE

    path = PrivilegedExpert(ep)._path(tuple(ep.ego.lane_index), 1000.0)[:, :2]
    fr, to, i = ep.route[-1]
    goal = ep.road.network.get_lane((fr, to, i or 0)).position(GOAL_DISTANCE, 0.0)
    d = np.hypot(*(path - goal).T)
    near = np.flatnonzero(d < 3.0)  # the first pass: the road network may loop back
    end = int(near[0]) if near.size else int(np.argmin(d))
    return to_up(path[: end + 1])


# -- one episode ----------------------------------------------------------------------------


@dataclass
class EpisodeLog:
    """Everything :mod:`rsd.metrics.driving` needs about one closed-loop episode (JSON-able)."""

    scenario: str
    skill: str
    seed: int
    planner: str
    outcome: str
    """``success`` | ``vehicle_collision`` | ``offroad`` | ``stuck`` | ``timeout``."""
    route_completion: float
    """0-100, see the module doc."""
    route_length: float
    progress: float
    reached_goal: bool
    duration: float
    """Simulated seconds."""
    infractions: list[dict] = field(default_factory=list)
    """``{"t": s, "type": ..., "agent": id or None}``."""
    t: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    nearby_speed: list[float] = field(default_factory=list)
    """Mean speed of the other vehicles within ``NEARBY_M`` m (NaN when there is none)."""
    wall_s: float = 0.0

    @property
    def episode_id(self) -> str:
        return f"{self.scenario}-{self.seed:05d}"

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["nearby_speed"] = [None if np.isnan(v) else v for v in self.nearby_speed]
        d.pop("wall_s")  # timing is not part of the (deterministic) log
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EpisodeLog:
        d = json.loads(text)
        d["nearby_speed"] = [np.nan if v is None else v for v in d["nearby_speed"]]
        return cls(**d)


def _collision_partner(ep: Any) -> int | None:
    best, best_d = None, np.inf
    for a in ep.agents():
        if getattr(a.vehicle, "crashed", False):
            d = float(np.hypot(*(a.vehicle.position - ep.ego.position)))
            if d < best_d:
                best, best_d = a.id, d
    return best


def _nearby_speed(ep: Any) -> float:
    speeds = [
        float(v.speed)
        for v in ep.road.vehicles
        if v is not ep.ego and np.hypot(*(v.position - ep.ego.position)) <= NEARBY_M
    ]
    return float(np.mean(speeds)) if speeds else float("nan")


def run_episode(
    scenario: str,
    seed: int,
    planner_factory: Callable[[Any], Planner],
    replan_s: float = KEYFRAME_DT,
    planner_name: str = "",
    on_plan: Callable[[Frame, PlanOutput], None] | None = None,
) -> EpisodeLog:
    """Drive ``scenario`` (a name or YAML path) with seed ``seed`` with the planner that
    ``planner_factory(episode)`` returns; deterministic for a given seed and planner.
    ``on_plan(frame, plan)`` is called at every re-plan (e.g. to record a video)."""
    import time

    from rsd.sim.episode import make_episode

    t0 = time.perf_counter()
    ep = make_episode(scenario, seed)
    try:
        planner = planner_factory(ep)
        direct = isinstance(planner, ExpertPlanner)
        commander = None if direct else RouteCommander(ep)
        if ep.layout in GOAL_LAYOUTS:
            route = RouteProgress(goal_route(ep))
        else:
            route = None if direct else RouteProgress(reference_route(scenario, seed))
        ctl = TrajectoryController()
        every = steps_per_replan(replan_s)
        history = PAST_STEPS * KEY_EVERY + 1
        infos: dict = {}
        snaps: list = []
        log = EpisodeLog(
            ep.spec.name, ep.spec.skill.name.lower(), int(seed), planner_name, "", 0, 0, 0, False, 0
        )
        slow_since: float | None = None  # since when the ego has been (almost) stopped
        prev_yaw: float | None = None
        while True:
            snaps.append(_snapshot(ep, infos, prev_yaw))
            snaps = snaps[-history:]
            pose = ego_pose(ep.ego)
            log.t.append(round(ep.t, 3))
            log.x.append(float(pose[0]))
            log.y.append(float(pose[1]))
            log.yaw.append(float(pose[2]))
            log.speed.append(float(ep.ego.speed))
            log.nearby_speed.append(_nearby_speed(ep))
            if route is not None:
                route.update(pose[:2])
            if ep.done:
                break
            if ep.ego.speed >= STUCK_SPEED:
                slow_since = None
            elif slow_since is None:
                slow_since = ep.t
            if slow_since is not None and ep.t - slow_since >= STUCK_S:
                log.infractions.append({"t": ep.t, "type": "stuck", "agent": None})
                break
            if ep.step_count % every == 0:
                command = Command.KEEP_LANE if commander is None else commander.command()
                frame = live_frame(ep, snaps[::-KEY_EVERY][::-1], infos, command)
                out = planner.plan(frame)
                ctl.set_plan(out.waypoints, pose, ep.t)
                if on_plan is not None:
                    on_plan(frame, out)
            prev_yaw = float(pose[2])
            accel, steer = planner.act() if direct else ctl.act_on(ep.ego, ep.t)
            ep.step(accel, steer)
        if ep.crashed:
            log.infractions.append(
                {"t": ep.t, "type": "vehicle_collision", "agent": _collision_partner(ep)}
            )
        elif ep.offroad:
            log.infractions.append({"t": ep.t, "type": "offroad", "agent": None})
        if not log.infractions and ep.layout in GOAL_LAYOUTS and not ep.reached_goal:
            log.infractions.append({"t": ep.t, "type": "timeout", "agent": None})
        log.outcome = log.infractions[0]["type"] if log.infractions else "success"
        log.reached_goal = bool(ep.reached_goal)
        log.duration = ep.t
        if route is None:  # the expert drives the reference route itself
            seg = np.hypot(np.diff(log.x), np.diff(log.y))
            log.route_length = log.progress = float(seg.sum())
            log.route_completion = 100.0
        else:
            log.route_length, log.progress = route.length, route.progress
            log.route_completion = 100.0 * min(route.progress / max(route.length, 1e-6), 1.0)
        if ep.reached_goal:
            log.route_completion = 100.0
        log.wall_s = time.perf_counter() - t0
        return log
    finally:
        ep.close()


def episode_pairs(
    scenarios: list[str], episodes: int, seed: int = EVAL_SEED
) -> list[tuple[str, int]]:
    """(scenario, seed) for ``episodes`` seeds from ``seed`` per scenario."""
    return [(s, seed + i) for s in scenarios for i in range(episodes)]


# -- many episodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    scenario: str
    seed: int
    spec: PlannerSpec
    video: str | None = None
    """GIF path to write for this episode, if any."""


def _run_job(job: _Job) -> EpisodeLog:
    frames: list = []
    on_plan = (lambda f, p: frames.append((f, p))) if job.video else None
    name = job.spec.kind if job.spec.kind != "model" else str(job.spec.run_dir)
    log = run_episode(
        job.scenario, job.seed, planner_factory(job.spec), job.spec.replan_s, name, on_plan
    )
    if job.video:
        from rsd.sim.rollout_video import write_gif

        write_gif(frames, log, job.video)
    return log


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def drive(
    scenarios: list[str],
    episodes: int,
    seed: int = EVAL_SEED,
    workers: int = 1,
    spec: PlannerSpec | None = None,
    videos: dict[str, str] | None = None,
    progress: bool = True,
) -> list[EpisodeLog]:
    """Drive ``episodes`` seeds (from ``seed``) of every scenario with the planner of ``spec``
    (default: the expert) over ``workers`` processes; logs come back in (scenario, seed)
    order. ``videos`` maps episode ids (``"highway-10003"``) to GIF paths to write."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    spec = spec or PlannerSpec()
    videos = videos or {}
    jobs = [
        _Job(s, k, spec, videos.get(f"{_name(s)}-{k:05d}"))
        for s, k in episode_pairs(scenarios, episodes, seed)
    ]
    logs: list[EpisodeLog] = []
    with tqdm(total=len(jobs), unit="ep", desc="drive", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                logs.append(_run_job(job))
                bar.update()
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
                for log in pool.map(_run_job, jobs):
                    logs.append(log)
                    bar.update()
    return logs


def _name(scenario: str) -> str:
    """The spec name of a built-in name or a YAML path."""
    from rsd.sim.spec import load_scenario

    return load_scenario(scenario).name
