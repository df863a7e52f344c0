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
    """Object classes. Sizes differ so that detection has a real scale to estimate.

    The simulator uses the first three (:data:`SIM_CLASSES`); the rest are the classes real
    data has (nuScenes' ten detection classes, Bench2Drive's actors), mapped from each
    dataset's categories in :mod:`rsd.datasets`. Values are stable: shards store them.
    """

    CAR = 0
    VAN = 1
    TRUCK = 2
    BUS = 3
    TRAILER = 4
    CONSTRUCTION_VEHICLE = 5
    PEDESTRIAN = 6
    MOTORCYCLE = 7
    BICYCLE = 8
    BARRIER = 9
    TRAFFIC_CONE = 10


SIM_CLASSES: tuple[AgentClass, ...] = (AgentClass.CAR, AgentClass.VAN, AgentClass.TRUCK)
"""The classes the simulator draws; a model's detection head covers ``AgentClass`` values
``0 .. n_classes - 1``, so a sim model has 3 and a real-data model ``len(AgentClass)``."""

AGENT_CLASS_SIZES: dict[AgentClass, tuple[float, float, float]] = {
    AgentClass.CAR: (4.5, 1.85, 1.5),
    AgentClass.VAN: (5.6, 2.05, 2.3),
    AgentClass.TRUCK: (10.0, 2.5, 3.5),
    # real-data classes: rounded mean sizes of nuScenes' annotations per detection class
    AgentClass.BUS: (11.0, 2.95, 3.5),
    AgentClass.TRAILER: (12.0, 2.9, 3.9),
    AgentClass.CONSTRUCTION_VEHICLE: (6.4, 2.8, 3.2),
    AgentClass.PEDESTRIAN: (0.73, 0.67, 1.77),
    AgentClass.MOTORCYCLE: (2.1, 0.77, 1.47),
    AgentClass.BICYCLE: (1.7, 0.6, 1.29),
    AgentClass.BARRIER: (0.5, 2.5, 0.98),
    AgentClass.TRAFFIC_CONE: (0.41, 0.41, 1.07),
}
"""Nominal (length, width, height) in metres per class; scenarios jitter them per agent."""

CLASS_RGB: dict[AgentClass, tuple[int, int, int]] = {
    AgentClass.CAR: (240, 160, 20),
    AgentClass.VAN: (205, 100, 190),
    AgentClass.TRUCK: (215, 60, 40),
    AgentClass.BUS: (40, 190, 220),
    AgentClass.TRAILER: (120, 210, 60),
    AgentClass.CONSTRUCTION_VEHICLE: (150, 110, 40),
    AgentClass.PEDESTRIAN: (230, 30, 130),
    AgentClass.MOTORCYCLE: (110, 70, 230),
    AgentClass.BICYCLE: (0, 150, 130),
    AgentClass.BARRIER: (130, 130, 130),
    AgentClass.TRAFFIC_CONE: (255, 110, 0),
}
"""The one drawing colour (8-bit RGB) per class, for every picture that draws classes (the
teacher's BEV and camera images, ``rsd show``): saturated and distinct from the grey road,
the white lines and the ego's blue. The simulator's three are those its pictures always had."""


def class_hex(cls: AgentClass | int) -> str:
    """``"#rrggbb"`` of :data:`CLASS_RGB` (matplotlib's colour format)."""
    return "#{:02x}{:02x}{:02x}".format(*CLASS_RGB[AgentClass(int(cls))])


def class_names(n_classes: int = len(SIM_CLASSES)) -> tuple[str, ...]:
    """Lower-case names of the classes ``AgentClass(0) .. AgentClass(n_classes - 1)``, e.g.
    ``("car", "van", "truck")``: the detection metrics' class list for a model."""
    if not 1 <= n_classes <= len(AgentClass):
        raise ValueError(f"n_classes must be in [1, {len(AgentClass)}], got {n_classes}")
    return tuple(AgentClass(i).name.lower() for i in range(n_classes))


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
    """Signed lateral offset from the lane centreline (m), positive = left of it; NaN when
    unknown (real data without a lane map): :func:`lane_offset_known` tells."""
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
    velocity_valid: bool = True
    """Whether ``(vx, vy)`` was measured; False where the source cannot tell (real data: a
    lone annotation with no neighbour to difference against), ``vx = vy = 0`` then. Losses
    and detection's AVE leave such a velocity out; the VLM prompt says it is unknown. Always
    True in the simulator. Not stored in shards."""
    accel: float = 0.0
    """Longitudinal acceleration of the agent (m/s^2), privileged."""
    lane_id: str = ""
    lane_relation: int | None = None
    """Lanes to the left of the ego's lane on the same road (0 same lane, +1 next left,
    -1 next right); ``None`` when the agent is on another road."""
    behaviour: str = "idm"
    """Privileged behaviour label (``idm``, ``aggressive``, ``defensive``, ``scripted``...)."""
    z: float = float("nan")
    """Height of the box centre in the ego frame (m); NaN when the source has none (the
    simulator: boxes stand on the road, centre at ``height / 2``). Not stored in shards."""
    source_id: str = ""
    """The data set's own key of this object (nuScenes instance token, Bench2Drive actor id);
    empty for simulator agents, whose ``id`` is the key. Not stored in shards."""
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


