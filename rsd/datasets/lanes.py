"""Lanes of real data's maps, moved into a frame's ego frame: what the nuScenes map expansion
(:mod:`rsd.datasets.nuscenes_map`) and Bench2Drive's HD maps (:mod:`rsd.datasets.b2d_map`)
share once read.

A map is a list of :class:`MapLane` centrelines in a right-handed world frame (m), each in its
driving direction and densely sampled. :meth:`LaneMap.near` gives, for one ego pose, the lanes
in the frame's layout (:class:`rsd.scene.LaneGeometry`, the same as the simulator's: points
:data:`LANE_STEP` apart inside :data:`LANE_REGION`, plus one point either side) and the ego's
lane with its signed centreline offset, and each lane's ``relation`` to the ego's where the map
links them: the ego's 0, the lane the map puts directly left of it +1, left of that +2, to the
right -1, -2... (the simulator's :func:`rsd.sim.convert.lane_relation`); lanes the map does not
link to the ego's by such a chain (oncoming lanes, lanes ahead or behind it, connectors) keep
``None``, which means "another road" there too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsd.scene import LaneGeometry, LineKind

LANE_REGION = (-60.0, 110.0, -60.0, 60.0)
"""Ego-frame region (x_min, x_max, y_min, y_max, m) lanes are kept in: the simulator's, which
covers any BEV grid the configs use."""
LANE_STEP = 2.0
"""Spacing (m) of the centreline points of a :class:`~rsd.scene.LaneGeometry` (the sim's)."""
DEFAULT_LANE_WIDTH = 3.5
"""Width (m) of a lane whose map gives no boundary to measure it from."""
EGO_LANE_HEADING = np.pi / 4
"""A lane is the ego's only if its direction under the ego is within this of the ego's (rad)."""
EGO_LANE_MARGIN = 0.5
"""... and the ego's centre is at most half the lane's width plus this from its centreline (m)."""
MAX_RELATION = 8
"""Neighbour chains are followed at most this many lanes to either side (a malformed map's
links could otherwise run on)."""


@dataclass(frozen=True)
class MapLane:
    """One lane of a map: ``centre`` (N >= 2, 2) world points (m) in driving direction."""

    lane_id: str
    centre: np.ndarray
    width: float
    left_line: LineKind = LineKind.NONE
    right_line: LineKind = LineKind.NONE
    left: tuple[str, ...] = ()
    """Ids of the lanes the map puts directly to this one's left, driven the same way."""
    right: tuple[str, ...] = ()
    """... and directly to its right."""


def point_to_polyline(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (M,) of each of (M, 2) points to the (N, 2) polyline, and the (M,) index of
    the nearest segment (metres in, metres out)."""
    a, d = line[:-1], np.diff(line, axis=0)  # (S, 2)
    rel = points[:, None, :] - a[None]  # (M, S, 2)
    t = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * d, axis=-1)  # (M, S)
    seg = dist.argmin(axis=1)
    return dist[np.arange(len(points)), seg], seg


def width_from_boundary(centre: np.ndarray, boundary: np.ndarray | None) -> float:
    """A lane's width (m): twice the median distance of its boundary points (the polygon's
    nodes, the painted lines' points) from its centreline; :data:`DEFAULT_LANE_WIDTH` when
    there are none."""
    if boundary is None or len(boundary) == 0 or len(centre) < 2:
        return DEFAULT_LANE_WIDTH
    dist, _ = point_to_polyline(np.asarray(boundary, dtype=np.float64)[:, :2], centre)
    width = 2.0 * float(np.median(dist))
    return width if width > 0.5 else DEFAULT_LANE_WIDTH


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """(N, 2) polyline -> points every ``step`` m of arc length, its last point kept."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    keep = np.concatenate([[True], np.diff(s) > 1e-9])  # repeated points would stall interp
    points, s = points[keep], s[keep]
    if len(points) < 2:
        return points
    out = np.arange(0.0, s[-1], step)
    out = np.append(out, s[-1]) if s[-1] - out[-1] > 1e-6 else out
    return np.stack([np.interp(out, s, points[:, 0]), np.interp(out, s, points[:, 1])], axis=1)


def offset_under_origin(centre: np.ndarray) -> tuple[float, float] | None:
    """``(signed offset m, heading rad)`` of the ego-frame origin from an (N, 2) ego-frame
    centreline: offset > 0 = origin left of it, heading = the lane's direction there; None
    when the origin projects beyond either end (the lane is not under the ego)."""
    dist, seg = point_to_polyline(np.zeros((1, 2)), centre)
    i = int(seg[0])
    a, d = centre[i], centre[i + 1] - centre[i]
    t = float(-(a @ d) / max(float(d @ d), 1e-12))
    if (i == 0 and t < 0.0) or (i == len(centre) - 2 and t > 1.0):
        return None
    length = float(np.hypot(*d))
    offset = float(d[1] * a[0] - d[0] * a[1]) / max(length, 1e-12)  # cross(d, origin - a)
    return offset, float(np.arctan2(d[1], d[0]))


class LaneMap:
    """A town's / location's lanes, queried per ego pose (see the module doc)."""

    def __init__(self, lanes: list[MapLane]) -> None:
        self.lanes = [ln for ln in lanes if len(ln.centre) >= 2]
        self._by_id = {ln.lane_id: ln for ln in self.lanes}
        boxes = [(ln.centre.min(axis=0), ln.centre.max(axis=0)) for ln in self.lanes]
        self._lo = np.array([b[0] for b in boxes]).reshape(-1, 2)
        self._hi = np.array([b[1] for b in boxes]).reshape(-1, 2)
        x0, x1, y0, y1 = LANE_REGION
        self._reach = float(np.hypot(max(-x0, x1), max(-y0, y1)))

    def near(self, xy: np.ndarray, yaw: float) -> tuple[list[LaneGeometry], str, float]:
        """Lanes around the ego at world ``xy`` (2,) m heading ``yaw`` rad, in its frame, and
        ``(ego lane id, signed offset m)``: ``("", nan)`` when no lane is under the ego."""
        xy = np.asarray(xy, dtype=np.float64)[:2]
        near = np.all((self._lo - self._reach <= xy) & (xy <= self._hi + self._reach), axis=1)
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, s], [-s, c]])  # world -> ego axes
        out: list[LaneGeometry] = []
        best: tuple[float, str, float] = (np.inf, "", float("nan"))
        for i in np.flatnonzero(near):
            lane = self.lanes[i]
            pts = (lane.centre - xy) @ rot.T
            under = offset_under_origin(pts)
            if under is not None:
                offset, heading = under
                fits = abs(offset) <= lane.width / 2 + EGO_LANE_MARGIN
                if fits and abs(heading) <= EGO_LANE_HEADING and abs(offset) < best[0]:
                    best = (abs(offset), lane.lane_id, offset)
            kept = _in_region(pts)
            if kept is not None:
                out.append(
                    LaneGeometry(
                        lane_id=lane.lane_id,
                        centre=resample(kept, LANE_STEP).astype(np.float32),
                        width=float(lane.width),
                        left_line=lane.left_line,
                        right_line=lane.right_line,
                    )
                )
        relations = self.relations(best[1])
        for g in out:
            g.relation = relations.get(g.lane_id)
        return out, best[1], best[2]

    def relations(self, ego_lane: str) -> dict[str, int]:
        """``{lane id: relation}`` of the ego's lane (0) and the lanes linked to it by the
        map's left (+1, +2...) and right (-1, -2...) neighbour chains; empty without a lane."""
        if ego_lane not in self._by_id:
            return {}
        out = {ego_lane: 0}
        for side, sign in (("left", 1), ("right", -1)):
            frontier = [ego_lane]
            for k in range(1, MAX_RELATION + 1):
                nxt = [n for i in frontier for n in getattr(self._by_id[i], side)]
                frontier = [n for n in dict.fromkeys(nxt) if n in self._by_id and n not in out]
                out.update({n: sign * k for n in frontier})
                if not frontier:
                    break
        return out


def _in_region(pts: np.ndarray) -> np.ndarray | None:
    """The part of an (N, 2) ego-frame polyline from one point before its first point inside
    :data:`LANE_REGION` to one after its last (as the simulator keeps lanes); None if none."""
    x0, x1, y0, y1 = LANE_REGION
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    idx = np.flatnonzero(inside)
    if len(idx) == 0:
        return None
    first, last = max(idx[0] - 1, 0), min(idx[-1] + 1, len(pts) - 1)
    return pts[first : last + 1] if last > first else None
