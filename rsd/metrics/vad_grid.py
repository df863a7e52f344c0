"""VAD's planning collision test on a 0.5 m occupancy grid (``metric_stp3.py`` of VAD / ST-P3).

VAD does not intersect boxes: it rasterises the ground-truth agents at each future step onto
a 200 x 200 grid of 0.5 m cells covering +-50 m around the ego, and marks a collision when any
cell of an *unrotated* ego footprint placed at the waypoint is occupied. Reimplemented here from
that description and VAD's published evaluation code (nothing copied), in this package's ego
frame (x forward, y left; VAD's lidar frame has x to the right, y forward):

* Grid: cell ``(row, col)`` stands for the point ``forward = (100 - row) / 2``,
  ``right = (col - 100) / 2`` m (VAD's ``bx`` and ``dx``).
* Agents: the four corners of each valid agent box (oriented, at its future pose) go to cell
  coordinates, are rounded (``np.round``, as VAD before ``cv2.fillPoly``), and every cell on or
  inside that quadrilateral is occupied. Cells off the grid are dropped.
* Ego: the footprint is fixed: the cells of a ``length`` x ``width`` box (VAD: 4.084 x 1.85 m),
  its centre shifted :data:`FORWARD_SHIFT_M` forward, axis-aligned whatever the plan's heading.
  On the grid, rows ``rr`` are the integers in ``[(-length/2 + 0.5) * 2 + 99.5,
  (length/2 + 0.5) * 2 + 99.5]`` and columns ``cc`` those in ``[-width + 99.5, width + 99.5]``
  (VAD: 97..104 and 98..101, 8 x 4 cells); at a waypoint ``(forward f, right u)`` the cells are
  ``row = trunc(200 - 2 f - rr)``, ``col = trunc(2 u + cc)``, *clipped* to the grid as VAD does
  (a waypoint past 50 m is tested on the edge cells).
* A step collides when any footprint cell is occupied at that step.

The per-step flags go through the same horizon averaging and expert exclusion as the exact
box test (:func:`rsd.metrics.planning.plan_collision`).
"""

from __future__ import annotations

import numpy as np

CELL_M = 0.5
"""Grid resolution (m)."""
CELLS = 200
"""Cells per side: +-50 m."""
FORWARD_SHIFT_M = 0.5
"""The ego footprint's centre lies this far ahead of the waypoint (VAD)."""


def ego_footprint_offsets(length: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(rr, cc): the row and column offsets (in cells) of VAD's ego footprint, all pairs of
    them being the footprint. ``length``, ``width`` in metres."""
    half = CELLS / 2 - 0.5  # VAD's bx: the first cell's centre at -49.75 m, in cells from 0
    lo_r = (-length / 2 + FORWARD_SHIFT_M) / CELL_M + half
    hi_r = (length / 2 + FORWARD_SHIFT_M) / CELL_M + half
    lo_c, hi_c = -width / 2 / CELL_M + half, width / 2 / CELL_M + half
    rr = np.arange(int(np.ceil(lo_r)), int(np.floor(hi_r)) + 1)
    cc = np.arange(int(np.ceil(lo_c)), int(np.floor(hi_c)) + 1)
    return rr, cc


def ego_cells(xy: np.ndarray, length: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), each (..., R * C) int: the grid cells of the ego footprint at waypoints
    ``xy`` (..., 2) (x forward, y left, m), clipped to the grid."""
    rr, cc = ego_footprint_offsets(length, width)
    r_off, c_off = np.meshgrid(rr, cc, indexing="ij")
    f, u = xy[..., 0:1], -xy[..., 1:2]  # forward, right
    rows = (CELLS - 2 * f - r_off.reshape(-1)).astype(np.int64)  # astype truncates, as VAD
    cols = (2 * u + c_off.reshape(-1)).astype(np.int64)
    return np.clip(rows, 0, CELLS - 1), np.clip(cols, 0, CELLS - 1)


def box_corner_cells(box: np.ndarray) -> np.ndarray:
    """(4, 2) rounded (row, col) grid coordinates of the corners of ``box`` (5,) = x, y, length,
    width, yaw (ego frame, m, rad), in order around the box."""
    x, y, length, width, yaw = box
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2, width / 2]
    fx = x + local[:, 0] * c - local[:, 1] * s
    fy = y + local[:, 0] * s + local[:, 1] * c
    return np.round(np.stack([CELLS / 2 - 2 * fx, CELLS / 2 - 2 * fy], -1))


def fill_quad(grid: np.ndarray, corners: np.ndarray) -> None:
    """Mark in ``grid`` (CELLS, CELLS) bool every cell on or inside the convex quadrilateral
    with ``corners`` (4, 2) (row, col) in order; cells off the grid are ignored."""
    lo = np.maximum(np.floor(corners.min(0)), 0).astype(int)
    hi = np.minimum(np.ceil(corners.max(0)), CELLS - 1).astype(int)
    if (hi < lo).any():
        return
    r, c = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    nxt = np.roll(corners, -1, axis=0)
    a, b = corners[:, :, None, None], nxt[:, :, None, None]  # (4, 2, 1, 1) edge ends
    cross = (b[:, 0] - a[:, 0]) * (c - a[:, 1]) - (b[:, 1] - a[:, 1]) * (r - a[:, 0])
    inside = (cross >= 0).all(0) | (cross <= 0).all(0)  # either winding; edges included
    grid[r[inside], c[inside]] = True


def occupancy(agents: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, CELLS, CELLS) bool occupancy of one sample's agents ``agents`` (K, T, 5) = x, y,
    length, width, yaw at each future step, ``valid`` (K, T)."""
    k, t = valid.shape
    grid = np.zeros((t, CELLS, CELLS), bool)
    for i in range(k):
        for step in range(t):
            if valid[i, step]:
                fill_quad(grid[step], box_corner_cells(agents[i, step]))
    return grid


def grid_collision_steps(
    plans: list[np.ndarray], agents: np.ndarray, valid: np.ndarray, ego_lw: tuple[float, float]
) -> list[np.ndarray]:
    """Per plan, (N, T) bool: whether VAD's ego footprint at each waypoint meets an occupied
    cell at that step. ``plans``: several (N, T, 2) plans tested on the same scenes (e.g. the
    model's and the expert's; the grid is built once); ``agents`` (N, K, T, 5) x, y, length,
    width, yaw; ``valid`` (N, K, T); ``ego_lw`` (length, width) m."""
    n, _, t, _ = agents.shape
    out = [np.zeros((n, t), bool) for _ in plans]
    for s in range(n):
        grid = occupancy(agents[s], valid[s])
        for p, plan in enumerate(plans):
            rows, cols = ego_cells(plan[s], *ego_lw)  # (T, R * C)
            out[p][s] = grid[np.arange(t)[:, None], rows, cols].any(-1)
    return out
