"""BEV rasteriser: a :class:`~rsd.scene.Frame` + a :class:`~rsd.data.rigs.SensorRig` -> arrays.

Axis convention (one for the whole project)
-------------------------------------------
BEV tensors are ``(C, H, W)`` with **H along x, W along y**, drawn the way a map is read with
the ego driving *up*:

* row 0 is the far front (``x = x_max``); rows grow backwards (towards ``x_min``);
* column 0 is the far left (``y = y_max``); columns grow to the right (towards ``y_min``).

So ``image[r, c]`` covers ``x in (x_max - (r+1) res, x_max - r res]``,
``y in (y_max - (c+1) res, y_max - c res]``; :meth:`BEVGrid.world_to_pixel` and
:meth:`BEVGrid.pixel_to_world` convert continuous coordinates (a cell's centre is at
``(r + 0.5, c + 0.5)``). ``plt.imshow(bev[ch])`` shows the scene with forward up, left left.

Input channels (fixed layout for every rig, see :class:`InputChannel`): map layers first, then
the current free space, then the sensor hits of the current and past keyframes. Channels a rig
does not provide stay zero, so models trained on one rig run on another.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image, ImageDraw

from rsd.data.raycast import scan
from rsd.data.rigs import SensorRig
from rsd.scene import PAST_STEPS, Frame, LaneGeometry, LineKind


@dataclass(frozen=True)
class BEVGrid:
    """The ego-centred BEV grid (m). Default: 80 m x 32 m at 0.5 m -> H=160, W=64."""

    x_min: float = -24.0
    x_max: float = 56.0
    y_min: float = -16.0
    y_max: float = 16.0
    resolution: float = 0.5
    """Cell size (m)."""

    def __post_init__(self) -> None:
        from rsd.config import ConfigError

        for lo, hi, name in ((self.x_min, self.x_max, "x"), (self.y_min, self.y_max, "y")):
            cells = (hi - lo) / self.resolution
            if hi <= lo or abs(cells - round(cells)) > 1e-6:
                raise ConfigError(
                    f"grid.{name}_min/{name}_max: extent {hi - lo} m must be a positive multiple"
                    f" of resolution {self.resolution} m"
                )

    @property
    def height(self) -> int:
        """H: rows, along x."""
        return round((self.x_max - self.x_min) / self.resolution)

    @property
    def width(self) -> int:
        """W: columns, along y."""
        return round((self.y_max - self.y_min) / self.resolution)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) ego-frame ``(x, y)`` in m -> (..., 2) continuous ``(row, col)``.

        ``floor`` gives the cell; a cell's centre is at ``(r + 0.5, c + 0.5)``.
        """
        xy = np.asarray(xy, dtype=np.float64)
        row = (self.x_max - xy[..., 0]) / self.resolution
        col = (self.y_max - xy[..., 1]) / self.resolution
        return np.stack([row, col], axis=-1)

    def pixel_to_world(self, rc: np.ndarray) -> np.ndarray:
        """(..., 2) continuous ``(row, col)`` -> (..., 2) ego-frame ``(x, y)`` in m."""
        rc = np.asarray(rc, dtype=np.float64)
        x = self.x_max - rc[..., 0] * self.resolution
        y = self.y_max - rc[..., 1] * self.resolution
        return np.stack([x, y], axis=-1)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """(...,) bool: points (..., 2) inside the grid."""
        xy = np.asarray(xy)
        x, y = xy[..., 0], xy[..., 1]
        return (x > self.x_min) & (x <= self.x_max) & (y > self.y_min) & (y <= self.y_max)

    def _pil_xy(self, xy: np.ndarray) -> list[float]:
        """Flat ``[col0, row0, col1, row1, ...]`` for PIL, which puts integer coordinates on
        pixel centres (hence the half-cell shift)."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty(xy.shape, dtype=np.float64)
        out[:, 0] = (self.y_max - xy[:, 1]) / self.resolution - 0.5
        out[:, 1] = (self.x_max - xy[:, 0]) / self.resolution - 0.5
        return out.ravel().tolist()


@dataclass(frozen=True)
class RasterConfig:
    """What goes into the input tensor."""

    history: int = 4
    """Keyframes of sensor hits: the current one plus ``history - 1`` past ones (<= 5)."""

    def __post_init__(self) -> None:
        from rsd.config import ConfigError

        if not 1 <= self.history <= PAST_STEPS + 1:
            raise ConfigError(
                f"raster.history must be in [1, {PAST_STEPS + 1}], got {self.history}"
            )


class InputChannel(IntEnum):
    """Channels of the ``bev`` input ``(C, H, W)``; sensor hits of ``k`` keyframes ago sit at
    ``HITS + k`` (see :func:`hits_channel`), so ``C = HITS + history``."""

    DRIVABLE = 0
    """Drivable area from the rig's map (1 inside), zero if the rig has none."""
    LANE_LINES = 1
    """Painted lines from the rig's map: continuous 1.0, striped 0.5."""
    VISIBLE = 2
    """Free space seen by the sensors now: inside the polygon of the beams' end points."""
    HITS = 3
    """Sensor returns now (1 in every cell with a return); earlier keyframes follow."""


