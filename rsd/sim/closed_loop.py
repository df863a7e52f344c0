"""Closed-loop driving: a planner drives a seeded episode; what happened is logged.

A :class:`Planner` sees the live :class:`~rsd.scene.Frame` (past context, no future, the
driving command) and returns a :class:`PlanOutput`: ``(T, 2)`` waypoints in the ego frame at
0.5 s steps (and optionally its risk map). The :class:`~rsd.sim.controller.TrajectoryController`
tracks the plan at 10 Hz; the planner is asked again every ``replan_s`` (0.5 s by default).

Definitions (what :class:`~rsd.sim.episode_log.EpisodeLog` records and
:mod:`rsd.metrics.driving` scores):

* **Command** (:func:`~rsd.sim.route.route_command`, the one definition the recorder's
  training labels use too): the privileged expert's lane choice runs in shadow (it never
  drives): ``TURN_LEFT``/``TURN_RIGHT`` when the route's heading turns by more than
  ``TURN_YAW`` (0.6 rad) over the distance ``max(v, 5 m/s) x 3 s`` ahead,
  ``CHANGE_LEFT``/``CHANGE_RIGHT`` while the lane it wants differs from the ego's, else
  ``KEEP_LANE``.
* **Route completion** (0-100): on roundabouts and intersections the route is the centreline of
  the ego's lane route from its start to the goal (:func:`~rsd.sim.route.goal_route`); on open
  roads (highway, merge) it is the path the privileged expert drives on the same scenario and
  seed ("as far as the expert gets in the duration"; the expert itself scores 100 there by
  definition). Progress is the ego's projection onto the route (monotone, only while within
  ``ROUTE_TOLERANCE`` m of it); completion = ``100 * min(progress / route length, 1)``, and 100
  once the goal is reached.
* **Infractions** (time, type): ``vehicle_collision`` and ``offroad`` end the episode;
  ``stuck`` (slower than 0.3 m/s for ``STUCK_S`` s) ends it too; ``timeout`` (goal scenarios:
  the duration ran out before the goal). ``offroad`` records the share of the route driven off
  the road (the last step); the Driving Score factors are in :mod:`rsd.metrics.driving`.
* Per step the log keeps the ego's world-up pose, speed, route progress and the mean speed of
  the other vehicles within ``NEARBY_M`` m (NaN if none), for comfort and efficiency.

Seeds: training data uses seeds ``0..N-1`` (``rsd generate``); driving evaluation starts at
``EVAL_SEED`` = 10 000 so that the two never overlap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from rsd.scene import KEYFRAME_DT, Frame
from rsd.sim.controller import TrajectoryController, ego_pose, steps_per_replan
from rsd.sim.episode import make_episode
from rsd.sim.episode_log import EpisodeLog, outcome_of
from rsd.sim.planners import (  # noqa: F401 (re-exported: the closed-loop API in one place)
    ExpertPlanner,
    ExpertRecipe,
    Planner,
    PlannerRecipe,
    PlanOutput,
)
from rsd.sim.recorder import KEY_EVERY, PAST_STEPS, AgentInfo, Snapshot, live_frame, snapshot
from rsd.sim.rollout_video import write_gif
from rsd.sim.route import (  # noqa: F401 (re-exported)
    GOAL_LAYOUTS,
    ROUTE_TOLERANCE,
    RouteCommander,
    RouteProgress,
    goal_route,
    reference_route,
    route_command,
    route_progress,
)
from rsd.sim.route_cache import cached_reference_route
from rsd.sim.spec import EVAL_SEED, load_scenario

NEARBY_M = 50.0
"""Radius (m) of the vehicles whose mean speed efficiency compares with."""
STUCK_S = 20.0
"""An ego slower than ``STUCK_SPEED`` for this long is stuck (the episode ends)."""
STUCK_SPEED = 0.3
SPARSE_SNAPSHOTS = True
"""Snapshot only the steps a plan reads (every 5th at 2 Hz re-planning); False: every step, as
before (the same logs, slower: a test compares the two)."""


# -- one episode ----------------------------------------------------------------------------


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


class _EpisodeRun:
    """One closed-loop episode in progress: the planner, the controller tracking its plan,
    the route, the recent snapshots and the log being filled."""

    def __init__(
        self,
        ep: Any,
        planner: Planner,
        scenario: str,
        seed: int,
        replan_s: float,
        name: str,
        route_cache: str | None = None,
    ) -> None:
        self.ep, self.planner = ep, planner
        self.direct = isinstance(planner, ExpertPlanner)  # the expert acts itself
        # the expert that drives states its own intent; a model is told the shadow expert's
        self.commander = RouteCommander(ep, planner.expert if self.direct else None)
        if ep.layout in GOAL_LAYOUTS or self.direct:
            self.route = route_progress(ep, scenario, seed, self.direct)
        else:  # the expert's drive of this scenario and seed (route_progress's), maybe on disk
            self.route = RouteProgress(cached_reference_route(scenario, seed, route_cache))
        self.ctl = TrajectoryController()
        self.every = steps_per_replan(replan_s)
        # A plan at step r reads the snapshots of steps r, r - 5, ..., r - 25: only steps that
        # are multiples of gcd(every, KEY_EVERY) are ever read (every 5th at 2 Hz re-planning)
        self.snap_every = math.gcd(self.every, KEY_EVERY) if SPARSE_SNAPSHOTS else 1
        self.history = PAST_STEPS * KEY_EVERY
        self.infos: dict[int, AgentInfo] = {}
        self.snaps: dict[int, Snapshot] = {}  # by step, the last ``history`` steps' only
        self.log = EpisodeLog(
            ep.spec.name, ep.spec.skill.name.lower(), int(seed), name, "", 0, 0, 0, False, 0
        )
        self.slow_since: float | None = None  # since when the ego has been (almost) stopped
        self.prev_yaw: float | None = None

    def observe(self) -> np.ndarray:
        """Snapshot the episode now, log the ego and advance the route; the ego's pose."""
        ep, log = self.ep, self.log
        now = ep.step_count
        if now % self.snap_every == 0:
            self.snaps[now] = snapshot(ep, self.infos, self.prev_yaw)
            self.snaps.pop(now - self.history - self.snap_every, None)
        pose = ego_pose(ep.ego)
        log.t.append(round(ep.t, 3))
        log.x.append(float(pose[0]))
        log.y.append(float(pose[1]))
        log.yaw.append(float(pose[2]))
        log.speed.append(float(ep.ego.speed))
        log.nearby_speed.append(_nearby_speed(ep))
        if self.route is not None:
            self.route.update(pose[:2])
            log.route_progress.append(float(self.route.progress))
        return pose

    def stuck(self) -> bool:
        """Whether the ego has been slower than ``STUCK_SPEED`` for ``STUCK_S`` (logged)."""
        ep = self.ep
        if ep.ego.speed >= STUCK_SPEED:
            self.slow_since = None
        elif self.slow_since is None:
            self.slow_since = ep.t
        if self.slow_since is not None and ep.t - self.slow_since >= STUCK_S:
            self.log.infractions.append({"t": ep.t, "type": "stuck", "agent": None})
            return True
        return False

    def replan(self, pose: np.ndarray) -> tuple[Frame, PlanOutput]:
        """Ask the planner for a new plan on the live frame and hand it to the controller."""
        command, route = self.commander.guidance()
        now = self.ep.step_count
        steps = range(now - self.history, now + 1, KEY_EVERY)  # oldest first, up to now
        snaps = [self.snaps[k] for k in steps if k in self.snaps]
        frame = live_frame(self.ep, snaps, self.infos, command, route)
        out = self.planner.plan(frame)
        self.ctl.set_plan(out.waypoints, pose, self.ep.t, float(self.ep.ego.speed))
        return frame, out

    def step(self, pose: np.ndarray) -> None:
        ep = self.ep
        self.prev_yaw = float(pose[2])
        tick = getattr(self.planner, "tick", None)
        if tick is not None:  # a planner that follows the episode every step (tracked expert)
            tick()
        accel, steer = self.planner.act() if self.direct else self.ctl.act_on(ep.ego, ep.t)
        ep.step(accel, steer)

    def finish(self) -> EpisodeLog:
        """Fill in the outcome, infractions and route completion of the ended episode."""
        ep, log, route = self.ep, self.log, self.route
        if ep.crashed:
            log.infractions.append(
                {"t": ep.t, "type": "vehicle_collision", "agent": _collision_partner(ep)}
            )
        elif ep.offroad:  # ends the episode: the last step is the distance driven off the road
            seg = np.hypot(np.diff(log.x), np.diff(log.y))
            length = route.length if route is not None else float(seg.sum())
            pct = 100.0 * float(seg[-1:].sum()) / max(length, 1e-6)
            log.infractions.append(
                {"t": ep.t, "type": "offroad", "agent": None, "percentage": min(pct, 100.0)}
            )
        if not log.infractions and ep.layout in GOAL_LAYOUTS and not ep.reached_goal:
            log.infractions.append({"t": ep.t, "type": "timeout", "agent": None})
        log.reached_goal = bool(ep.reached_goal)
        log.duration = ep.t
        if route is None:  # the expert drives the reference route itself
            seg = np.hypot(np.diff(log.x), np.diff(log.y))
            log.route_length = log.progress = float(seg.sum())
            log.route_progress = [0.0, *np.cumsum(seg).tolist()]
            log.route_completion = 100.0
        else:
            log.route_length, log.progress = route.length, route.progress
            log.route_completion = 100.0 * min(route.progress / max(route.length, 1e-6), 1.0)
        if ep.reached_goal:
            log.route_completion = 100.0
        log.outcome = outcome_of(log)
        return log


