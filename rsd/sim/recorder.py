"""Record expert episodes into keyframes (:class:`rsd.scene.Frame`).

The episode runs at ``SIM_HZ`` (10 Hz); every ``KEYFRAME_DT`` (0.5 s) a light snapshot of
all vehicles is taken. When the episode ends, each keyframe that has a full expert future
(``FUTURE_STEPS``) becomes a Frame, from the first keyframe on (the past of the first two
seconds is partly invalid, as in the closed loop, which plans from the start), with every
pose expressed in the ego frame of that keyframe. Only the ego pose is read at every 10 Hz
step (for its yaw rate), so recording costs little on top of the simulation itself. The
driving command of each keyframe is :func:`rsd.sim.route.route_command` of the state at that
keyframe (the closed loop's definition), with the expert that drives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsd.scene import (
    FUTURE_STEPS,
    KEYFRAME_DT,
    PAST_STEPS,
    SIM_HZ,
    AgentState,
    Command,
    EgoState,
    Frame,
    SkillGroup,
    frame_id,
    wrap_angle,
)
from rsd.sim.convert import (
    REGION,
    EgoTransform,
    heading_to_up,
    lane_id,
    lane_relation,
    lanes_near,
    signed_lane_offset,
    to_up,
)
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.route import route_guidance

KEY_EVERY = round(KEYFRAME_DT * SIM_HZ)
"""Simulation steps between two keyframes."""
CRASH_MARGIN_S = 2.0
"""In a failed episode, keyframes whose future ends less than this before the failure are
dropped: the expert's future there is not a target worth imitating."""


@dataclass
class AgentSnap:
    """One other vehicle at one snapshot (world-up frame)."""

    pose: np.ndarray  # (3,) world-up x, y, yaw
    velocity: np.ndarray  # (2,) world-up
    accel: float
    lane_index: tuple | None


@dataclass
class Snapshot:
    """Everything a Frame needs about one simulation step (world-up frame, SI units)."""

    step: int
    ego_pose: np.ndarray  # (3,)
    ego_speed: float
    ego_accel: float
    ego_yaw_rate: float
    ego_lane_index: tuple | None
    ego_lane_offset: float
    ego_target_speed: float
    ego_position_raw: np.ndarray  # highway-env world position, for the road network
    agents: dict[int, AgentSnap]
    events: list[str]
    command: Command | None = None
    """The driving command at this step (:func:`~rsd.sim.route.route_command`), if taken."""
    route: np.ndarray | None = None
    """(N, 2) world-up route ahead at this step (:func:`~rsd.sim.route.route_guidance`), if
    taken."""


@dataclass
class AgentInfo:
    """The constant attributes of one other vehicle (class, size in m, behaviour)."""

    cls: Any
    length: float
    width: float
    height: float
    behaviour: str


@dataclass
class RecordedEpisode:
    """What one expert episode yields: its keyframes and how it ended."""

    frames: list[Frame]
    outcome: dict = field(default_factory=dict)


def snapshot(ep: Any, infos: dict[int, AgentInfo], prev_ego_yaw: float | None) -> Snapshot:
    """The state of ``ep`` now; ``infos`` gains the agents seen for the first time.
    ``prev_ego_yaw`` (rad, world-up) is the ego's yaw one step ago (None: yaw rate 0)."""
    ego = ep.ego
    ego_yaw = float(heading_to_up(ego.heading))
    yaw_rate = 0.0 if prev_ego_yaw is None else float(wrap_angle(ego_yaw - prev_ego_yaw)) * SIM_HZ
    agents: dict[int, AgentSnap] = {}
    for a in ep.agents():
        v = a.vehicle
        if a.id not in infos:
            infos[a.id] = AgentInfo(a.cls, float(v.LENGTH), float(v.WIDTH), a.height, a.behaviour)
        xy = to_up(v.position)
        yaw = float(heading_to_up(v.heading))
        agents[a.id] = AgentSnap(
            pose=np.array([xy[0], xy[1], yaw]),
            velocity=to_up(v.velocity),
            accel=float(getattr(v, "action", {}).get("acceleration", 0.0)),
            lane_index=getattr(v, "lane_index", None),
        )
    xy = to_up(ego.position)
    lane = ego.lane if getattr(ego, "lane", None) is not None else None
    return Snapshot(
        step=ep.step_count,
        ego_pose=np.array([xy[0], xy[1], ego_yaw]),
        ego_speed=float(ego.speed),
        ego_accel=float(ego.action.get("acceleration", 0.0)),
        ego_yaw_rate=yaw_rate,
        ego_lane_index=getattr(ego, "lane_index", None),
        ego_lane_offset=signed_lane_offset(lane, ego.position) if lane is not None else 0.0,
        ego_target_speed=float(ep.ego_target_speed),
        ego_position_raw=np.array(ego.position, dtype=np.float64),
        agents=agents,
        events=list(ep.active_events()),
    )