FRONT_CAMERA = "CAM_FRONT"
"""Name of the front camera in :attr:`Frame.cameras` (nuScenes' and Bench2Drive's channel)."""


@dataclass
class CameraView:
    """One camera image of a frame and the calibration that projects ego-frame points into it.

    A point ``p_ego`` (metres, ego frame: x forward, y left, z up) lands at pixel ``(u, v)``
    through ``p_cam = inv(sensor_to_ego) @ [p_ego, 1]``, ``[u*z, v*z, z] = intrinsics @
    p_cam[:3]``; it is in front of the camera when ``z > 0``. The camera frame is OpenCV's:
    x right, y down, z along the optical axis (nuScenes' convention; Bench2Drive's CARLA
    cameras are converted to it by the reader).
    """

    name: str
    """Channel, e.g. ``"CAM_FRONT"``."""
    image_path: str
    """Absolute path of the image file (JPEG/PNG) on disk."""
    intrinsics: np.ndarray
    """(3, 3) pinhole camera matrix (pixels)."""
    sensor_to_ego: np.ndarray
    """(4, 4) homogeneous transform from camera coordinates to the ego frame (metres)."""
    width: int
    """Image width (pixels)."""
    height: int
    """Image height (pixels)."""
    timestamp: float = float("nan")
    """Capture time (s, the dataset's clock); NaN when the source does not say."""

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(uv, depth)``: (N, 2) pixel coordinates and (N,) depth (m along the optical axis)
        of (N, 3) ego-frame points (m) (:func:`project_points`)."""
        return project_points(np.atleast_2d(points), self.intrinsics, self.sensor_to_ego)


def project_points(
    points: np.ndarray, intrinsics: np.ndarray, sensor_to_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 3)`` ego-frame points (m) -> ``(uv (..., 2) pixels, depth (...,) m)`` through a
    pinhole camera; a point is in front of the camera where ``depth > 0``, its ``uv`` is
    meaningless elsewhere (the one projection of the package: readers and teachers use it)."""
    cam = to_camera(points, sensor_to_ego)
    return camera_pixels(cam, intrinsics), cam[..., 2]


def to_camera(points: np.ndarray, sensor_to_ego: np.ndarray) -> np.ndarray:
    """``(..., 3)`` ego points (m) -> ``(..., 3)`` camera coordinates (m, z = depth)."""
    t = np.asarray(sensor_to_ego, dtype=np.float64)
    # inverse of a rigid transform: R^T (p - t)
    return (np.asarray(points, dtype=np.float64) - t[:3, 3]) @ t[:3, :3]


def camera_pixels(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """``(..., 3)`` camera coordinates -> ``(..., 2)`` pixels ``(u, v)`` (pinhole; meaningless
    where z <= 0)."""
    p = np.asarray(points_cam, dtype=np.float64)
    pix = p @ np.asarray(intrinsics, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return pix[..., :2] / p[..., 2:3]


@dataclass
class Frame:
    """One keyframe: what a training sample is made of."""

    frame_id: str
    """Unique across a dataset: ``f"{scenario}-{seed:05d}-{step:04d}"`` for simulator frames,
    the dataset's own key for real data (nuScenes sample token, Bench2Drive ``clip/frame``)."""
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
    route: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))
    """(N, 2) float32 ego-frame points (m) along the route ahead, from the ego's projection on
    the lane it should be on (navigation: the centreline the privileged expert follows, through
    lane changes and junctions; :func:`rsd.sim.route.route_guidance`); empty where unknown
    (real data)."""
    cameras: dict[str, CameraView] = field(default_factory=dict)
    """Camera images of real data by channel name (:data:`FRONT_CAMERA`...); empty for
    simulator frames, and not stored in shards (real data is read where it lies)."""

    def agent(self, agent_id: int) -> AgentState:
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(f"frame {self.frame_id} has no agent {agent_id}")


def lane_offset_known(ego: EgoState) -> bool:
    """Whether the ego's lane-centreline offset is known (not NaN)."""
    return bool(np.isfinite(ego.lane_offset))


def frame_id(scenario: str, seed: int, step: int) -> str:
    return f"{scenario}-{seed:05d}-{step:04d}"


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