def run_episode(
    scenario: str,
    seed: int,
    planner_factory: Callable[[Any], Planner],
    replan_s: float = KEYFRAME_DT,
    planner_name: str = "",
    on_plan: Callable[[Frame, PlanOutput], None] | None = None,
    route_cache: str | None = None,
) -> EpisodeLog:
    """Drive ``scenario`` (a name or YAML path) with seed ``seed`` with the planner that
    ``planner_factory(episode)`` returns; deterministic for a given seed and planner.
    ``on_plan(frame, plan)`` is called at every re-plan (e.g. to record a video).
    ``route_cache``: a directory where the expert's reference routes of open-road scenarios
    are kept (:mod:`rsd.sim.route_cache`; the same logs, each route driven once)."""
    t0 = time.perf_counter()
    ep = make_episode(scenario, seed)
    try:
        run = _EpisodeRun(
            ep, planner_factory(ep), scenario, seed, replan_s, planner_name, route_cache
        )
        while True:
            pose = run.observe()
            if ep.done or run.stuck():
                break
            if ep.step_count % run.every == 0:
                frame, out = run.replan(pose)
                if on_plan is not None:
                    on_plan(frame, out)
            run.step(pose)
        log = run.finish()
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
    recipe: PlannerRecipe
    video: str | None = None
    """GIF path to write for this episode, if any."""
    route_cache: str | None = None


