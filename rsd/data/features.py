"""Input features of a frame: what the car senses through its sensor rig, never ground truth.

The feature builder of navsim's split: a model receives these and nothing else
(``model(features)``); labels come from :mod:`rsd.data.targets`. A closed-loop planner turns a
live :class:`~rsd.scene.Frame` into model input with :func:`build_features` followed by
:func:`batch_of_one`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

# SensorRig through raster: rigs.py is also the `rsd rigs` command, which only the CLI imports
from rsd.data.raster import RasterConfig, SensorRig, input_raster
from rsd.geometry import ROUTE_POINTS, ROUTE_SPACING, BEVGrid, EgoStatusField
from rsd.scene import Frame, lane_offset_known

FEATURE_KEYS = ("bev", "command", "ego_status", "ego_status_valid", "route", "route_valid")
"""What :func:`build_features` returns; every model input is among them."""


def ego_status(frame: Frame) -> np.ndarray:
    """(4,) float32 ego status, columns :class:`~rsd.geometry.EgoStatusField`: speed (m/s),
    target speed (m/s), yaw rate (rad/s), lane offset (m): odometry, localisation and the
    speed the ego is asked for. Every value means the same in training and in closed loop;
    acceleration is left out (the expert's command in training, the tracking controller's in
    closed loop). A frame without a target speed (NaN) gets its current speed there; an
    unknown lane offset (real data without a lane map, NaN in the frame) is 0 here, never NaN,
    and :func:`ego_status_valid` says which (the simulator's is always known)."""
    ego = frame.ego
    target = ego.speed if np.isnan(ego.target_speed) else ego.target_speed
    offset = ego.lane_offset if lane_offset_known(ego) else 0.0
    return np.array([ego.speed, target, ego.yaw_rate, offset], dtype=np.float32)


def ego_status_valid(frame: Frame) -> np.ndarray:
    """(4,) float32, 1 where the matching :func:`ego_status` column is measured and 0 where it
    was unknown and stands in as 0 (only the lane offset can be: real data without a lane
    map). A model that reads ``ego_status`` can gate or embed on it."""
    valid = np.ones(len(EgoStatusField), dtype=np.float32)
    valid[EgoStatusField.LANE_OFFSET] = float(lane_offset_known(frame.ego))
    return valid


def route_feature(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """``(ROUTE_POINTS, 2)`` float32 ego-frame points of the frame's route ahead
    (:attr:`~rsd.scene.Frame.route`) at arc lengths ``ROUTE_SPACING, 2 ROUTE_SPACING, ...``
    from its first point (held at its end when the route is shorter), and ``()`` float32 1
    where the frame has a route, 0 (and zero points) where not (real data)."""
    route = np.asarray(frame.route, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((ROUTE_POINTS, 2), dtype=np.float32)
    if len(route) < 2:
        return out, np.array(0.0, dtype=np.float32)
    seg = np.hypot(*np.diff(route, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = ROUTE_SPACING * np.arange(1, ROUTE_POINTS + 1)
    out[:, 0] = np.interp(s, arc, route[:, 0])
    out[:, 1] = np.interp(s, arc, route[:, 1])
    return out, np.array(1.0, dtype=np.float32)


def build_features(
    frame: Frame,
    rig: SensorRig,
    grid: BEVGrid | None = None,
    raster: RasterConfig | None = None,
    bev: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The model input of one frame, as numpy arrays:

    * ``bev`` (C, H, W) float32, channels :class:`~rsd.geometry.InputChannel`
      (C = 4 + ``raster.history``; defaults: ``BEVGrid()``, ``RasterConfig()``): the rig's
      map layers, route and sensor returns;
    * ``command`` () int64 (:class:`~rsd.scene.Command`);
    * ``ego_status`` (4,) float32 (:class:`~rsd.geometry.EgoStatusField`), finite;
    * ``ego_status_valid`` (4,) float32, 1 where that column is known (:func:`ego_status_valid`);
    * ``route`` (ROUTE_POINTS, 2) float32 and ``route_valid`` () float32: the route ahead as
      points (:func:`route_feature`), what the ``ROUTE`` channel draws.

    ``bev``: the raster of this frame already made (e.g. read from a cache), used as is.
    """
    grid, raster = grid or BEVGrid(), raster or RasterConfig()
    return {
        "bev": input_raster(frame, rig, grid, raster) if bev is None else bev,
        "command": np.array(int(frame.command), dtype=np.int64),
        "ego_status": ego_status(frame),
        "ego_status_valid": ego_status_valid(frame),
        **dict(zip(("route", "route_valid"), route_feature(frame), strict=True)),
    }


def batch_of_one(
    features: Mapping[str, np.ndarray], device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Features of one frame as a batch of one for ``model(features)`` (a leading B = 1)."""
    return {k: torch.from_numpy(np.asarray(v))[None].to(device) for k, v in features.items()}
