"""A tiny nuScenes release in the official v1.0 table format, written from a seed.

Imports only numpy and the standard library (not rsd): ``scripts/devkit_nuscenes_fixture.py``
runs it in the devkit's own environment to build the very same data set, so the devkit's
results recorded there can be compared with rsd's reader on it.

Two scenes: ``scene-0001`` with 10 samples (the ego drives a gentle left curve, with a little
pitch), ``scene-0002`` with 3. Objects: a moving car, a walking pedestrian, a parked truck
missing from one sample (a track gap), a static barrier, a car annotated only once (NaN
velocity in the devkit), and an animal (a category without a detection class). Every sample
has ``LIDAR_TOP`` and ``CAM_FRONT`` keyframe data (the camera 20 ms after the lidar, on its
own ego pose) and a tiny PNG per camera image.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

VERSION = "v1.0-fixture"
IMAGE_SIZE = (160, 90)  # (width, height): nuScenes' 1600 x 900 scaled by 1/10
INTRINSICS = [[126.6, 0.0, 81.6], [0.0, 126.6, 49.1], [0.0, 0.0, 1.0]]
CAM_TRANSLATION = [1.70, 0.016, 1.51]
CAM_ROTATION = [0.4998, -0.5030, 0.4998, -0.4972]  # camera (x right, y down, z ahead) -> ego
LIDAR_TRANSLATION = [0.94, 0.0, 1.84]
LIDAR_ROTATION = [0.7071, 0.0, 0.0, 0.7071]
# (instance name, category, size (w, l, h), first sample, last sample, missing samples)
OBJECTS = [
    ("car_moving", "vehicle.car", (1.9, 4.6, 1.7), 0, 9, ()),
    ("pedestrian", "human.pedestrian.adult", (0.7, 0.7, 1.8), 1, 8, ()),
    ("truck_parked", "vehicle.truck", (2.5, 7.0, 3.0), 0, 9, (4,)),
    ("barrier", "movable_object.barrier", (2.4, 0.5, 1.0), 2, 6, ()),
    ("car_once", "vehicle.car", (1.8, 4.3, 1.5), 5, 5, ()),
    ("dog", "animal", (0.4, 0.8, 0.6), 0, 3, ()),
]


def quat_yaw_pitch(yaw: float, pitch: float = 0.0) -> list[float]:
    """``(w, x, y, z)`` of a rotation by ``yaw`` about z after ``pitch`` about y."""
    cy, sy, cp, sp = math.cos(yaw / 2), math.sin(yaw / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    return [cy * cp, -sy * sp, cy * sp, sy * cp]


def write_png(path: Path, width: int, height: int, shade: int) -> None:
    """A grey PNG of ``width`` x ``height`` (no imaging library needed)."""
    raw = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
    path.write_bytes(png + chunk(b"IEND", b""))


def _ego(t: float) -> tuple[list[float], list[float]]:
    """Ego ``(translation, rotation)`` at time ``t`` (s): 8 m/s on a left curve."""
    yaw = 0.3 + 0.04 * t
    x = 600.0 + (8.0 / 0.04) * (math.sin(yaw) - math.sin(0.3))
    y = 1600.0 - (8.0 / 0.04) * (math.cos(yaw) - math.cos(0.3))
    return [x, y, 0.1 * t], quat_yaw_pitch(yaw, 0.01 * math.sin(t))


def _object_pose(name: str, t: float) -> tuple[list[float], list[float]]:
    """World ``(translation, rotation)`` of an object at time ``t`` (s)."""
    base = {
        "car_moving": ([615.0, 1606.0, 0.9], 0.35, 10.0),
        "pedestrian": ([625.0, 1615.0, 0.9], 1.9, 1.3),
        "truck_parked": ([630.0, 1605.0, 1.5], 0.33, 0.0),
        "barrier": ([640.0, 1618.0, 0.5], 1.2, 0.0),
        "car_once": ([620.0, 1598.0, 0.8], -2.8, 5.0),
        "dog": ([612.0, 1613.0, 0.3], 0.0, 2.0),
    }[name]
    (x, y, z), yaw, speed = base
    return [x + speed * t * math.cos(yaw), y + speed * t * math.sin(yaw), z], quat_yaw_pitch(yaw)


def _chain(records: list[dict]) -> None:
    for i, r in enumerate(records):
        r["prev"] = records[i - 1]["token"] if i > 0 else ""
        r["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""


def build_tables(root: Path, seed: int = 0) -> dict[str, list[dict]]:
    """The tables of the fixture (and its images under ``root``); tokens are readable names."""
    rng = np.random.default_rng(seed)
    t: dict[str, list[dict]] = {k: [] for k in (
        "scene sample sample_data sample_annotation instance category ego_pose "
        "calibrated_sensor sensor log map attribute visibility").split()}  # fmt: skip
    t["visibility"] = [{"token": "4", "level": "v80-100", "description": "visible"}]
    t["log"] = [{"token": "log0", "logfile": "fixture", "vehicle": "n000", "date_captured":
                 "2026-01-01", "location": "singapore-onenorth"}]  # fmt: skip
    t["map"] = [{"token": "map0", "log_tokens": ["log0"], "category": "semantic_prior",
                 "filename": "maps/none.png"}]  # fmt: skip
    for ch, mod in (("LIDAR_TOP", "lidar"), ("CAM_FRONT", "camera")):
        t["sensor"].append({"token": f"sensor_{ch}", "channel": ch, "modality": mod})
    t["calibrated_sensor"] = [
        {"token": "cs_LIDAR_TOP", "sensor_token": "sensor_LIDAR_TOP", "translation":
         LIDAR_TRANSLATION, "rotation": LIDAR_ROTATION, "camera_intrinsic": []},
        {"token": "cs_CAM_FRONT", "sensor_token": "sensor_CAM_FRONT", "translation":
         CAM_TRANSLATION, "rotation": CAM_ROTATION, "camera_intrinsic": INTRINSICS},
    ]  # fmt: skip
    cats = sorted({o[1] for o in OBJECTS})
    t["category"] = [{"token": f"cat_{c}", "name": c, "description": c} for c in cats]
    (root / "samples" / "CAM_FRONT").mkdir(parents=True, exist_ok=True)
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
    (root / "maps").mkdir(parents=True, exist_ok=True)
    write_png(root / "maps" / "none.png", 4, 4, shade=0)  # the devkit insists on a map mask
    clock = 1_533_000_000_000_000
    for s_i, n_samples in enumerate((10, 3)):
        clock = _scene(t, root, rng, s_i, n_samples, clock)
    return t


def _scene(t: dict, root: Path, rng: np.random.Generator, s_i: int, n: int, clock: int) -> int:
    scene_tok = f"scene{s_i}"
    samples, lidar, cam = [], [], []
    for k in range(n):
        ts = clock + k * 500_000 + int(rng.integers(-3000, 3000))
        tok = f"s{s_i}_{k:02d}"
        samples.append({"token": tok, "timestamp": ts, "scene_token": scene_tok})
        for ch, dt, chain in (("LIDAR_TOP", 0, lidar), ("CAM_FRONT", 20_000, cam)):
            ep_tok = f"ep_{ch}_{tok}"
            trans, rot = _ego(1e-6 * (ts + dt - clock))
            t["ego_pose"].append(
                {"token": ep_tok, "timestamp": ts + dt, "translation": trans, "rotation": rot}
            )
            ext = "png" if ch == "CAM_FRONT" else "pcd.bin"
            filename = f"samples/{ch}/{tok}.{ext}"
            if ch == "CAM_FRONT":
                write_png(root / filename, *IMAGE_SIZE, shade=40 + 10 * k)
            else:
                (root / filename).write_bytes(b"")
            w, h = IMAGE_SIZE if ch == "CAM_FRONT" else (0, 0)
            chain.append({"token": f"sd_{ch}_{tok}", "sample_token": tok, "ego_pose_token": ep_tok,
                          "calibrated_sensor_token": f"cs_{ch}", "timestamp": ts + dt,
                          "fileformat": ext.split(".")[0], "is_key_frame": True, "height": h,
                          "width": w, "filename": filename})  # fmt: skip
    for chain in (samples, lidar, cam):
        _chain(chain)
    t["sample"] += samples
    t["sample_data"] += lidar + cam
    t["scene"].append({"token": scene_tok, "log_token": "log0", "nbr_samples": n,
                       "first_sample_token": samples[0]["token"],
                       "last_sample_token": samples[-1]["token"],
                       "name": f"scene-{s_i + 1:04d}", "description": "fixture"})  # fmt: skip
    for name, cat, size, first, last, missing in OBJECTS:
        keys = [k for k in range(first, min(last, n - 1) + 1) if k not in missing]
        if not keys:
            continue
        inst = f"inst_{name}_{s_i}"
        anns = []
        for k in keys:
            trans, rot = _object_pose(name, 1e-6 * (samples[k]["timestamp"] - clock))
            anns.append({"token": f"ann_{name}_{s_i}_{k:02d}", "sample_token": samples[k]["token"],
                         "instance_token": inst, "visibility_token": "4", "attribute_tokens": [],
                         "translation": trans, "size": list(size), "rotation": rot,
                         "num_lidar_pts": 10, "num_radar_pts": 0})  # fmt: skip
        _chain(anns)
        t["sample_annotation"] += anns
        t["instance"].append({"token": inst, "category_token": f"cat_{cat}",
                              "nbr_annotations": len(anns),
                              "first_annotation_token": anns[0]["token"],
                              "last_annotation_token": anns[-1]["token"]})  # fmt: skip
    return clock + 60_000_000


def write_fixture(root: Path, seed: int = 0) -> Path:
    """Write the fixture under ``root`` (the dataroot); returns its table folder."""
    root = Path(root)
    tables = build_tables(root, seed)
    table_dir = root / VERSION
    table_dir.mkdir(parents=True, exist_ok=True)
    for name, records in tables.items():
        (table_dir / f"{name}.json").write_text(json.dumps(records, indent=1))
    return table_dir


# --- the map expansion (v1.3) of the fixture's location ---------------------------------------
LOCATION = "singapore-onenorth"
EGO_CIRCLE = (600.0 - 200.0 * math.sin(0.3), 1600.0 + 200.0 * math.cos(0.3), 200.0)
"""(cx, cy, radius) m: the circle the ego drives on (``_ego``: 8 m/s, 0.04 rad/s)."""
ARC_RADIUS = 200.5
"""``lane_arc`` is concentric, 0.5 m outside the ego's path: the ego is 0.5 m left of it."""
ARC_WIDTH, STRAIGHT_WIDTH, STRAIGHT_RIGHT = 3.5, 3.0, 8.0