def hits_channel(k: int) -> int:
    """Channel of the sensor hits ``k`` keyframes (``0.5 k`` s) ago; 0 = now."""
    return InputChannel.HITS + k


def input_channel_names(cfg: RasterConfig = RasterConfig()) -> list[str]:
    """Names of the ``bev`` channels in order, e.g. ``['drivable', ..., 'hits_t-1.5s']``."""
    names = [c.name.lower() for c in InputChannel if c < InputChannel.HITS]
    names += ["hits_t0" if k == 0 else f"hits_t-{0.5 * k:g}s" for k in range(cfg.history)]
    return names


class TargetChannel(IntEnum):
    """Channels of the ``target_maps`` ground truth ``(2, H, W)``, independent of the rig."""

    DRIVABLE = 0
    LANE_BOUNDARY = 1
    """Any painted line (striped or continuous), 1 on the line."""


class BoxField(IntEnum):
    """Columns of ``agent_boxes`` ``(K, 8)``: centre (m), size (m), yaw (rad), velocity (m/s)."""

    X = 0
    Y = 1
    LENGTH = 2
    WIDTH = 3
    HEIGHT = 4
    YAW = 5
    VX = 6
    VY = 7


class EgoStatusField(IntEnum):
    """Columns of ``ego_status`` ``(4,)``."""

    SPEED = 0
    """m/s"""
    ACCEL = 1
    """m/s^2, longitudinal"""
    YAW_RATE = 2
    """rad/s"""
    LANE_OFFSET = 3
    """m, positive = left of the lane centreline"""


_DRIVABLE_LUT = (np.arange(256) > 127).astype(np.float32)
_LINES_LUT = np.where(np.arange(256) > 191, 1.0, np.where(np.arange(256) > 0, 0.5, 0.0)).astype(
    np.float32
)
"""PIL 'L' values -> channel values (lines drawn at 255 continuous, 128 striped)."""


