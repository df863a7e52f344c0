"""What the real-data readers share: poses, quaternions, tracks over keyframes, the command,
and :class:`FrameSequence`, a lazily built ``Sequence[Frame]`` keyed by frame id.

Poses are 4 x 4 homogeneous transforms ``T`` from a body frame to the world (``p_world = T @
p_body``), metres; quaternions are ``(w, x, y, z)`` as nuScenes stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.scene import (
    FUTURE_STEPS,
    PAST_STEPS,
    AgentClass,
    AgentState,
    Command,
    EgoState,
    Frame,
    wrap_angle,
)

TURN_THRESHOLD_M = 2.0
"""Lateral displacement (m) of the last future waypoint beyond which the command is a turn
(VAD's rule on nuScenes: left / right / straight from the 3 s future)."""


def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation matrix of the unit quaternion ``q = (w, x, y, z)`` (normalised here)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_matrix(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """(4, 4) transform from a (3, 3) rotation and a (3,) translation (m)."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = np.asarray(translation, dtype=np.float64)
    return t


def yaw_of(rotation: np.ndarray) -> float:
    """Heading (rad, CCW from +x) of a (3, 3) rotation: the angle of its rotated x axis in the
    x-y plane (the devkit's ``quaternion_yaw``)."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def to_ego(ego_pose: np.ndarray, world_xyz: np.ndarray) -> np.ndarray:
    """(N, 3) world points (m) -> the ego frame of the (4, 4) ``ego_pose`` (ego -> world)."""
    inv = np.linalg.inv(ego_pose)
    pts = np.atleast_2d(np.asarray(world_xyz, dtype=np.float64))
    return pts @ inv[:3, :3].T + inv[:3, 3]


def command_from_future(future: np.ndarray, valid: np.ndarray) -> Command:
    """The driving command of real data, from the ego's (T, 3) future in its own frame: a turn
    when the last valid waypoint is more than :data:`TURN_THRESHOLD_M` to the side."""
    if not valid.any():
        return Command.KEEP_LANE
    y = float(future[np.flatnonzero(valid)[-1], 1])
    if y >= TURN_THRESHOLD_M:
        return Command.TURN_LEFT
    if y <= -TURN_THRESHOLD_M:
        return Command.TURN_RIGHT
    return Command.KEEP_LANE


def track(
    ego_pose: np.ndarray,
    poses: Sequence[np.ndarray | None],
    steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, 3) poses ``(x, y, yaw)`` in the frame of ``ego_pose`` and their (steps,) bool
    validity, from world poses ``(4, 4)`` at the keyframes (``None`` where there is none)."""
    out = np.zeros((steps, 3), dtype=np.float32)
    valid = np.zeros(steps, dtype=bool)
    inv = np.linalg.inv(ego_pose)
    for k, pose in enumerate(poses[:steps]):
        if pose is None:
            continue
        local = inv @ pose
        out[k] = (local[0, 3], local[1, 3], wrap_angle(yaw_of(local[:3, :3])))
        valid[k] = True
    return out, valid


def past_future(
    ego_pose: np.ndarray,
    keyframe: int,
    n_keyframes: int,
    pose_at: Callable[[int], np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``past, past_valid, future, future_valid`` of one object at keyframe ``keyframe`` of a
    clip of ``n_keyframes``; ``pose_at(k)`` is its world pose at keyframe ``k`` or None. Past is
    oldest first (``past[-1]`` one keyframe ago), future nearest first."""
    past_idx = range(keyframe - PAST_STEPS, keyframe)
    fut_idx = range(keyframe + 1, keyframe + 1 + FUTURE_STEPS)
    past_poses = [pose_at(k) if 0 <= k < n_keyframes else None for k in past_idx]
    fut_poses = [pose_at(k) if k < n_keyframes else None for k in fut_idx]
    past, pv = track(ego_pose, past_poses, PAST_STEPS)
    fut, fv = track(ego_pose, fut_poses, FUTURE_STEPS)
    return past, pv, fut, fv


def ego_state(
    pose: np.ndarray,
    keyframe: int,
    n_keyframes: int,
    pose_at: Callable[[int], np.ndarray | None],
    motion: tuple[float, float, float],
    size: tuple[float, float, float],
) -> EgoState:
    """The ego at keyframe ``keyframe`` of a clip: world ``pose`` (4 x 4), ``motion`` = (speed
    m/s, accel m/s^2, yaw rate rad/s; NaN -> 0), ``size`` = (length, width, height) m, its past
    and future (:func:`past_future`); no lane map, so the lane offset is unknown (NaN)."""
    past, pv, fut, fv = past_future(pose, keyframe, n_keyframes, pose_at)
    speed, accel, yaw_rate = (0.0 if np.isnan(v) else float(v) for v in motion)
    length, width, height = size
    return EgoState(
        speed=speed,
        accel=accel,
        yaw_rate=yaw_rate,
        length=length,
        width=width,
        height=height,
        lane_id="",
        lane_offset=float("nan"),
        world_x=float(pose[0, 3]),
        world_y=float(pose[1, 3]),
        world_yaw=yaw_of(pose[:3, :3]),
        past=past,
        past_valid=pv,
        future=fut,
        future_valid=fv,
    )


def agent_state(
    ident: tuple[int, str],
    cls: AgentClass,
    local: np.ndarray,
    velocity: np.ndarray,
    size: tuple[float, float, float],
    tracks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> AgentState:
    """An annotated object of real data: ``ident`` = (rsd id, the data set's own id), its
    pose in the ego frame ``local`` (4 x 4), ``velocity`` (>=2,) m/s in the ego frame (NaN when
    it cannot be computed: the agent gets 0 and ``velocity_valid`` False), ``size`` = (length,
    width, height) m and ``tracks`` = :func:`past_future`'s four arrays."""
    past, pv, fut, fv = tracks
    length, width, height = size
    known = bool(np.isfinite(velocity[:2]).all())
    velocity = np.asarray(velocity, dtype=np.float64) if known else np.zeros(2)
    return AgentState(
        id=ident[0],
        cls=cls,
        x=float(local[0, 3]),
        y=float(local[1, 3]),
        yaw=yaw_of(local[:3, :3]),
        vx=float(velocity[0]),
        vy=float(velocity[1]),
        length=length,
        width=width,
        height=height,
        velocity_valid=known,
        behaviour="unknown",
        z=float(local[2, 3]),
        source_id=ident[1],
        past=past,
        past_valid=pv,
        future=fut,
        future_valid=fv,
    )


def need(record: Mapping[str, Any], key: str, where: str) -> Any:
    """``record[key]``, or a :class:`ConfigError` naming ``where`` (file / table) and the field."""
    try:
        return record[key]
    except (KeyError, TypeError):
        raise ConfigError(f"{where}: a record has no field {key!r}") from None


class FrameSequence:
    """A ``Sequence[Frame]`` over a real data set, built lazily: subclasses set
    ``self._ids`` (frame ids in order) and implement ``_frame(i)``. Satisfies
    :class:`rsd.pipeline.annotate.FrameSource`."""

    kind = "?"
    _ids: tuple[str, ...]

    @property
    def frame_ids(self) -> tuple[str, ...]:
        return self._ids

    def index_of(self, frame_id: str) -> int:
        try:
            return self._index[frame_id]
        except AttributeError:
            self._index = {fid: i for i, fid in enumerate(self._ids)}
            return self.index_of(frame_id)
        except KeyError:
            raise KeyError(f"{self.kind} data has no frame {frame_id!r}") from None

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i: int) -> Frame:
        if not -len(self._ids) <= i < len(self._ids):
            raise IndexError(f"index {i} out of range: {len(self._ids)} frames")
        return self._frame(i % len(self._ids))

    def __iter__(self):  # noqa: ANN204 - a plain generator of frames
        return (self[i] for i in range(len(self)))

    def _frame(self, i: int) -> Frame:
        raise NotImplementedError
