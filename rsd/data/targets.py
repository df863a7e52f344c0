"""Targets of a frame: ground truth the losses and metrics score a model against.

The target builder of navsim's split (the teacher's risk targets are another one:
:mod:`rsd.teacher.risk_map`). Nothing here is a model input: see :mod:`rsd.data.features`.
"""

from __future__ import annotations

import numpy as np

from rsd.data.raster import draw_map
from rsd.geometry import BEVGrid, BoxField
from rsd.scene import Frame


def agent_targets(frame: Frame, grid: BEVGrid) -> dict[str, np.ndarray]:
    """Per-agent targets, agents sorted by id (K of them, T = FUTURE_STEPS):

    ``agent_boxes`` (K, 8) float32 (:class:`~rsd.geometry.BoxField`), ``agent_cls`` (K,) int64
    (:class:`~rsd.scene.AgentClass`), ``agent_ids`` (K,) int64, ``agent_in_grid`` (K,) bool
    (centre inside the grid: the detection targets), ``agent_vel_valid`` (K,) bool (velocity
    measured: :attr:`~rsd.scene.AgentState.velocity_valid`), ``agent_future`` (K, T, 3)
    float32 ``(x, y, yaw)``, ``agent_future_valid`` (K, T) bool.
    """
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
        "agent_vel_valid": np.array([a.velocity_valid for a in agents], dtype=bool),
        "agent_future": future,
        "agent_future_valid": future_valid,
    }


def ego_targets(frame: Frame) -> dict[str, np.ndarray]:
    """The ego's logged motion and size (T = FUTURE_STEPS, P = PAST_STEPS): ``ego_future``
    (T, 3) the expert's plan, ``ego_future_valid`` (T,), ``ego_past`` (P, 3) oldest first,
    ``ego_past_valid`` (P,), ``ego_size`` (3,) length/width/height (m)."""
    ego = frame.ego
    return {
        "ego_future": np.asarray(ego.future, dtype=np.float32),
        "ego_future_valid": np.asarray(ego.future_valid, dtype=bool),
        "ego_past": np.asarray(ego.past, dtype=np.float32),
        "ego_past_valid": np.asarray(ego.past_valid, dtype=bool),
        "ego_size": np.array([ego.length, ego.width, ego.height], dtype=np.float32),
    }


def map_targets(frame: Frame, grid: BEVGrid) -> np.ndarray:
    """``target_maps`` (2, H, W) float32, channels :class:`~rsd.geometry.TargetChannel`: the
    drivable area and any painted line, from the map itself whatever the rig senses."""
    drivable, lines = draw_map(frame, grid)
    return np.stack([drivable, (lines > 0).astype(np.float32)])


def build_targets(
    frame: Frame, grid: BEVGrid | None = None, maps: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every ground-truth target of one frame on ``grid`` (default ``BEVGrid()``) as numpy
    arrays: ``target_maps``, the entries of :func:`ego_targets` and of :func:`agent_targets`.
    ``maps``: this frame's ``target_maps`` already made (e.g. read from a cache), used as is."""
    grid = grid or BEVGrid()
    return {
        "target_maps": map_targets(frame, grid) if maps is None else maps,
        **ego_targets(frame),
        **agent_targets(frame, grid),
    }
