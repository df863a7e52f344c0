"""nuScenes' map expansion (v1.3, ``maps/expansion/<location>.json``) read into a
:class:`~rsd.datasets.lanes.LaneMap`, without the devkit.

The format, as the devkit's ``map_expansion`` documents it: ``lane`` and ``lane_connector``
records (``token``, ``polygon_token``; lanes also ``left_lane_divider_segments`` /
``right_lane_divider_segments``, each ``{"node_token", "segment_type"}``), ``polygon``
(``exterior_node_tokens``), ``node`` (``x``, ``y`` m), and ``arcline_path_3``: lane token -> list
of arcline paths, each ``start_pose`` ``(x, y, yaw)``, ``shape`` (three of ``L``, ``S``, ``R``),
``radius`` (m) and three ``segment_length`` (m): a path drives its three segments in turn, a
left turn (``L``, curvature ``+1 / radius``), straight (``S``) or a right turn (``R``,
``-1 / radius``). The centreline is that path sampled every :data:`ARC_STEP` m (a point after
distance ``d`` on a segment of curvature ``k`` from pose ``(x, y, theta)``:
``(x + (sin(theta + k d) - sin theta) / k, y - (cos(theta + k d) - cos theta) / k, theta + k d)``,
the straight line when ``k = 0``); a lane's width is measured from its polygon's nodes
(:func:`~rsd.datasets.lanes.width_from_boundary`); its lines from its divider segments.

Neighbours: the expansion has no left/right link (``connectivity`` gives only ``incoming`` /
``outgoing``), but the painted divider between two lanes driven the same way is the left
divider of the right-hand one and the right divider of the left-hand one, and their segments
name the same nodes. So lane B is directly left of lane A when A's
``left_lane_divider_segments`` and B's ``right_lane_divider_segments`` share at least
:data:`SHARED_NODES` node tokens (the approach a devkit maintainer endorsed in
nuscenes-devkit issue 690). An oncoming lane shares A's *left* divider with its own left one,
so it is never linked; connectors have no dividers, so no neighbours.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.datasets.lanes import LaneMap, MapLane, width_from_boundary
from rsd.scene import LineKind

ARC_STEP = 0.5
"""Discretisation (m) of the arcline paths: a chord of a 10 m-radius turn sags 3 mm."""
MIN_VERSION = "1.3"
"""The first expansion version with ``arcline_path_3`` (the devkit refuses older ones too)."""
CURVATURE_SIGN = {"L": 1.0, "S": 0.0, "R": -1.0}
SHARED_NODES = 2
"""Divider nodes two lanes must share to be neighbours: one shared node is only a corner where
a lane's successor starts beside it (a diagonal, not a neighbour)."""


def expansion_path(dataroot: Path, location: str) -> Path:
    """Where the expansion of ``location`` (``log.location``) lies under a dataroot."""
    return Path(dataroot) / "maps" / "expansion" / f"{location}.json"


def advance(pose: np.ndarray, k: float, d: np.ndarray) -> np.ndarray:
    """(len(d), 3) poses after driving distances ``d`` (m) at curvature ``k`` (1/m) from
    ``pose`` = (x, y, yaw)."""
    x, y, th = (float(v) for v in pose)
    d = np.asarray(d, dtype=np.float64)
    if abs(k) < 1e-12:
        return np.stack([x + d * np.cos(th), y + d * np.sin(th), np.full_like(d, th)], axis=1)
    th1 = th + k * d
    return np.stack(
        [x + (np.sin(th1) - np.sin(th)) / k, y - (np.cos(th1) - np.cos(th)) / k, th1], 1
    )


def arcline_poses(path: dict[str, Any], step: float = ARC_STEP, where: str = "") -> np.ndarray:
    """(N, 3) poses (x, y, yaw) along one arcline path, ``step`` m apart at most, both ends
    included; a malformed record is a ConfigError naming ``where``."""
    try:
        shape, radius = str(path["shape"]), float(path["radius"])
        lengths = [float(v) for v in path["segment_length"]]
        pose = np.asarray(path["start_pose"], dtype=np.float64)[:3]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{where}: an arcline path lacks start_pose/shape/radius/segment_length"
        ) from None
    if len(shape) != 3 or set(shape) - set(CURVATURE_SIGN) or len(lengths) != 3 or radius <= 0:
        raise ConfigError(f"{where}: arcline path shape {shape!r} / radius {radius} is malformed")
    total = sum(lengths)
    s = np.linspace(0.0, total, max(int(np.ceil(total / step)) + 1, 2))
    out = np.empty((len(s), 3))
    start = 0.0
    for j, (letter, length) in enumerate(zip(shape, lengths, strict=True)):
        k = CURVATURE_SIGN[letter] / radius
        on = (s >= start) & ((s <= start + length) if j == 2 else (s < start + length))
        out[on] = advance(pose, k, s[on] - start)
        pose = advance(pose, k, np.array([length]))[0]
        start += length
    return out