def _lane_edges(lanes: list[LaneGeometry], grid: BEVGrid) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edges of all ``lanes`` at once (offset +-width/2 from the centrelines),
    as (P, 2) PIL pixel coordinates ``(col, row)``; lane ``j`` owns rows ``start[j]:end[j]``
    of the concatenation of the centrelines."""
    counts = [len(ln.centre) for ln in lanes]
    pts = np.concatenate([np.asarray(ln.centre, dtype=np.float64) for ln in lanes])
    half = np.repeat([ln.width / 2 for ln in lanes], counts)
    ends = np.cumsum(counts)
    seg = np.diff(pts, axis=0)
    seg /= np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)[:, None]
    # Tangent at a point: sum of its lane's adjacent segment directions (not across lanes).
    inside = np.ones(len(seg), dtype=bool)
    inside[ends[:-1] - 1] = False  # the "segment" joining two lanes
    seg *= inside[:, None]
    tangent = np.zeros_like(pts)
    tangent[:-1] += seg
    tangent[1:] += seg
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
    off_x, off_y = -tangent[:, 1] * half, tangent[:, 0] * half  # to the left

    def to_pil(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        # PIL puts integer coordinates on pixel centres: hence the half-cell shift.
        return np.stack(
            [(grid.y_max - y) / grid.resolution - 0.5, (grid.x_max - x) / grid.resolution - 0.5],
            axis=1,
        )

    left = to_pil(pts[:, 0] + off_x, pts[:, 1] + off_y)
    right = to_pil(pts[:, 0] - off_x, pts[:, 1] - off_y)
    return left, right


def draw_map(frame: Frame, grid: BEVGrid) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth map rasters ``(H, W)`` float32: drivable area (0/1) and lane lines
    (continuous 1.0, striped 0.5, none 0)."""
    size = (grid.width, grid.height)
    drivable, lines = Image.new("L", size), Image.new("L", size)
    lanes = [ln for ln in frame.lanes if len(ln.centre) >= 2]
    if lanes:
        d_draw, l_draw = ImageDraw.Draw(drivable), ImageDraw.Draw(lines)
        left, right = _lane_edges(lanes, grid)
        # Skip lanes whose bounding box misses the image (roundabout exits, far roads).
        both = np.concatenate([left, right], axis=1)
        ends = np.cumsum([len(ln.centre) for ln in lanes])
        starts = ends - np.diff(ends, prepend=0)
        lo = np.minimum.reduceat(np.minimum(both[:, :2], both[:, 2:]), starts)
        hi = np.maximum.reduceat(np.maximum(both[:, :2], both[:, 2:]), starts)
        seen = (hi[:, 0] >= -1) & (lo[:, 0] <= grid.width) & (hi[:, 1] >= -1)
        seen &= lo[:, 1] <= grid.height
        painted: list[tuple[int, list[float]]] = []
        for j in np.flatnonzero(seen):
            lane, s, e = lanes[j], starts[j], ends[j]
            d_draw.polygon(np.concatenate([left[s:e], right[s:e][::-1]]).ravel().tolist(), 255)
            for kind, edge in ((lane.left_line, left), (lane.right_line, right)):
                if kind != LineKind.NONE:
                    value = 255 if kind == LineKind.CONTINUOUS else 128
                    painted.append((value, edge[s:e].ravel().tolist()))
        for value, xy in sorted(painted, key=lambda p: p[0]):  # continuous wins where both lie
            l_draw.line(xy, fill=value, width=1)
    return _fill_pinholes(_DRIVABLE_LUT[np.asarray(drivable)]), _LINES_LUT[np.asarray(lines)]


def _fill_pinholes(mask: np.ndarray) -> np.ndarray:
    """Set single cells whose 4 neighbours are all 1: slivers where lane polygons of
    neighbouring or consecutive lanes (offset polylines) do not quite meet. (H, W) float32."""
    inner = mask[1:-1, 1:-1]
    inner[(mask[:-2, 1:-1] + mask[2:, 1:-1] + mask[1:-1, :-2] + mask[1:-1, 2:]) == 4] = 1.0
    return mask


@functools.lru_cache(maxsize=32)
def _range_mask(grid: BEVGrid, range_m: float) -> np.ndarray:
    rows, cols = np.meshgrid(
        np.arange(grid.height) + 0.5, np.arange(grid.width) + 0.5, indexing="ij"
    )
    xy = grid.pixel_to_world(np.stack([rows, cols], axis=-1))
    return (np.hypot(xy[..., 0], xy[..., 1]) <= range_m).astype(np.float32)


def _agent_targets(frame: Frame, grid: BEVGrid) -> dict[str, np.ndarray]:
    agents = sorted(frame.agents, key=lambda a: a.id)
    k = len(agents)
    boxes = np.zeros((k, len(BoxField)), dtype=np.float32)
    for i, a in enumerate(agents):
        boxes[i] = (a.x, a.y, a.length, a.width, a.height, a.yaw, a.vx, a.vy)
    future = np.zeros((k, *frame.ego.future.shape), dtype=np.float32)
    future_valid = np.zeros((k, len(frame.ego.future_valid)), dtype=bool)
    for i, a in enumerate(agents):
        future[i], future_valid[i] = a.future, a.future_valid
    return {
        "agent_boxes": boxes,
        "agent_cls": np.array([int(a.cls) for a in agents], dtype=np.int64),
        "agent_ids": np.array([a.id for a in agents], dtype=np.int64),
        "agent_in_grid": grid.contains(boxes[:, :2]),
        "agent_future": future,
        "agent_future_valid": future_valid,
    }


