"""Hand-made :class:`~rsd.scene.Frame` objects for tests, benchmarks and demos.

Until the recorder (``rsd.sim``) produces real frames, and afterwards for unit tests that need a
known scene, these build frames on a straight multi-lane road: the ego drives along +x in lane
``ego_lane`` at constant speed, every agent moves at constant velocity, so past and future poses
are exact and easy to reason about. Everything is in the current ego frame (x forward, y left).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsd.scene import (
    AGENT_CLASS_SIZES,
    FUTURE_STEPS,
    KEYFRAME_DT,
    PAST_STEPS,
    AgentClass,
    AgentState,
    Command,
    EgoState,
    Frame,
    LaneGeometry,
    LineKind,
    SkillGroup,
    frame_id,
)

_PAST_T = -KEYFRAME_DT * np.arange(PAST_STEPS, 0, -1)  # oldest first: -2.0 ... -0.5 s
_FUTURE_T = KEYFRAME_DT * np.arange(1, FUTURE_STEPS + 1)  # 0.5 ... 3.0 s


def _const_velocity(x: float, y: float, yaw: float, vx: float, vy: float, t: np.ndarray):
    traj = np.zeros((len(t), 3), dtype=np.float32)
    traj[:, 0] = x + vx * t
    traj[:, 1] = y + vy * t
    traj[:, 2] = yaw
    return traj


def synthetic_agent(
    agent_id: int,
    x: float,
    y: float,
    *,
    vx: float = 0.0,
    vy: float = 0.0,
    yaw: float = 0.0,
    cls: AgentClass = AgentClass.CAR,
    lane_relation: int | None = 0,
) -> AgentState:
    """An agent at ``(x, y)`` (m, current ego frame) moving at constant ``(vx, vy)`` over ground.

    Past/future poses are in the *current* ego frame, a fixed frame: they depend only on the
    agent's own motion over ground, not on the ego's.
    """
    length, width, height = AGENT_CLASS_SIZES[AgentClass(cls)]
    return AgentState(
        id=agent_id,
        cls=AgentClass(cls),
        x=float(x),
        y=float(y),
        yaw=float(yaw),
        vx=float(vx),
        vy=float(vy),
        length=length,
        width=width,
        height=height,
        lane_relation=lane_relation,
        past=_const_velocity(x, y, yaw, vx, vy, _PAST_T),
        past_valid=np.ones(PAST_STEPS, dtype=bool),
        future=_const_velocity(x, y, yaw, vx, vy, _FUTURE_T),
        future_valid=np.ones(FUTURE_STEPS, dtype=bool),
    )


def straight_lanes(
    n_lanes: int = 3, ego_lane: int = 1, width: float = 3.5, x_range=(-80.0, 120.0)
) -> list[LaneGeometry]:
    """``n_lanes`` parallel lanes along +x; lane 0 is the rightmost, the ego is in ``ego_lane``.

    Outer lines are continuous, inner lines striped. Lane centres sit at
    ``y = (i - ego_lane) * width``.
    """
    xs = np.linspace(x_range[0], x_range[1], 9)
    lanes = []
    for i in range(n_lanes):
        y = (i - ego_lane) * width
        centre = np.stack([xs, np.full_like(xs, y)], axis=1).astype(np.float32)
        lanes.append(
            LaneGeometry(
                lane_id=f"a>b>{i}",
                centre=centre,
                width=width,
                left_line=LineKind.CONTINUOUS if i == n_lanes - 1 else LineKind.STRIPED,
                right_line=LineKind.CONTINUOUS if i == 0 else LineKind.NONE,
                relation=i - ego_lane,
            )
        )
    return lanes


def synthetic_frame(
    agents: Sequence[AgentState] = (),
    *,
    scenario: str = "synthetic",
    seed: int = 0,
    step: int = 0,
    ego_speed: float = 20.0,
    n_lanes: int = 3,
    ego_lane: int = 1,
    lane_width: float = 3.5,
    command: Command = Command.KEEP_LANE,
) -> Frame:
    """A frame on a straight road; the ego drives at ``ego_speed`` m/s along its lane centre."""
    length, width, height = AGENT_CLASS_SIZES[AgentClass.CAR]
    ego = EgoState(
        speed=ego_speed,
        accel=0.0,
        yaw_rate=0.0,
        length=length,
        width=width,
        height=height,
        lane_id=f"a>b>{ego_lane}",
        lane_offset=0.0,
        target_speed=ego_speed,
        past=_const_velocity(0.0, 0.0, 0.0, ego_speed, 0.0, _PAST_T),
        past_valid=np.ones(PAST_STEPS, dtype=bool),
        future=_const_velocity(0.0, 0.0, 0.0, ego_speed, 0.0, _FUTURE_T),
        future_valid=np.ones(FUTURE_STEPS, dtype=bool),
    )
    return Frame(
        frame_id=frame_id(scenario, seed, step),
        scenario=scenario,
        skill=SkillGroup.NOMINAL,
        seed=seed,
        step=step,
        t=step / 10.0,
        ego=ego,
        agents=list(agents),
        lanes=straight_lanes(n_lanes, ego_lane, lane_width),
        command=command,
    )


def random_frame(seed: int, n_agents: int = 20, *, step: int = 0) -> Frame:
    """A busy, reproducible frame: ``n_agents`` cars/vans/trucks scattered over 4 lanes."""
    rng = np.random.default_rng(seed)
    n_lanes, ego_lane, lane_w, ego_speed = 4, 1, 3.75, 25.0
    agents = []
    for i in range(n_agents):
        lane = int(rng.integers(n_lanes))
        x = float(rng.uniform(-40.0, 80.0))
        if lane == ego_lane and abs(x) < 8.0:
            x += 16.0  # keep the ego's own footprint free
        cls = AgentClass(int(rng.choice(3, p=[0.7, 0.2, 0.1])))
        agents.append(
            synthetic_agent(
                i + 1,
                x,
                (lane - ego_lane) * lane_w + float(rng.normal(0.0, 0.2)),
                vx=float(rng.uniform(-5.0, 5.0)) + ego_speed,
                yaw=float(rng.normal(0.0, 0.03)),
                cls=cls,
                lane_relation=lane - ego_lane,
            )
        )
    return synthetic_frame(
        agents,
        seed=seed,
        step=step,
        ego_speed=ego_speed,
        n_lanes=n_lanes,
        ego_lane=ego_lane,
        lane_width=lane_w,
    )