def circle_pose(radius: float, phi: float) -> list[float]:
    """``(x, y, yaw)`` on the ego's circle's centre at ``radius``, where the heading is ``phi``
    driving counter-clockwise (the ego's own pose at heading phi when radius = 200)."""
    cx, cy, _ = EGO_CIRCLE
    return [cx + radius * math.sin(phi), cy - radius * math.cos(phi), phi]


def _straight_pose(s: float, lateral: float = 0.0) -> list[float]:
    """On the straight lane: ``s`` m along heading 0.3 from 20 m behind the ego's start,
    ``STRAIGHT_RIGHT`` m to its right, plus ``lateral`` m to the left."""
    x0, y0, _ = circle_pose(200.0, 0.3)
    c, n = (math.cos(0.3), math.sin(0.3)), (-math.sin(0.3), math.cos(0.3))
    d = -STRAIGHT_RIGHT + lateral
    return [x0 + (s - 20.0) * c[0] + d * n[0], y0 + (s - 20.0) * c[1] + d * n[1], 0.3]


NEIGHBOURS = {"lane_arc_left": 1, "lane_arc_left2": 2, "lane_arc_right": -1}
"""Lanes on the ego lane's circle, 3.5 m apart, linked to it by shared divider nodes, and
their relation to it; ``lane_arc_diag`` shares only one node with it (a corner: no relation)."""


