"""BEV rasterisation of a :class:`~rsd.scene.Frame`: the map layers and the sensor channels.

The grid, the axis convention and the channel layouts live in :mod:`rsd.geometry`. This module
draws; :mod:`rsd.data.features` assembles the model input from what the rig senses and
:mod:`rsd.data.targets` the ground truth (``target_maps`` uses :func:`draw_map` too).

Input channels (fixed layout for every rig, see :class:`~rsd.geometry.InputChannel`): map
layers first, then the current free space, then the sensor hits of the current and past
keyframes. Channels a rig does not provide stay zero, so models trained on one rig run on
another.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from rsd.config import ConfigError
from rsd.data.raycast import scan
from rsd.data.rigs import SensorRig
from rsd.geometry import BEVGrid, InputChannel
from rsd.scene import PAST_STEPS, Frame, LaneGeometry, LineKind


@dataclass(frozen=True)
class RasterConfig:
    """What goes into the input tensor."""

    history: int = 4
    """Keyframes of sensor hits: the current one plus ``history - 1`` past ones (<= 5)."""
    route: bool = True
    """Draw the route ahead (:attr:`~rsd.geometry.InputChannel.ROUTE`); off, that channel
    stays zero (an ablation: the planner then has only the command to choose its way)."""

    def __post_init__(self) -> None:
        if not 1 <= self.history <= PAST_STEPS + 1:
            raise ConfigError(
                f"raster.history must be in [1, {PAST_STEPS + 1}], got {self.history}"
            )


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
    left = grid.pil_xy(np.stack([pts[:, 0] + off_x, pts[:, 1] + off_y], axis=1))
    right = grid.pil_xy(np.stack([pts[:, 0] - off_x, pts[:, 1] - off_y], axis=1))
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


def map_channels(frame: Frame, rig: SensorRig, grid: BEVGrid) -> tuple[np.ndarray, np.ndarray]:
    """The rig's map layers ``(H, W)`` float32: drivable area and lane lines as
    :func:`draw_map`, cut to the rig's map range and zero where the rig has no such layer."""
    drivable, lines = draw_map(frame, grid)
    reach = 1.0 if rig.map.range_m is None else _range_mask(grid, rig.map.range_m)
    zero = np.zeros(grid.shape, dtype=np.float32)
    return (
        drivable * reach if rig.map.drivable else zero,
        lines * reach if rig.map.lane_lines else zero,
    )


def sensor_channels(
    frame: Frame, rig: SensorRig, grid: BEVGrid, history: int
) -> tuple[np.ndarray, np.ndarray]:
    """What the rig's range sensors see: ``visible`` (H, W) float32, the free space now (inside
    the polygon of the beams' end points), and ``hits`` (history, H, W) float32, 1 in every cell
    with a return ``k`` keyframes ago at ``hits[k]``."""
    h, w = grid.shape
    hits = np.zeros((history, h, w), dtype=np.float32)
    visible = Image.new("L", (w, h))
    v_draw = ImageDraw.Draw(visible)
    for sc in scan(frame, rig, history):
        # Hits of all steps at once: flat index of (keyframe, row, col).
        ks, bs = np.nonzero(sc.returned)
        r, a = sc.ranges[ks, bs], sc.angles[ks, bs]
        pts = sc.origins[ks] + np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
        inside = grid.contains(pts)
        rc = np.floor(grid.world_to_pixel(pts[inside])).astype(np.int64)
        hits[ks[inside], rc[:, 0], rc[:, 1]] = 1.0
        # Free space now: polygon through the end of every beam that was not dropped.
        keep = ~sc.dropped[0]
        ends = np.where(sc.returned[0], sc.ranges[0], sc.sensor.range_m)[keep]
        ang = sc.angles[0, keep]
        poly = sc.origins[0] + np.stack([ends * np.cos(ang), ends * np.sin(ang)], axis=1)
        if sc.sensor.fov_deg < 360.0:
            poly = np.concatenate([sc.origins[:1], poly])
        if len(poly) >= 3:
            v_draw.polygon(grid.pil_xy(poly).ravel().tolist(), fill=255)
    return _DRIVABLE_LUT[np.asarray(visible)], hits


ROUTE_WIDTH_M = 1.5
"""Width (m) of the route's line in the ROUTE channel."""


def route_channel(frame: Frame, grid: BEVGrid) -> np.ndarray:
    """``(H, W)`` float32: 1 on the route ahead (:attr:`~rsd.scene.Frame.route`, a line
    ``ROUTE_WIDTH_M`` wide), 0 elsewhere and everywhere when the frame has no route."""
    img = Image.new("L", (grid.width, grid.height))
    if len(frame.route) >= 2:
        width = max(round(ROUTE_WIDTH_M / grid.resolution), 1)
        xy = grid.pil_xy(np.asarray(frame.route, dtype=np.float64))
        ImageDraw.Draw(img).line(xy.ravel().tolist(), fill=255, width=width)
    return _DRIVABLE_LUT[np.asarray(img)]


def input_raster(frame: Frame, rig: SensorRig, grid: BEVGrid, cfg: RasterConfig) -> np.ndarray:
    """The ``bev`` input (C, H, W) float32, channels :class:`~rsd.geometry.InputChannel`
    (C = 4 + ``cfg.history``), from what ``rig`` senses of ``frame`` and its route."""
    bev = np.zeros((InputChannel.HITS + cfg.history, *grid.shape), dtype=np.float32)
    bev[InputChannel.DRIVABLE], bev[InputChannel.LANE_LINES] = map_channels(frame, rig, grid)
    if cfg.route:
        bev[InputChannel.ROUTE] = route_channel(frame, grid)
    bev[InputChannel.VISIBLE], bev[InputChannel.HITS :] = sensor_channels(
        frame, rig, grid, cfg.history
    )
    return bev
