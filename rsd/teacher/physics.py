"""Geometry and kinematics of the privileged teacher (:mod:`rsd.teacher.privileged`): paths,
projections, box gaps and first contact over sampled time, agent futures as arrays.

Everything is in the ego frame of the keyframe (x forward, y left; m, s, m/s, m/s^2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame


def ramp(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """0 at ``lo``, 1 at ``hi`` (works for ``hi < lo`` too), clipped."""
    return np.minimum(np.maximum((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0), 1.0)


def fill_invalid(traj: np.ndarray, valid: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """(K, T+1, 2) positions (step 0 = now, always valid); invalid steps continue from the last
    valid one at the velocity ``vel`` (K, 2)."""
    steps = np.arange(traj.shape[1])
    last = np.maximum.accumulate(np.where(valid, steps, 0), axis=1)  # (K, T+1)
    base = np.take_along_axis(traj, last[..., None], axis=1)
    held = base + vel[:, None, :] * ((steps - last) * KEYFRAME_DT)[..., None]
    return np.where(valid[..., None], traj, held)


def interp_steps(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(..., T+1, D) values at keyframes 0, 0.5, ... -> (..., S, D) at ``times`` (linear,
    extrapolated from the last segment)."""
    f = times / KEYFRAME_DT
    i0 = np.minimum(np.floor(f).astype(np.int64), keys.shape[-2] - 2)
    w = (f - i0)[:, None]
    return keys[..., i0, :] * (1 - w) + keys[..., i0 + 1, :] * w