def _neighbour_lanes() -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """The lanes of :data:`NEIGHBOURS` and ``lane_arc_diag`` (no polygons: default width),
    their arcline paths and the divider nodes they add. The circle turns left, so smaller
    radii lie to the ego's left."""
    seg = lambda toks: [{"node_token": t, "segment_type": "DOUBLE_DASHED_WHITE"} for t in toks]  # noqa: E731
    arc_left, arc_right = [f"node_arc_{i}" for i in (0, 1, 2)], ["node_arc_3", "node_arc_4"]
    new_nodes = []
    for name, radius in (("div12", ARC_RADIUS - 5.25), ("div2c", ARC_RADIUS - 8.75)):
        for i in range(3):
            x, y, _ = circle_pose(radius, 0.2 + 0.05 * i)
            new_nodes.append({"token": f"node_{name}_{i}", "x": x, "y": y})
    x, y, _ = circle_pose(ARC_RADIUS - 1.75, 0.75)
    new_nodes.append({"token": "node_diag_1", "x": x, "y": y})
    div12, div2c = [f"node_div12_{i}" for i in range(3)], [f"node_div2c_{i}" for i in range(3)]
    dividers = {  # token: (left divider nodes, right divider nodes, radius, first phi)
        "lane_arc_left": (div12, arc_left, ARC_RADIUS - 3.5, 0.2),
        "lane_arc_left2": (div2c, div12, ARC_RADIUS - 7.0, 0.2),
        "lane_arc_right": (arc_right, [], ARC_RADIUS + 3.5, 0.2),
        "lane_arc_diag": ([], ["node_arc_2", "node_diag_1"], ARC_RADIUS - 3.5, 0.7),
    }
    lanes, paths = [], {}
    for tok, (left, right, radius, phi) in dividers.items():
        lanes.append({"token": tok, "polygon_token": "", "lane_type": "CAR",
                      "left_lane_divider_segments": seg(left),
                      "right_lane_divider_segments": seg(right)})  # fmt: skip
        paths[tok] = [{"start_pose": circle_pose(radius, phi), "end_pose": [0.0, 0.0, 0.0],
                       "shape": "LSL", "radius": radius,
                       "segment_length": [0.3 * radius, 0.0, 0.2 * radius]}]  # fmt: skip
    return lanes, paths, new_nodes