def _run_job(job: _Job) -> EpisodeLog:
    frames: list = []
    on_plan = (lambda f, p: frames.append((f, p))) if job.video else None
    r = job.recipe
    log = run_episode(
        job.scenario, job.seed, r.factory(), r.replan_s, r.name, on_plan, job.route_cache
    )
    if job.video:
        write_gif(frames, log, job.video)
    return log


def drive(
    scenarios: list[str],
    episodes: int,
    seed: int = EVAL_SEED,
    workers: int = 1,
    recipe: PlannerRecipe | None = None,
    videos: dict[str, str] | None = None,
    progress: bool = True,
    route_cache: str | None = None,
) -> list[EpisodeLog]:
    """Drive ``episodes`` seeds (from ``seed``) of every scenario with the planner of
    ``recipe`` (default: the expert; a model's is :class:`rsd.policy.PlannerSpec`) over
    ``workers`` processes, each set up by ``recipe.init_worker``; logs come back in
    (scenario, seed) order. ``videos`` maps episode ids (``"highway-10003"``) to GIF paths;
    ``route_cache``: see :func:`run_episode`."""
    recipe = recipe or ExpertRecipe()
    videos = videos or {}
    jobs = [
        _Job(s, k, recipe, videos.get(f"{_name(s)}-{k:05d}"), route_cache)
        for s, k in episode_pairs(scenarios, episodes, seed)
    ]
    logs: list[EpisodeLog] = []
    with tqdm(total=len(jobs), unit="ep", desc="drive", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                logs.append(_run_job(job))
                bar.update()
        else:
            with ProcessPoolExecutor(workers, initializer=recipe.init_worker) as pool:
                for log in pool.map(_run_job, jobs):
                    logs.append(log)
                    bar.update()
    return logs


def _name(scenario: str) -> str:
    """The spec name of a built-in name or a YAML path."""
    return load_scenario(scenario).name
