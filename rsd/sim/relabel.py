"""Student rollouts labelled by the privileged expert: the data of a DAgger round.

A :class:`~rsd.sim.planners.Planner` (the student) drives a seeded episode through the
tracking controller, as in the closed loop; in each 0.5 s re-plan period, with probability
``expert_prob`` (a seeded coin) the privileged expert's own control drives instead (the
beta-mixture of DAgger). At every visited keyframe with a full past, the state is labelled by
the expert: a ``copy.deepcopy`` of the episode and of the expert is driven by the expert for
the 3 s horizon, and the Frame of the state gets the copy's future (ego and agents) as its
target. Frames whose expert continuation crashes, leaves the road or ends before 3 s are not
kept (not a target worth imitating, as in the recorder).

The expert runs alongside the student all the time (its ``act`` every step), so its lane
choice and comfort state are those of the episode so far; it also gives the driving command
(:func:`~rsd.sim.route.route_command`, the closed loop's definition). Seeded: the same
(scenario, seed, planner, ``expert_prob``, ``mix_seed``) gives the same frames.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, PAST_STEPS, Frame, frame_id
from rsd.sim.controller import TrajectoryController, ego_pose, steps_per_replan
from rsd.sim.convert import heading_to_up
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.planners import Planner
from rsd.sim.recorder import (
    KEY_EVERY,
    AgentInfo,
    RecordedEpisode,
    Snapshot,
    build_frame,
    episode_outcome,
    live_frame,
    snapshot,
)
from rsd.sim.route import RouteCommander


def expert_future(
    ep: Any, expert: PrivilegedExpert, infos: dict[int, AgentInfo]
) -> list[Snapshot] | None:
    """The next ``FUTURE_STEPS`` keyframe snapshots of a copy of ``ep`` driven by a copy of
    ``expert`` (``ep`` itself is untouched; agents first seen in the copy are added to a copy
    of ``infos``, returned through the snapshots' ids). None if the copy crashes, leaves the
    road or ends first."""
    cp, cx = copy.deepcopy((ep, expert))
    out: list[Snapshot] = []
    while len(out) < FUTURE_STEPS:
        for _ in range(KEY_EVERY):
            if cp.done:
                return None
            prev_yaw = float(heading_to_up(cp.ego.heading))
            cp.step(*cx.act())
        if cp.crashed or cp.offroad:
            return None
        out.append(snapshot(cp, infos, prev_yaw))
    return out


class StudentRollout:
    """One student-driven episode, advanced one 10 Hz step at a time (:meth:`step`), with
    the keyframes labelled so far in :attr:`frames`."""

    def __init__(
        self,
        ep: Any,
        planner: Planner,
        expert_prob: float,
        mix_seed: int,
        tag: str,
        replan_s: float = KEYFRAME_DT,
    ) -> None:
        self.ep, self.planner, self.expert_prob, self.tag = ep, planner, expert_prob, tag
        self.expert = PrivilegedExpert(ep)
        self.commander = RouteCommander(ep, self.expert)
        self.ctl = TrajectoryController()
        self.every = steps_per_replan(replan_s)
        self.rng = np.random.default_rng([int(ep.seed), int(mix_seed)])
        self.infos: dict[int, AgentInfo] = {}
        self.snaps: list[Snapshot] = []
        self.frames: list[Frame] = []
        self.prev_yaw: float | None = None
        self.expert_drives = False
        self.expert_steps = 0

    def observe(self) -> None:
        """At a keyframe: snapshot, command, and the expert's label when the past is full."""
        ep = self.ep
        if ep.step_count % KEY_EVERY:
            return
        snap = snapshot(ep, self.infos, self.prev_yaw)
        snap.command, snap.route = self.commander.guidance()
        self.snaps = [*self.snaps[-PAST_STEPS:], snap]
        if ep.done:
            return
        infos = dict(self.infos)
        fut = expert_future(ep, self.expert, infos)
        if fut is not None:  # from the first keyframe on, as the closed loop plans
            f = build_frame(ep, [*self.snaps, *fut], len(self.snaps) - 1, infos)
            name = f"{ep.spec.name}~{self.tag}" if self.tag else ep.spec.name
            f.frame_id = frame_id(name, ep.seed, snap.step)
            self.frames.append(f)

    def step(self) -> None:
        """Observe, re-plan when due (and toss the mixture's coin), advance one step."""
        ep = self.ep
        self.observe()
        if ep.done:
            return
        if ep.step_count % self.every == 0:
            if ep.step_count % KEY_EVERY == 0:
                cmd, route = self.snaps[-1].command, self.snaps[-1].route
            else:
                cmd, route = self.commander.guidance()
            frame = live_frame(ep, self._context(), self.infos, cmd, route)
            plan = self.planner.plan(frame).waypoints
            self.ctl.set_plan(plan, ego_pose(ep.ego), ep.t, float(ep.ego.speed))
            self.expert_drives = bool(self.rng.random() < self.expert_prob)
        self.prev_yaw = float(heading_to_up(ep.ego.heading))
        accel, steer = self.expert.act()  # always: its state follows the episode
        tick = getattr(self.planner, "tick", None)
        if tick is not None:  # a planner that follows the episode every step (as closed loop)
            tick()
        if not self.expert_drives:
            accel, steer = self.ctl.act_on(ep.ego, ep.t)
        else:
            self.expert_steps += 1
        ep.step(accel, steer)

    def _context(self) -> list[Snapshot]:
        """Keyframe snapshots up to now (the last one is now when on a keyframe)."""
        if self.ep.step_count % KEY_EVERY == 0:
            return self.snaps
        return [*self.snaps, snapshot(self.ep, self.infos, self.prev_yaw)]


def student_episode(
    scenario: Any,
    seed: int,
    planner_factory: Callable[[Any], Planner],
    expert_prob: float = 0.0,
    mix_seed: int = 0,
    tag: str = "dagger",
) -> RecordedEpisode:
    """Drive ``scenario`` / ``seed`` with the student of ``planner_factory`` (mixed with the
    expert, see the module doc) to the end; its expert-labelled keyframes, frame ids
    ``{scenario}~{tag}-{seed}-{step}`` (never those of the expert's own recording)."""
    ep = make_episode(scenario, seed)
    try:
        run = StudentRollout(ep, planner_factory(ep), expert_prob, mix_seed, tag)
        while not ep.done:
            run.step()
        run.observe()
        outcome = {
            **episode_outcome(ep, seed),
            "expert_steps": run.expert_steps,
            "keyframes": len(run.frames),
        }
        return RecordedEpisode(frames=run.frames, outcome=outcome)
    finally:
        ep.close()