def rasterise(
    frame: Frame,
    rig: SensorRig,
    grid: BEVGrid = BEVGrid(),
    cfg: RasterConfig = RasterConfig(),
) -> dict[str, np.ndarray]:
    """Input tensor and targets of one frame, as numpy arrays.

    Returns (K = agents in the frame, sorted by id; T = FUTURE_STEPS; P = PAST_STEPS):

    * ``bev`` (C, H, W) float32 input, channels :class:`InputChannel` (C = 3 + history);
    * ``target_maps`` (2, H, W) float32, channels :class:`TargetChannel` (from ground truth,
      whatever the rig);
    * ``agent_boxes`` (K, 8) float32 (:class:`BoxField`), ``agent_cls`` (K,) int64
      (:class:`~rsd.scene.AgentClass`), ``agent_ids`` (K,) int64, ``agent_in_grid`` (K,) bool
      (centre inside the grid: the detection targets), ``agent_future`` (K, T, 3) float32
      ``(x, y, yaw)``, ``agent_future_valid`` (K, T) bool;
    * ``ego_future`` (T, 3), ``ego_future_valid`` (T,), ``ego_past`` (P, 3) oldest first,
      ``ego_past_valid`` (P,), ``ego_status`` (4,) (:class:`EgoStatusField`), ``ego_size`` (3,)
      length/width/height (m), ``command`` () int64 (:class:`~rsd.scene.Command`).
    """
    h, w = grid.shape
    bev = np.zeros((InputChannel.HITS + cfg.history, h, w), dtype=np.float32)

    drivable, lines = draw_map(frame, grid)
    reach = 1.0 if rig.map.range_m is None else _range_mask(grid, rig.map.range_m)
    if rig.map.drivable:
        bev[InputChannel.DRIVABLE] = drivable * reach
    if rig.map.lane_lines:
        bev[InputChannel.LANE_LINES] = lines * reach

    visible = Image.new("L", (w, h))
    v_draw = ImageDraw.Draw(visible)
    for sc in scan(frame, rig, cfg.history):
        # Hits of all steps at once: flat index of (channel, row, col).
        ks, bs = np.nonzero(sc.returned)
        r, a = sc.ranges[ks, bs], sc.angles[ks, bs]
        pts = sc.origins[ks] + np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
        inside = grid.contains(pts)
        rc = np.floor(grid.world_to_pixel(pts[inside])).astype(np.int64)
        bev[InputChannel.HITS + ks[inside], rc[:, 0], rc[:, 1]] = 1.0
        # Free space now: polygon through the end of every beam that was not dropped.
        keep = ~sc.dropped[0]
        ends = np.where(sc.returned[0], sc.ranges[0], sc.sensor.range_m)[keep]
        ang = sc.angles[0, keep]
        poly = sc.origins[0] + np.stack([ends * np.cos(ang), ends * np.sin(ang)], axis=1)
        if sc.sensor.fov_deg < 360.0:
            poly = np.concatenate([sc.origins[:1], poly])
        if len(poly) >= 3:
            v_draw.polygon(grid._pil_xy(poly), fill=255)
    bev[InputChannel.VISIBLE] = _DRIVABLE_LUT[np.asarray(visible)]

    ego = frame.ego
    out = {
        "bev": bev,
        "target_maps": np.stack([drivable, (lines > 0).astype(np.float32)]),
        "ego_future": np.asarray(ego.future, dtype=np.float32),
        "ego_future_valid": np.asarray(ego.future_valid, dtype=bool),
        "ego_past": np.asarray(ego.past, dtype=np.float32),
        "ego_past_valid": np.asarray(ego.past_valid, dtype=bool),
        "ego_status": np.array(
            [ego.speed, ego.accel, ego.yaw_rate, ego.lane_offset], dtype=np.float32
        ),
        "ego_size": np.array([ego.length, ego.width, ego.height], dtype=np.float32),
        "command": np.array(int(frame.command), dtype=np.int64),
    }
    out.update(_agent_targets(frame, grid))
    return out
