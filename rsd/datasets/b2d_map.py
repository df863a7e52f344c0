"""Bench2Drive's HD maps (``<Town>_HD_map.npz``, one per CARLA town, a separate download) read
into a :class:`~rsd.datasets.lanes.LaneMap`.

The format, as the public Bench2Drive repository writes it (``tools/gen_hdmap.py``, its docstring
of ``lane_marking_dict``): ``np.savez_compressed(..., arr=np.array(list(d.items()),
dtype=object))`` of ``d = {road_id: {lane_id: [entry, ...], "Trigger_Volumes": [...]}}``;
an entry is ``{"Points": [((x, y, z), (roll, pitch, yaw)[, is_junction]), ...], "Type": ...}``
in CARLA's left-handed world (m, degrees), points 5 cm apart in the lane's driving direction.
``Type == "Center"`` is the lane's centreline; the lane's other entries are its painted lines
(``"Broken"``, ``"Solid"``, ``"SolidSolid"``, ``"NONE"``...), drawn half a lane width either
side. Here: centrelines with y flipped (rsd's right-handed world, as the clip reader's poses),
the width twice the median distance of the lane's line points from its centreline, each line
on the side where it lies. The array holds Python objects, so loading it unpickles: open only
map files you trust (Bench2Drive's own).

Neighbours: each ``Center`` entry also carries ``"Left"`` and ``"Right"``, the ``(road_id,
lane_id)`` of CARLA's ``get_left_lane()`` / ``get_right_lane()`` at the entry's last waypoint
(``(None, None)`` where there is none). CARLA steps across the road's centre line there (lane
``-1``'s left is lane ``1``, driven the other way), so a link counts only to a lane of the same
road with a lane id of the same sign (OpenDRIVE: the same driving direction), and only if the
map holds it (shoulders and sidewalks are not in it). Maps written without the keys give no
neighbours.

The town is the ``Town..`` part of the clip's path (e.g. ``Town12_Rep0_...``); its map is looked
up as ``DIR/<d>/<Town>_HD_map.npz`` for ``d`` in :data:`MAP_DIRS`, ``DIR`` the reader's root.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import replace
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.datasets.lanes import (
    LaneMap,
    MapLane,
    point_to_polyline,
    resample,
    width_from_boundary,
)
from rsd.scene import LineKind

MAP_DIRS = ("maps", "Bench2Drive-Map", "")
"""Folders under a ``bench2drive:DIR`` root searched for ``<Town>_HD_map.npz`` (in order)."""
TOWN = re.compile(r"Town\d+(?:HD)?")
CENTRE_STEP = 0.5
"""Spacing (m) the 5 cm centrelines are thinned to."""
LINE_EVERY = 20
"""Every n-th point of a painted line is used to measure the width (1 m at 5 cm)."""
MAX_HALF_WIDTH = 4.0
"""Line points farther than this (m) from a centreline belong to another stretch of the lane."""


def town_of(clip: str) -> str | None:
    """The CARLA town in a clip's name or path (``.../Town12_Rep0_1_route0`` -> ``Town12``)."""
    found = TOWN.findall(str(clip))
    return found[-1] if found else None


def find_map(root: Path, town: str) -> Path | None:
    """``<Town>_HD_map.npz`` under ``root`` (:data:`MAP_DIRS`), or None."""
    for d in MAP_DIRS:
        path = Path(root) / d / f"{town}_HD_map.npz"
        if path.exists():
            return path
    return None


def _xy(points: list, where: str) -> np.ndarray:
    """(N, 2) rsd-world points (y flipped) of an entry's ``Points``."""
    try:
        xy = np.array([[float(p[0][0]), -float(p[0][1])] for p in points], dtype=np.float64)
    except (TypeError, IndexError, ValueError):
        raise ConfigError(
            f"{where}: Points are not ((x, y, z), (roll, pitch, yaw)) pairs"
        ) from None
    return xy.reshape(-1, 2)


def line_kind(marking: str) -> LineKind:
    """CARLA's lane marking type -> :class:`LineKind` (any solid part: continuous)."""
    if "Solid" in marking:
        return LineKind.CONTINUOUS
    return LineKind.STRIPED if "Broken" in marking else LineKind.NONE