def build_expansion() -> dict:
    """Three lanes and a connector: ``lane_arc`` (shape LSL: two left arcs on one circle, the
    ego's lane), ``lane_straight`` (8 m right of the ego's start, 60 m), ``lane_oncoming`` (the
    ego's circle 0.2 m inside, driven the other way: near but never the ego's lane; it shares
    the leftmost same-way lane's left divider with its own left one, as an oncoming lane does)
    and ``conn_straight`` (10 m on from the straight lane, no polygon); plus the ego lane's
    neighbours (:func:`_neighbour_lanes`)."""
    nodes, polygons = [], []

    def polygon(name: str, points: list[list[float]]) -> str:
        toks = []
        for i, (x, y, *_rest) in enumerate(points):
            toks.append(f"node_{name}_{i}")
            nodes.append({"token": toks[-1], "x": x, "y": y})
        polygons.append({"token": f"poly_{name}", "exterior_node_tokens": toks, "holes": []})
        return f"poly_{name}"

    phis = [0.2 + 0.05 * i for i in range(10)]
    arc_ring = [circle_pose(ARC_RADIUS - ARC_WIDTH / 2, p) for p in phis]
    arc_ring += [circle_pose(ARC_RADIUS + ARC_WIDTH / 2, p) for p in reversed(phis)]
    ss = [0.0, 20.0, 40.0, 60.0]
    straight_ring = [_straight_pose(s, STRAIGHT_WIDTH / 2) for s in ss]
    straight_ring += [_straight_pose(s, -STRAIGHT_WIDTH / 2) for s in reversed(ss)]

    def lane(token: str, poly: str, left: str, right: str) -> dict:
        seg = lambda kind, i: {"node_token": f"node_{token[5:]}_{i}", "segment_type": kind}  # noqa: E731
        return {"token": token, "polygon_token": poly, "lane_type": "CAR",
                "from_edge_line_token": "", "to_edge_line_token": "",
                "left_lane_divider_segments": [seg(left, i) for i in (0, 1, 2)],
                "right_lane_divider_segments": [seg(right, i) for i in (3, 4)]}  # fmt: skip

    lanes = [
        lane("lane_arc", polygon("arc", arc_ring), "DOUBLE_DASHED_WHITE", "SINGLE_SOLID_WHITE"),
        lane("lane_straight", polygon("straight", straight_ring), "NIL", "NIL"),
        {"token": "lane_oncoming", "polygon_token": "", "lane_type": "CAR",
         "left_lane_divider_segments": [{"node_token": f"node_div2c_{i}",
                                         "segment_type": "SINGLE_SOLID_YELLOW"} for i in range(3)],
         "right_lane_divider_segments": []},
    ]  # fmt: skip
    neighbour_lanes, neighbour_paths, divider_nodes = _neighbour_lanes()
    arc = {"start_pose": circle_pose(ARC_RADIUS, 0.2), "end_pose": circle_pose(ARC_RADIUS, 0.7),
           "shape": "LSL", "radius": ARC_RADIUS, "segment_length": [60.0, 0.0, 40.0]}  # fmt: skip
    straight = {"start_pose": _straight_pose(0.0), "end_pose": _straight_pose(60.0),
                "shape": "RSR", "radius": 20.0, "segment_length": [0.0, 60.0, 0.0]}  # fmt: skip
    onc = circle_pose(200.2, 0.7)
    oncoming = {"start_pose": [onc[0], onc[1], 0.7 + math.pi], "end_pose": [0.0, 0.0, 0.0],
                "shape": "RSR", "radius": 200.2, "segment_length": [50.0, 0.0, 50.0]}  # fmt: skip
    conn = {"start_pose": _straight_pose(60.0), "end_pose": _straight_pose(70.0),
            "shape": "LSL", "radius": 20.0, "segment_length": [0.0, 10.0, 0.0]}  # fmt: skip
    empty = ("line drivable_area road_segment road_block ped_crossing walkway stop_line "
             "carpark_area road_divider lane_divider traffic_light").split()  # fmt: skip
    return {
        "version": "1.3", "canvas_edge": [1585.6, 2025.0], **{k: [] for k in empty},
        "node": nodes + divider_nodes, "polygon": polygons, "lane": lanes + neighbour_lanes,
        "lane_connector": [{"token": "conn_straight", "polygon_token": ""}],
        "arcline_path_3": {"lane_arc": [arc], "lane_straight": [straight],
                           "lane_oncoming": [oncoming], "conn_straight": [conn],
                           **neighbour_paths},
        "connectivity": {"lane_straight": {"incoming": [], "outgoing": ["conn_straight"]}},
    }  # fmt: skip


def write_expansion(root: Path) -> Path:
    """Write the expansion under the dataroot ``root``; returns its path."""
    path = Path(root) / "maps" / "expansion" / f"{LOCATION}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_expansion(), indent=1))
    return path
