"""The one data model of rsd: what is recorded at each keyframe.

Conventions (see ``shared/design.md``):

* Units are SI: metres, seconds, m/s, radians.
* Everything in a :class:`Frame` is expressed in the **ego frame at the frame's time**:
  x forward, y left, z up, yaw counter-clockwise from +x. The conversion from
  highway-env's world (y pointing to the right-hand lanes) happens once, in ``rsd.sim``.
* Keyframes are recorded at 2 Hz (``KEYFRAME_DT``); each carries ``PAST_STEPS`` past
  keyframes and ``FUTURE_STEPS`` future keyframes of the ego and of every agent, with
  validity masks (an agent that left the scene or had not yet appeared is invalid there).
* Trajectory arrays are ``(T, 3)`` with columns ``(x, y, yaw)``; past arrays are ordered
  oldest first (``past[-1]`` is 0.5 s ago), future arrays nearest first (``future[0]`` is
  0.5 s ahead).

This module imports neither torch nor highway-env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

SIM_HZ = 10
"""Simulation and control frequency (Hz)."""
KEYFRAME_DT = 0.5
"""Time between keyframes (s): training samples are taken at 2 Hz."""
PAST_STEPS = 4
"""Past keyframes stored with every frame (2 s of context)."""
FUTURE_STEPS = 6
"""Future keyframes stored with every frame: 6 x 0.5 s = 3 s, as in VAD."""


class AgentClass(IntEnum):
    """Object classes. Sizes differ so that detection has a real scale to estimate."""

    CAR = 0
    VAN = 1
    TRUCK = 2


AGENT_CLASS_SIZES: dict[AgentClass, tuple[float, float, float]] = {
    AgentClass.CAR: (4.5, 1.85, 1.5),
    AgentClass.VAN: (5.6, 2.05, 2.3),
    AgentClass.TRUCK: (10.0, 2.5, 3.5),
}
"""Nominal (length, width, height) in metres per class; scenarios jitter them per agent."""


class Command(IntEnum):
    """High-level driving command, derived from the expert's future (as in VAD / navsim)."""

    KEEP_LANE = 0
    CHANGE_LEFT = 1
    CHANGE_RIGHT = 2
    TURN_LEFT = 3
    TURN_RIGHT = 4


class LineKind(IntEnum):
    """Painted line on one side of a lane."""

    NONE = 0
    STRIPED = 1
    CONTINUOUS = 2


class SkillGroup(IntEnum):
    """Bench2Drive-style ability a scenario exercises (success is reported per group)."""

    NOMINAL = 0
    MERGING = 1
    OVERTAKING = 2
    EMERGENCY_BRAKE = 3
    GIVE_WAY = 4


def _empty_traj(n: int) -> np.ndarray:
    return np.zeros((n, 3), dtype=np.float32)


@dataclass
class EgoState:
    """The ego at the frame's time. Its pose in its own frame is the origin by definition.

    ``world_*`` give the pose in a right-handed world frame (highway-env's world with y
    flipped to point left), kept for debugging and for re-simulation; nothing downstream
    of ``rsd.sim`` should need them.
    """

    speed: float
    """Longitudinal speed (m/s)."""
    accel: float
    """Longitudinal acceleration (m/s^2), positive forward."""
    yaw_rate: float
    """Yaw rate (rad/s), counter-clockwise positive."""
    length: float
    width: float
    height: float
    lane_id: str
    """Lane the ego is in, as ``"from>to>index"`` of the road network."""
    lane_offset: float
    """Signed lateral offset from the lane centreline (m), positive = left of it."""
    world_x: float = 0.0
    world_y: float = 0.0
    world_yaw: float = 0.0
    target_speed: float = float("nan")
    """The speed (m/s) the ego is asked to drive at when the road is free (the episode's
    target speed, a route speed limit); NaN when the source does not say."""
    past: np.ndarray = field(default_factory=lambda: _empty_traj(PAST_STEPS))
    """(PAST_STEPS, 3) past poses (x, y, yaw) in the current ego frame, oldest first."""
    past_valid: np.ndarray = field(default_factory=lambda: np.zeros(PAST_STEPS, dtype=bool))
    future: np.ndarray = field(default_factory=lambda: _empty_traj(FUTURE_STEPS))
    """(FUTURE_STEPS, 3) the expert's future poses (x, y, yaw) in the current ego frame."""
    future_valid: np.ndarray = field(default_factory=lambda: np.zeros(FUTURE_STEPS, dtype=bool))


@dataclass
class AgentState:
    """Another road user, in the current ego frame."""

    id: int
    """Stable within an episode."""
    cls: AgentClass
    x: float
    y: float
    yaw: float
    vx: float
    """Velocity over ground (m/s), expressed along the ego's axes."""
    vy: float
    length: float
    width: float
    height: float
    accel: float = 0.0
    """Longitudinal acceleration of the agent (m/s^2), privileged."""
    lane_id: str = ""
    lane_relation: int | None = None
    """Lanes to the left of the ego's lane on the same road (0 same lane, +1 next left,
    -1 next right); ``None`` when the agent is on another road."""
    behaviour: str = "idm"
    """Privileged behaviour label (``idm``, ``aggressive``, ``defensive``, ``scripted``...)."""
    past: np.ndarray = field(default_factory=lambda: _empty_traj(PAST_STEPS))
    past_valid: np.ndarray = field(default_factory=lambda: np.zeros(PAST_STEPS, dtype=bool))
    future: np.ndarray = field(default_factory=lambda: _empty_traj(FUTURE_STEPS))
    future_valid: np.ndarray = field(default_factory=lambda: np.zeros(FUTURE_STEPS, dtype=bool))

    @property
    def speed(self) -> float:
        return float(np.hypot(self.vx, self.vy))


@dataclass
class LaneGeometry:
    """A lane near the ego: its centreline polyline in the ego frame, width and lines."""

    lane_id: str
    centre: np.ndarray
    """(N, 2) centreline points (x, y) in the ego frame, in driving direction."""
    width: float
    left_line: LineKind
    right_line: LineKind
    relation: int | None = None
    """Same meaning as :attr:`AgentState.lane_relation`."""


@dataclass
class Frame:
    """One keyframe: what a training sample is made of."""

    frame_id: str
    """Unique across a dataset: ``f"{scenario}-{seed:05d}-{step:04d}"``."""
    scenario: str
    skill: SkillGroup
    seed: int
    step: int
    """Simulation step (10 Hz) of this keyframe within its episode."""
    t: float
    """Time since the episode started (s)."""
    ego: EgoState
    agents: list[AgentState]
    lanes: list[LaneGeometry]
    command: Command
    events: list[str] = field(default_factory=list)
    """Scripted events active at this time (privileged), e.g. ``"brake:17"``."""

    def agent(self, agent_id: int) -> AgentState:
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(f"frame {self.frame_id} has no agent {agent_id}")


def frame_id(scenario: str, seed: int, step: int) -> str:
    return f"{scenario}-{seed:05d}-{step:04d}"


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