def build_frame(
    ep: Any,
    snaps: list[Snapshot],
    k: int,
    infos: dict[int, AgentInfo],
    command: Command | None = None,
    route: np.ndarray | None = None,
) -> Frame:
    """The Frame of keyframe ``snaps[k]``. Past / future keyframes missing from ``snaps`` (at
    the start of an episode, or for a live frame with no future) are zero and invalid;
    ``command`` and ``route`` (world-up) default to those taken with the snapshot."""
    cur = snaps[k]
    tf = EgoTransform(*cur.ego_pose)
    past = snaps[max(k - PAST_STEPS, 0) : k]
    fut = snaps[k + 1 : k + 1 + FUTURE_STEPS]
    ego_state = _ego_state(ep, cur, tf, past, fut)
    lanes = lanes_near(ep.road.network, cur.ego_position_raw, tf, cur.ego_lane_index, ep.connectors)
    command = cur.command if command is None else command
    if command is None:
        raise ValueError(f"keyframe at step {cur.step}: no driving command was taken")
    route = cur.route if route is None else route
    route_ego = (
        np.zeros((0, 2), dtype=np.float32)
        if route is None or len(route) == 0
        else tf.points(route).astype(np.float32)
    )
    return Frame(
        frame_id=frame_id(ep.spec.name, ep.seed, cur.step),
        scenario=ep.spec.name,
        skill=SkillGroup(ep.spec.skill),
        seed=ep.seed,
        step=cur.step,
        t=cur.step / SIM_HZ,
        ego=ego_state,
        agents=_agent_states(cur, tf, past, fut, infos),
        lanes=lanes,
        command=command,
        events=cur.events,
        route=route_ego,
    )


def _ego_state(
    ep: Any, cur: Snapshot, tf: EgoTransform, past: list[Snapshot], fut: list[Snapshot]
) -> EgoState:
    """The ego at snapshot ``cur`` with its past and future track in the frame ``tf``."""
    ego_past, past_valid = _ego_track(tf, past, PAST_STEPS, at_end=True)
    ego_future, future_valid = _ego_track(tf, fut, FUTURE_STEPS, at_end=False)
    ego = ep.ego
    return EgoState(
        speed=cur.ego_speed,
        accel=cur.ego_accel,
        yaw_rate=cur.ego_yaw_rate,
        length=float(ego.LENGTH),
        width=float(ego.WIDTH),
        height=float(ep.ego_height),
        lane_id=lane_id(cur.ego_lane_index),
        lane_offset=cur.ego_lane_offset,
        world_x=float(cur.ego_pose[0]),
        world_y=float(cur.ego_pose[1]),
        world_yaw=float(cur.ego_pose[2]),
        target_speed=cur.ego_target_speed,
        past=ego_past,
        past_valid=past_valid,
        future=ego_future,
        future_valid=future_valid,
    )


def _agent_states(
    cur: Snapshot,
    tf: EgoTransform,
    past: list[Snapshot],
    fut: list[Snapshot],
    infos: dict[int, AgentInfo],
) -> list[AgentState]:
    """The other vehicles of ``cur`` inside ``REGION`` (ego frame ``tf``), by id, each with
    its past / future track over the keyframes ``past`` and ``fut``."""
    x0, x1, y0, y1 = REGION
    # PAST_STEPS + 1 + FUTURE_STEPS snapshots, None where there is none
    window = [None] * (PAST_STEPS - len(past)) + [*past, cur, *fut]
    window += [None] * (FUTURE_STEPS - len(fut))
    agents: list[AgentState] = []
    for aid, snap in sorted(cur.agents.items()):
        x, y, yaw = tf.poses(snap.pose)
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            continue
        info = infos[aid]
        vx, vy = tf.vectors(snap.velocity)
        # one transform for the whole past/future track of this agent
        valid = np.array([s is not None and aid in s.agents for s in window])
        track = np.zeros((len(window), 3))
        track[valid] = tf.poses(
            np.stack([s.agents[aid].pose for s, ok in zip(window, valid, strict=True) if ok])
        )
        track = track.astype(np.float32)
        agents.append(
            AgentState(
                id=aid,
                cls=info.cls,
                x=float(x),
                y=float(y),
                yaw=float(yaw),
                vx=float(vx),
                vy=float(vy),
                length=info.length,
                width=info.width,
                height=info.height,
                accel=snap.accel,
                lane_id=lane_id(snap.lane_index),
                lane_relation=lane_relation(cur.ego_lane_index, snap.lane_index),
                behaviour=info.behaviour,
                past=track[:PAST_STEPS],
                past_valid=valid[:PAST_STEPS],
                future=track[PAST_STEPS + 1 :],
                future_valid=valid[PAST_STEPS + 1 :],
            )
        )
    return agents