def _lane(lane_id: str, centre: np.ndarray, lines: list[tuple[np.ndarray, str]]) -> MapLane:
    """A centreline and the lane's painted lines -> :class:`MapLane` (width, line per side)."""
    centre = resample(centre, CENTRE_STEP)
    near, sides = [], {1: [], -1: []}
    for pts, kind in lines:
        pts = pts[::LINE_EVERY]
        if len(centre) < 2 or len(pts) == 0:
            continue
        dist, seg = point_to_polyline(pts, centre)
        pts, seg = pts[dist <= MAX_HALF_WIDTH], seg[dist <= MAX_HALF_WIDTH]
        if len(pts) == 0:
            continue
        d = centre[seg + 1] - centre[seg]
        rel = pts - centre[seg]
        side = np.sign(np.median(d[:, 0] * rel[:, 1] - d[:, 1] * rel[:, 0]))  # + = left
        sides.setdefault(int(side), []).append(line_kind(kind))
        near.append(pts)
    boundary = np.concatenate(near) if near else None

    def kind_on(side: int) -> LineKind:
        kinds = sides[side]
        return max(set(kinds), key=kinds.count) if kinds else LineKind.NONE

    return MapLane(lane_id, centre, width_from_boundary(centre, boundary), kind_on(1), kind_on(-1))


Link = tuple[str, str] | None
"""``(road id, lane id)`` of a neighbour, as text; None: no neighbour on that side."""


def _link(entry: dict[str, Any], key: str, road: Any, lane: Any) -> Link:
    """The ``(road, lane)`` an entry's ``Left`` / ``Right`` names, if it is a lane driven the
    same way on the same road (see the module doc); None otherwise."""
    try:
        other_road, other_lane = entry.get(key) or (None, None)
        same_way = int(other_lane) * int(lane) > 0
    except (TypeError, ValueError):
        return None
    return (str(other_road), str(other_lane)) if same_way and str(other_road) == str(road) else None


def _with_neighbours(lanes: list[tuple[MapLane, Link, Link]]) -> list[MapLane]:
    """Each lane with the ids of the ``Center`` entries (all of them: a lane can have one per
    lane section) of the lanes its links name."""
    ids: dict[tuple[str, str], tuple[str, ...]] = {}
    for lane, _, _ in lanes:
        road, lane_id, _ = lane.lane_id.split("/")
        ids[(road, lane_id)] = (*ids.get((road, lane_id), ()), lane.lane_id)
    return [
        replace(
            lane, left=ids.get(left, ()) if left else (), right=ids.get(right, ()) if right else ()
        )
        for lane, left, right in lanes
    ]


def load_hd_map(path: Path) -> LaneMap:
    """The lanes of one town's HD map; a missing or malformed file is a ConfigError naming it."""
    where = f"Bench2Drive HD map {path}"
    if not zipfile.is_zipfile(path):  # np.load would unpickle a bare file
        raise ConfigError(f"{where}: not an npz (zip) file")
    try:
        with np.load(path, allow_pickle=True) as npz:
            roads: dict[Any, Any] = dict(npz["arr"])
    except (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        zipfile.BadZipFile,
        UnpicklingError,
    ) as e:
        raise ConfigError(
            f"{where}: not an npz with an 'arr' of (road, lanes) pairs: {e}"
        ) from None
    lanes: list[tuple[MapLane, Link, Link]] = []
    for road_id, road in roads.items():
        if not isinstance(road, dict):
            raise ConfigError(f"{where}: road {road_id} is not a dict of lanes")
        for lane_id, entries in road.items():
            if lane_id == "Trigger_Volumes":
                continue
            here = f"{where}: road {road_id} lane {lane_id}"
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ConfigError(f"{here}: not a list of entries")
            lines = [(_xy(e.get("Points"), here), str(e.get("Type"))) for e in entries]
            for j, (pts, kind) in enumerate(lines):
                if kind == "Center" and len(pts) >= 2:
                    others = [ln for ln in lines if ln[1] != "Center"]
                    lane = _lane(f"{road_id}/{lane_id}/{j}", pts, others)
                    left = _link(entries[j], "Left", road_id, lane_id)
                    lanes.append((lane, left, _link(entries[j], "Right", road_id, lane_id)))
    return LaneMap(_with_neighbours(lanes))