def along(path: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Poses (S, 3) at arc lengths ``s`` (S,) along polyline ``path`` (M, 2), extended straight
    past its end."""
    seg = np.diff(path, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    keep = length > 1e-6
    if not keep.any():
        return np.zeros((len(s), 3))
    seg, length = seg[keep], length[keep]
    pts = np.concatenate([path[:1], path[1:][keep]])
    cum = np.concatenate([[0.0], np.cumsum(length)])
    j = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    u = (s - cum[j]) / length[j]
    xy = pts[j] + seg[j] * u[:, None]
    return np.column_stack([xy, np.arctan2(seg[j, 1], seg[j, 0])])


def project(path: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length ``s`` and signed lateral offset ``d`` (left +) of points (N, 2) on a polyline
    (M, 2); the last segment is extended to infinity."""
    a, seg = path[:-1], path[1:] - path[:-1]
    l2 = np.maximum(seg[:, 0] ** 2 + seg[:, 1] ** 2, 1e-18)
    rx, ry = pts[:, None, 0] - a[:, 0], pts[:, None, 1] - a[:, 1]  # (N, M-1)
    u = np.maximum((rx * seg[:, 0] + ry * seg[:, 1]) / l2, 0.0)
    u[:, :-1] = np.minimum(u[:, :-1], 1.0)
    d2 = (rx - u * seg[:, 0]) ** 2 + (ry - u * seg[:, 1]) ** 2
    j = np.argmin(d2, axis=1)
    n = np.arange(len(pts))
    cross = seg[j, 0] * ry[n, j] - seg[j, 1] * rx[n, j]
    length = np.sqrt(l2)
    cum = np.concatenate([[0.0], np.cumsum(length)])
    return cum[j] + u[n, j] * length[j], np.copysign(np.sqrt(d2[n, j]), cross)


@dataclass
class AgentArrays:
    """Per-agent arrays of one frame, sorted by id (K agents); ego frame, SI units."""

    ids: np.ndarray
    cls: np.ndarray
    rel: np.ndarray  # lane_relation, nan for None
    now: np.ndarray  # (K, 3) x, y, yaw
    vel: np.ndarray  # (K, 2)
    size: np.ndarray  # (K, 2) length, width
    accel: np.ndarray
    keys: np.ndarray  # (K, T+1, 3) poses at keyframes, step 0 = now
    y_past: np.ndarray  # (K,) lateral position 1 s ago (current ego frame), nan if unknown


def agent_arrays(frame: Frame) -> AgentArrays:
    """The agents of ``frame`` as arrays, futures filled past their last valid keyframe at
    constant velocity and yaw unwrapped over time. An agent whose velocity is unknown
    (``velocity_valid`` False, real data's lone annotations) has 0 there: taken as standing."""
    ags = sorted(frame.agents, key=lambda a: a.id)
    k, t = len(ags), FUTURE_STEPS
    now = np.array([(a.x, a.y, a.yaw) for a in ags], dtype=np.float64).reshape(k, 3)
    vel = np.array([(a.vx, a.vy) for a in ags], dtype=np.float64).reshape(k, 2)
    fut = np.array([a.future for a in ags], dtype=np.float64).reshape(k, t, 3)
    fv = np.array([a.future_valid for a in ags], dtype=bool).reshape(k, t)
    keys = np.concatenate([now[:, None], fut], axis=1)
    valid = np.concatenate([np.ones((k, 1), bool), fv], axis=1)
    keys[..., :2] = fill_invalid(keys[..., :2], valid, vel)
    steps = np.arange(t + 1)
    last = np.maximum.accumulate(np.where(valid, steps, 0), axis=1)
    yaw = np.take_along_axis(keys[..., 2], last, axis=1)
    turn = (np.diff(yaw, axis=1) + np.pi) % (2 * np.pi) - np.pi  # unwrapped yaw
    keys[..., 2] = np.concatenate([yaw[:, :1], yaw[:, :1] + np.cumsum(turn, axis=1)], axis=1)
    return AgentArrays(
        ids=np.array([a.id for a in ags], dtype=np.int64),
        cls=np.array([int(a.cls) for a in ags], dtype=np.int64),
        rel=np.array([np.nan if a.lane_relation is None else a.lane_relation for a in ags]),
        now=now,
        vel=vel,
        size=np.array([(a.length, a.width) for a in ags], dtype=np.float64).reshape(k, 2),
        accel=np.array([a.accel for a in ags], dtype=np.float64),
        keys=keys,
        y_past=np.array([a.past[-2, 1] if a.past_valid[-2] else np.nan for a in ags]),
    )


def box_gaps(
    ego: np.ndarray, ego_size: tuple[float, float], ag: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box gaps between the ego (S, 3) and agents (K, S, 3) over time.

    Returns ``(dist, dx, dy)`` (K, S): box gap (m, 0 when overlapping) and the agent's centre in
    the ego's body frame at each time."""
    c, s = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    rx, ry = ag[..., 0] - ego[:, 0], ag[..., 1] - ego[:, 1]
    dx, dy = c * rx + s * ry, -s * rx + c * ry
    dyaw = ag[..., 2] - ego[:, 2]
    ac, as_ = np.abs(np.cos(dyaw)), np.abs(np.sin(dyaw))
    hl, hw = size[:, 0:1] / 2, size[:, 1:2] / 2
    gx = np.abs(dx) - ego_size[0] / 2 - (ac * hl + as_ * hw)
    gy = np.abs(dy) - ego_size[1] / 2 - (as_ * hl + ac * hw)
    return np.hypot(np.maximum(gx, 0), np.maximum(gy, 0)), dx, dy


def first_contact(dist: np.ndarray, times: np.ndarray, contact: float) -> np.ndarray:
    """(K,) first time (s) the gap (K, S) falls to ``contact``, linearly interpolated; inf if
    never."""
    hit = dist <= contact
    first = np.argmax(hit, axis=1)
    any_hit = hit.any(axis=1)
    k = np.arange(len(dist))
    prev = np.maximum(first - 1, 0)
    d0, d1 = dist[k, prev], dist[k, first]
    frac = np.where(d0 > d1, (d0 - contact) / np.maximum(d0 - d1, 1e-9), 0.0)
    t = times[prev] + np.clip(frac, 0, 1) * (times[first] - times[prev])
    return np.where(any_hit, np.where(first == 0, 0.0, t), np.inf)


def continue_along_lane(path: np.ndarray, frame: Frame, length: float = 80.0) -> np.ndarray:
    """Extend a path (M, 2) by up to ``length`` m along the lane its end lies in (the lane
    whose centreline is nearest and runs the same way), shifted to pass through the end."""
    lanes = [ln.centre for ln in frame.lanes if len(ln.centre) >= 2]
    if not lanes:
        return path
    end, heading = path[-1], path[-1] - path[-2]
    counts = np.array([len(c) for c in lanes])
    starts = np.cumsum(counts) - counts
    pts = np.concatenate(lanes).astype(np.float64)
    owner = np.repeat(np.arange(len(lanes)), counts)
    d2 = (pts[:, 0] - end[0]) ** 2 + (pts[:, 1] - end[1]) ** 2
    near = np.argpartition(d2, 3)[:4] if len(d2) > 4 else np.arange(len(d2))
    for j in near[np.argsort(d2[near])]:
        centre = np.asarray(lanes[owner[j]], np.float64)
        i = min(int(j - starts[owner[j]]), len(centre) - 2)
        if float((centre[i + 1] - centre[i]) @ heading) <= 0:
            continue
        run = np.cumsum(np.hypot(*np.diff(centre[i:], axis=0).T))
        ahead = centre[i + 1 :][run <= length] + (end - centre[i])
        ahead = ahead[(ahead - end) @ heading > 1e-6]
        return np.concatenate([path, ahead]) if len(ahead) else path
    return path


ROUTE_STEP_M = 2.0
"""Spacing (m) of the points of :func:`route_path` along the ego's lane."""


def route_path(frame: Frame) -> np.ndarray:
    """The ego's route (M, 2) without its plan: from the origin along its lane's centreline at
    the ego's present lateral offset (shifted by it), continued along the lane network
    (:func:`continue_along_lane`); straight ahead when the lane is unknown."""
    ego = frame.ego
    lane = next((ln for ln in frame.lanes if ln.lane_id == ego.lane_id), None)
    straight = np.array([[0.0, 0.0], [1.0, 0.0]])
    if lane is None or len(lane.centre) < 2:
        return continue_along_lane(straight, frame)
    centre = np.asarray(lane.centre, np.float64)
    s_lane, d_lane = project(centre, np.zeros((1, 2)))
    total = float(np.hypot(*np.diff(centre, axis=0).T).sum())
    if s_lane[0] >= total - ROUTE_STEP_M:  # at the lane's end: straight on
        return continue_along_lane(straight, frame)
    poses = along(centre, np.arange(s_lane[0], total, ROUTE_STEP_M))
    normal = np.column_stack([-np.sin(poses[:, 2]), np.cos(poses[:, 2])])
    path = poses[:, :2] + normal * d_lane[0]
    path[0] = 0.0  # starts at the ego exactly
    return continue_along_lane(path, frame) if len(path) >= 2 else straight


def cv_departure(ag: AgentArrays) -> np.ndarray:
    """(K,) largest distance (m) over the logged future keyframes between each agent and its
    constant-velocity extrapolation from now: a cut-in, a sudden brake or a merge departs, a
    car cruising on does not. Steps past the last valid one were filled at constant velocity
    (:func:`agent_arrays`), so they add nothing."""
    t = np.arange(1, ag.keys.shape[1]) * KEYFRAME_DT
    cv = ag.now[:, None, :2] + ag.vel[:, None, :] * t[None, :, None]
    if len(ag.ids) == 0:
        return np.zeros(0)
    return np.hypot(*np.moveaxis(ag.keys[:, 1:, :2] - cv, -1, 0)).max(axis=1)


def constant_velocity_frame(frame: Frame) -> Frame:
    """``frame`` with every agent's logged future replaced by its constant-velocity
    extrapolation from now: ``(x + vx t, y + vy t)`` at the keyframes ``t = 0.5 k`` s
    (k = 1..FUTURE_STEPS), yaw held, every step valid; the ego and the rest unchanged.

    The *current-state* view of a frame: a teacher judging it sees the present only, as it
    does on a live frame (no logged future: :func:`agent_arrays` fills the steps at constant
    velocity the same way), yet its space-time risk maps can still be painted."""
    t = np.arange(1, FUTURE_STEPS + 1) * KEYFRAME_DT
    agents = []
    for a in frame.agents:
        future = np.empty((FUTURE_STEPS, 3), np.float32)
        future[:, 0], future[:, 1], future[:, 2] = a.x + a.vx * t, a.y + a.vy * t, a.yaw
        agents.append(replace(a, future=future, future_valid=np.ones(FUTURE_STEPS, bool)))
    return replace(frame, agents=agents)
