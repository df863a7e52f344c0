"""The single conversion from highway-env's world to rsd's frames.

highway-env's world has x east and y pointing *down* the screen (towards the right-hand
lanes of an eastbound road), headings clockwise on screen. rsd works in a right-handed
frame: we flip y once here (``world_up = (x, -y)``, ``yaw_up = -heading``) and then express
everything relative to the ego (x forward, y left). Nothing else in rsd knows about
highway-env's axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsd.scene import LaneGeometry, LineKind, wrap_angle

LANE_SAMPLE_STEP = 2.0
"""Spacing (m) of the centreline points recorded for each lane."""
LANE_WINDOW = (-60.0, 110.0)
"""Arc-length window (m) around the ego's projection in which lanes are sampled."""
REGION = (-60.0, 110.0, -60.0, 60.0)
"""Ego-frame region (x_min, x_max, y_min, y_max) kept for lanes and agents (m)."""

_LINE_KIND = {0: LineKind.NONE, 1: LineKind.STRIPED, 2: LineKind.CONTINUOUS, 3: LineKind.CONTINUOUS}


def to_up(position: np.ndarray) -> np.ndarray:
    """highway-env world position(s) ``(..., 2)`` -> right-handed world (y flipped)."""
    p = np.asarray(position, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 1]], axis=-1)


def heading_to_up(heading: float | np.ndarray) -> float | np.ndarray:
    """highway-env heading (clockwise on screen) -> counter-clockwise yaw."""
    return wrap_angle(-np.asarray(heading, dtype=np.float64))


@dataclass(frozen=True)
class EgoTransform:
    """Rigid transform from the right-handed world into one ego frame."""

    x: float
    y: float
    yaw: float

    def points(self, xy: np.ndarray) -> np.ndarray:
        """``(..., 2)`` world-up points -> ego frame."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        d = np.asarray(xy, dtype=np.float64) - np.array([self.x, self.y])
        return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)

    def vectors(self, v: np.ndarray) -> np.ndarray:
        """Rotate ``(..., 2)`` world-up vectors (e.g. velocities) into the ego axes."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        v = np.asarray(v, dtype=np.float64)
        return np.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], axis=-1)

    def poses(self, xyyaw: np.ndarray) -> np.ndarray:
        """``(..., 3)`` world-up poses -> ego-frame poses."""
        xyyaw = np.asarray(xyyaw, dtype=np.float64)
        out = np.empty_like(xyyaw)
        out[..., :2] = self.points(xyyaw[..., :2])
        out[..., 2] = wrap_angle(xyyaw[..., 2] - self.yaw)
        return out


def lane_id(lane_index: tuple[str, str, int] | None) -> str:
    if lane_index is None:
        return ""
    a, b, i = lane_index
    return f"{a}>{b}>{i}"


def lane_relation(ego_index: tuple | None, other_index: tuple | None) -> int | None:
    """Lanes to the left of the ego's (0 same, +1 next left); None on another road.

    highway-env numbers the lanes of a road from the left (index grows towards the
    right-hand side), so the relation is ``ego_index - other_index``.
    """
    if ego_index is None or other_index is None or ego_index[:2] != other_index[:2]:
        return None
    return int(ego_index[2]) - int(other_index[2])


def signed_lane_offset(lane: Any, position: np.ndarray) -> float:
    """Signed distance (m) of a highway-env world position from the lane centreline,
    positive to the left of the driving direction (computed geometrically, so it holds for
    straight, sine and circular lanes alike)."""
    s, _ = lane.local_coordinates(position)
    centre = to_up(lane.position(s, 0.0))
    yaw = float(heading_to_up(lane.heading_at(s)))
    d = to_up(position) - centre
    return float(np.cos(yaw) * d[1] - np.sin(yaw) * d[0])


def lane_points(lane: Any, s: np.ndarray) -> np.ndarray:
    """(N, 3) centreline points ``(x, y, heading)`` of a highway-env lane at arc lengths
    ``s``, in highway-env's own world frame. Vectorised for straight and circular lanes
    (a hot path of the expert and the recorder), exact for both."""
    s = np.asarray(s, dtype=np.float64)
    kind = type(lane).__name__
    if kind == "StraightLane":
        xy = lane.start[None, :] + s[:, None] * lane.direction[None, :]
        return np.column_stack([xy, np.full(len(s), lane.heading)])
    if kind == "CircularLane":
        phi = lane.direction * s / lane.radius + lane.start_phase
        xy = lane.center[None, :] + lane.radius * np.column_stack([np.cos(phi), np.sin(phi)])
        return np.column_stack([xy, phi + np.pi / 2 * lane.direction])
    return np.array([(*lane.position(v, 0.0), lane.heading_at(v)) for v in s], dtype=float)


def lanes_near(
    network: Any,
    ego_position: np.ndarray,
    tf: EgoTransform,
    ego_lane_index: tuple | None,
    extra: Sequence[tuple[str, Any]] = (),
) -> list[LaneGeometry]:
    """Centrelines of every lane of the road network near the ego, in the ego frame, then of
    the ``extra`` ``(id, lane)`` lanes (junction connectors: on no road, relation None)."""
    graph = [
        (lane_id((a, b, i)), (a, b, i), lane)
        for a, tos in network.graph.items()
        for b, lanes in tos.items()
        for i, lane in enumerate(lanes)
    ]
    out: list[LaneGeometry] = []
    for name, index, lane in [*graph, *((name, None, lane) for name, lane in extra)]:
        geometry = _lane_near(lane, name, ego_position, tf)
        if geometry is not None:
            geometry.relation = None if index is None else lane_relation(ego_lane_index, index)
            out.append(geometry)
    return out


def _lane_near(
    lane: Any, name: str, ego_position: np.ndarray, tf: EgoTransform
) -> LaneGeometry | None:
    """The part of ``lane`` in the ego's lane window and BEV region (None if none)."""
    x0, x1, y0, y1 = REGION
    s_ego, _ = lane.local_coordinates(ego_position)
    lo = max(0.0, s_ego + LANE_WINDOW[0])
    hi = min(float(lane.length), s_ego + LANE_WINDOW[1])
    if hi - lo < 1e-3:
        return None
    s = np.arange(lo, hi, LANE_SAMPLE_STEP)
    s = np.append(s, hi) if s.size == 0 or hi - s[-1] > 1e-6 else s
    pts = tf.points(to_up(lane_points(lane, s)[:, :2]))
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    if inside.sum() < 1:
        return None
    idx = np.flatnonzero(inside)
    first, last = max(idx[0] - 1, 0), min(idx[-1] + 1, len(s) - 1)
    if last <= first:
        return None
    lt = getattr(lane, "line_types", None) or (1, 1)
    return LaneGeometry(
        lane_id=name,
        centre=pts[first : last + 1].astype(np.float32),
        width=float(lane.width_at(float(s[first]))),
        left_line=_LINE_KIND.get(int(lt[0]), LineKind.STRIPED),
        right_line=_LINE_KIND.get(int(lt[1]), LineKind.STRIPED),
    )
