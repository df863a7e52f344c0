"""BEV geometry shared by data, teacher, models, losses and metrics: the grid, the channel and
field layouts of the arrays, oriented box corners and world <-> pixel.

Axis convention (one for the whole project)
-------------------------------------------
BEV tensors are ``(C, H, W)`` with **H along x, W along y**, drawn the way a map is read with
the ego driving *up*:

* row 0 is the far front (``x = x_max``); rows grow backwards (towards ``x_min``);
* column 0 is the far left (``y = y_max``); columns grow to the right (towards ``y_min``).

So ``image[r, c]`` covers ``x in (x_max - (r+1) res, x_max - r res]``,
``y in (y_max - (c+1) res, y_max - c res]``; :func:`world_to_pixel` and :func:`pixel_to_world`
convert continuous coordinates (a cell's centre is at ``(r + 0.5, c + 0.5)``).
``plt.imshow(bev[ch])`` shows the scene with forward up, left left.

The functions take numpy arrays or torch tensors alike and return the same kind (same dtype
and device for tensors). This module does not import torch, so that the simulator and the
viewers that only need numpy do not load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np

from rsd.config import ConfigError

Array = TypeVar("Array")
"""A numpy array or a torch tensor."""


def _as_float(xy: Any) -> Any:
    """A torch tensor as a floating tensor (integers promote as with a Python float), anything
    else as a float64 numpy array."""
    if getattr(xy, "new_tensor", None) is None:
        return np.asarray(xy, dtype=np.float64)
    return xy if xy.is_floating_point() else xy * 1.0


def _constant(like: Any, values: list[float]) -> Any:
    """``values`` as an array of ``like``'s kind: a tensor of its dtype and device for a torch
    tensor (``new_tensor``), else a numpy array."""
    new_tensor = getattr(like, "new_tensor", None)
    return np.asarray(values) if new_tensor is None else new_tensor(values)


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

    def world_to_pixel(self, xy: Array) -> Array:
        """See :func:`world_to_pixel`."""
        return world_to_pixel(xy, self)

    def pixel_to_world(self, rc: Array) -> Array:
        """See :func:`pixel_to_world`."""
        return pixel_to_world(rc, self)

    def contains(self, xy: Array) -> Array:
        """See :func:`inside_grid`."""
        return inside_grid(xy, self)

    def pil_xy(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) ego-frame ``(x, y)`` (m) -> (N, 2) PIL drawing coordinates ``(col, row)``.

        PIL puts integer coordinates on pixel centres, hence the half-cell shift; PIL wants
        ``.ravel().tolist()`` of the result."""
        xy = np.asarray(xy, dtype=np.float64)
        col = (self.y_max - xy[..., 1]) / self.resolution - 0.5
        row = (self.x_max - xy[..., 0]) / self.resolution - 0.5
        return np.stack([col, row], axis=-1)


def world_to_pixel(xy: Array, grid: BEVGrid) -> Array:
    """(..., 2) ego-frame ``(x, y)`` in m -> (..., 2) continuous ``(row, col)``.

    ``floor`` gives the cell (cell ``r`` spans ``[r, r + 1)``); a cell's centre is at
    ``(r + 0.5, c + 0.5)``. Numpy input is computed in float64; tensors keep their dtype (and
    stay differentiable)."""
    xy = _as_float(xy)
    # row = (x_max - x) / res and col = (y_max - y) / res: one subtraction from the corner.
    return (_constant(xy, [grid.x_max, grid.y_max]) - xy) / grid.resolution


def pixel_to_world(rc: Array, grid: BEVGrid) -> Array:
    """(..., 2) continuous ``(row, col)`` -> (..., 2) ego-frame ``(x, y)`` in m (inverse of
    :func:`world_to_pixel`)."""
    rc = _as_float(rc)
    return _constant(rc, [grid.x_max, grid.y_max]) - rc * grid.resolution


def inside_grid(xy: Array, grid: BEVGrid) -> Array:
    """(...,) bool: points (..., 2) inside the grid (left-open, right-closed per axis, as the
    cells of :func:`world_to_pixel`)."""
    if getattr(xy, "new_tensor", None) is None:
        xy = np.asarray(xy)
    x, y = xy[..., 0], xy[..., 1]
    return (x > grid.x_min) & (x <= grid.x_max) & (y > grid.y_min) & (y <= grid.y_max)


def box_corners(x: Any, y: Any, yaw: Any, length: Any, width: Any) -> np.ndarray:
    """(..., 4, 2) corners of oriented boxes, counter-clockwise: front-left, rear-left,
    rear-right, front-right. The arguments are broadcastable scalars or arrays (m, rad)."""
    x, y, yaw, length, width = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (x, y, yaw, length, width))
    )
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    hl, hw = length[..., None] / 2, width[..., None] / 2
    lx = np.concatenate([hl, -hl, -hl, hl], axis=-1)  # (..., 4) along the box
    ly = np.concatenate([hw, hw, -hw, -hw], axis=-1)  # (..., 4) across it
    cx = x[..., None] + (c * lx - s * ly)
    cy = y[..., None] + (s * lx + c * ly)
    return np.stack([cx, cy], axis=-1)


ROUTE_POINTS = 20
"""Points of the ``route`` model input (:func:`rsd.data.features.route_feature`)."""
ROUTE_SPACING = 2.0
"""Arc length (m) between them: the route from 2 to 40 m ahead."""


class InputChannel(IntEnum):
    """Channels of the ``bev`` input ``(C, H, W)``; sensor hits of ``k`` keyframes ago sit at
    ``HITS + k`` (see :func:`hits_channel`), so ``C = HITS + history``."""

    DRIVABLE = 0
    """Drivable area from the rig's map (1 inside), zero if the rig has none."""
    LANE_LINES = 1
    """Painted lines from the rig's map: continuous 1.0, striped 0.5."""
    VISIBLE = 2
    """Free space seen by the sensors now: inside the polygon of the beams' end points."""
    ROUTE = 3
    """The route ahead from navigation (:attr:`rsd.scene.Frame.route`): 1 on its centreline
    (1.5 m wide), zero where the frame has none (real data) or ``raster.route`` is off."""
    HITS = 4
    """Sensor returns now (1 in every cell with a return); earlier keyframes follow."""


def hits_channel(k: int) -> int:
    """Channel of the sensor hits ``k`` keyframes (``0.5 k`` s) ago; 0 = now."""
    return InputChannel.HITS + k


def input_channel_names(history: int) -> list[str]:
    """Names of the ``bev`` channels in order for ``history`` keyframes of hits, e.g.
    ``['drivable', ..., 'hits_t-1.5s']``."""
    names = [c.name.lower() for c in InputChannel if c < InputChannel.HITS]
    names += ["hits_t0" if k == 0 else f"hits_t-{0.5 * k:g}s" for k in range(history)]
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
    """Columns of ``ego_status`` ``(4,)``: what the ego knows of itself, with one meaning in
    training and in closed loop (no acceleration: in training it would be the expert's own
    command, in closed loop the tracking controller's, a copycat shortcut)."""

    SPEED = 0
    """m/s"""
    TARGET_SPEED = 1
    """m/s, the speed asked for on a free road (the episode's target speed)"""
    YAW_RATE = 2
    """rad/s"""
    LANE_OFFSET = 3
    """m, positive = left of the lane centreline"""