def centreline(paths: list[dict[str, Any]], where: str) -> np.ndarray:
    """(N, 2) centreline of a lane's arcline paths, joined (each join point once)."""
    parts = [arcline_poses(p, where=where)[:, :2] for p in paths]
    return np.concatenate([parts[0], *(p[1:] for p in parts[1:])]) if parts else np.zeros((0, 2))


def line_kind(segments: list[dict[str, Any]] | None) -> LineKind:
    """The line a lane's divider segments mostly paint: dashed -> striped, solid -> continuous,
    none given (a road edge, a connector) -> none."""
    kinds = Counter(str(seg.get("segment_type", "")).upper() for seg in segments or [])
    if not kinds:
        return LineKind.NONE
    common = kinds.most_common(1)[0][0]
    if "DASHED" in common:
        return LineKind.STRIPED
    return LineKind.CONTINUOUS if "SOLID" in common else LineKind.NONE


def _nodes(segments: Any) -> set[str]:
    """The node tokens of a lane's divider segments."""
    return {str(seg["node_token"]) for seg in segments or [] if "node_token" in seg}


def neighbours(records: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """``{lane token: (tokens directly left, tokens directly right)}`` from shared divider
    nodes (see the module doc); lanes without dividers are absent."""
    right_of: dict[str, set[str]] = {}  # node -> lanes whose right divider has it
    for rec in records:
        for node in _nodes(rec.get("right_lane_divider_segments")):
            right_of.setdefault(node, set()).add(str(rec["token"]))
    out: dict[str, tuple[list[str], list[str]]] = {}
    for rec in records:
        tok = str(rec["token"])
        shared = Counter(
            b for n in _nodes(rec.get("left_lane_divider_segments")) for b in right_of.get(n, ())
        )
        for b, count in sorted(shared.items()):
            if count >= SHARED_NODES and b != tok:
                out.setdefault(tok, ([], []))[0].append(b)
                out.setdefault(b, ([], []))[1].append(tok)
    return out


def load_expansion(path: Path) -> LaneMap:
    """The lanes and lane connectors of one expansion file; a malformed file is a ConfigError
    naming it."""
    try:
        data = json.loads(Path(path).read_text())
        arclines = data["arcline_path_3"]
        nodes = {n["token"]: (float(n["x"]), float(n["y"])) for n in data["node"]}
        polygons = {p["token"]: p.get("exterior_node_tokens", []) for p in data["polygon"]}
        records = [*data["lane"], *data.get("lane_connector", [])]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"nuScenes map expansion {path}: not valid JSON: {e}") from None
    except (KeyError, TypeError) as e:
        raise ConfigError(
            f"nuScenes map expansion {path}: no {e} layer (version {MIN_VERSION} or later needed)"
        ) from None
    try:
        links = neighbours(data["lane"])
    except (KeyError, TypeError) as e:
        raise ConfigError(
            f"nuScenes map expansion {path}: a lane's divider segments: {e}"
        ) from None
    lanes = []
    for rec in records:
        paths = arclines.get(rec.get("token"))
        if not paths:
            continue
        centre = centreline(paths, f"nuScenes map expansion {path}: lane {rec['token']}")
        ring = polygons.get(rec.get("polygon_token"), [])
        boundary = np.array([nodes[t] for t in ring if t in nodes]).reshape(-1, 2)
        lanes.append(
            MapLane(
                lane_id=str(rec["token"]),
                centre=centre,
                width=width_from_boundary(centre, boundary),
                left_line=line_kind(rec.get("left_lane_divider_segments")),
                right_line=line_kind(rec.get("right_lane_divider_segments")),
                left=tuple(links.get(str(rec["token"]), ([], []))[0]),
                right=tuple(links.get(str(rec["token"]), ([], []))[1]),
            )
        )
    return LaneMap(lanes)