def _ego_track(
    tf: EgoTransform, snaps: list[Snapshot], n: int, at_end: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) float32 ego poses of ``snaps`` in the frame ``tf`` and (n,) validity; missing
    entries are zero and invalid, padded before (``at_end``: a past) or after (a future)."""
    poses = np.zeros((n, 3), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    if snaps:
        rows = slice(n - len(snaps), n) if at_end else slice(0, len(snaps))
        poses[rows] = tf.poses(np.stack([s.ego_pose for s in snaps]))
        valid[rows] = True
    return poses, valid


def live_frame(
    ep: Any,
    snaps: list[Snapshot],
    infos: dict[int, AgentInfo],
    command: Command,
    route: np.ndarray | None = None,
) -> Frame:
    """The Frame of a live episode now: ``snaps[-1]`` is the current snapshot and
    ``snaps[-1 - j]`` the one ``j`` keyframes ago (missing ones invalid); no future (all
    invalid), the given driving ``command`` and ``route`` ahead (world-up; None: none). What
    a closed-loop planner sees."""
    empty = np.zeros((0, 2)) if route is None else route
    return build_frame(ep, snaps, len(snaps) - 1, infos, command, empty)


def run_expert_episode(
    ep: Any, expert: Any, on_step: Callable[[Any], None] | None = None
) -> tuple[list[Snapshot], dict[int, AgentInfo]]:
    """Drive ``ep`` with ``expert`` to the end, snapshotting every keyframe; ``on_step(ep)`` is
    called at every 10 Hz step (before the keyframe snapshot), e.g. to log the true motion."""
    infos: dict[int, AgentInfo] = {}
    snaps: list[Snapshot] = []
    prev_yaw: float | None = None
    while True:
        if on_step is not None:
            on_step(ep)
        if ep.step_count % KEY_EVERY == 0:
            snap = snapshot(ep, infos, prev_yaw)
            snap.command, snap.route = route_guidance(ep, expert)
            snaps.append(snap)
        if ep.done:
            break
        prev_yaw = float(heading_to_up(ep.ego.heading))
        accel, steer = expert.act()
        ep.step(accel, steer)
    return snaps, infos


def episode_outcome(ep: Any, seed: int) -> dict[str, Any]:
    """How a recorded episode ended: ``scenario``, ``seed``, ``success``, ``crashed``,
    ``offroad``, ``steps`` (the manifest counts the booleans)."""
    return {
        "scenario": ep.spec.name,
        "seed": int(seed),
        "success": bool(ep.success),
        "crashed": bool(ep.crashed),
        "offroad": bool(ep.offroad),
        "steps": int(ep.step_count),
    }


def record_episode(scenario: Any, seed: int) -> RecordedEpisode:
    """Run the privileged expert through one seeded episode and return its keyframes.

    ``scenario`` is a built-in scenario name, a path to a scenario YAML file, or a
    ``ScenarioSpec``. The same (scenario, seed) always gives identical frames.
    """
    ep = make_episode(scenario, seed)
    try:
        snaps, infos = run_expert_episode(ep, PrivilegedExpert(ep))
        last = len(snaps) - 1
        if not ep.success:
            # the failure happened at the last snapshot's step at the latest
            limit_step = ep.step_count - CRASH_MARGIN_S * SIM_HZ
            while last >= 0 and snaps[last].step > limit_step:
                last -= 1
        frames = [build_frame(ep, snaps, k, infos) for k in range(0, last - FUTURE_STEPS + 1)]
        outcome = {**episode_outcome(ep, seed), "keyframes": len(frames), "params": ep.params}
        return RecordedEpisode(frames=frames, outcome=outcome)
    finally:
        ep.env.close()
