"""Bench2Drive clips read into :class:`rsd.scene.Frame`s, following the format the public
Bench2Drive repository documents (``docs/anno.md``, written by ``tools/data_collect.py``).

A clip is a folder ``Town*_*`` (e.g. ``SCENARIO/Town12_Rep0_1_route0_.../``) with
``anno/NNNNN.json.gz`` (one per recorded frame, 10 Hz) and ``camera/rgb_front/NNNNN.jpg``;
``bench2drive:DIR`` reads every clip under ``DIR`` (DIR itself may be one clip). Keyframes are
every :data:`KEYFRAME_STRIDE`-th recorded frame (2 Hz); the frame id is ``CLIP/NNNNN`` with
``CLIP`` the clip folder relative to ``DIR``.

CARLA's world is left-handed (x forward, y right, z up, yaw clockwise in degrees); the reader
converts once into rsd's ego frame (y left, yaw counter-clockwise, radians):

* ego pose: ``bounding_boxes[class == ego_vehicle].world2ego``; speed ``speed``; acceleration
  and yaw rate from the IMU (``acceleration[0]``, ``-angular_velocity[2]``);
* objects (``vehicle``, ``walker``): centre ``center`` (world), size ``2 * extent``, heading
  from ``world2vehicle`` / ``world2ped`` (the repository warns that static vehicles' location
  and rotation are wrong, so neither is used); velocity by central difference of the centre
  over the neighbouring recorded frames (pedestrians' ``speed`` is always 0 in the data),
  else ``speed`` along the heading for a vehicle, unknown (``velocity_valid`` False) for a
  pedestrian;
* classes: ``walker`` -> pedestrian; vehicles by ``base_type`` (car, van, truck, bus,
  motorcycle, bicycle; anything else a car). Traffic lights and signs are not road users
  and are left out;
* front camera: ``sensors.CAM_FRONT.intrinsic`` and ``cam2ego`` (a CARLA transform of the
  camera, x along its optical axis) turned into an OpenCV camera -> rsd ego transform.

Lanes come from the town's HD map (``<Town>_HD_map.npz``, a separate Bench2Drive download,
placed under ``DIR/maps/``: :mod:`rsd.datasets.b2d_map`): lanes around the ego in its frame,
its lane and signed offset. Without the map file frames have no lanes, lane offset NaN.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.datasets.b2d_map import find_map, load_hd_map, town_of
from rsd.datasets.common import (
    FrameSequence,
    agent_state,
    command_from_future,
    ego_state,
    need,
    past_future,
    yaw_of,
)
from rsd.datasets.lanes import LaneMap
from rsd.scene import FRONT_CAMERA, AgentClass, AgentState, CameraView, Frame, SkillGroup

RECORD_HZ = 10
"""Bench2Drive records every clip at 10 Hz."""
KEYFRAME_STRIDE = 5
"""Recorded frames per keyframe (10 Hz -> 2 Hz)."""
FLIP_Y = np.diag([1.0, -1.0, 1.0, 1.0])
"""CARLA (y right) <-> rsd (y left); its own inverse."""
CV_TO_CARLA_CAM = np.array(
    [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""OpenCV camera axes (x right, y down, z ahead) -> CARLA camera axes (x ahead, y right, z up)."""
BASE_TYPE_CLASSES = {
    "car": AgentClass.CAR,
    "van": AgentClass.VAN,
    "truck": AgentClass.TRUCK,
    "bus": AgentClass.BUS,
    "motorcycle": AgentClass.MOTORCYCLE,
    "bicycle": AgentClass.BICYCLE,
}
WORLD_TO_BOX = {"vehicle": "world2vehicle", "walker": "world2ped"}


def find_clips(root: Path) -> list[Path]:
    """Clip folders under ``root`` (those with an ``anno`` folder), sorted; ``root`` may be one."""
    if not root.is_dir():
        raise ConfigError(f"bench2drive:{root}: no such directory")
    clips = sorted(p.parent for p in root.rglob("anno") if p.is_dir())
    if not clips:
        raise ConfigError(f"bench2drive:{root}: no clip folder with an anno/ folder in it")
    return clips


def read_anno(path: Path) -> dict[str, Any]:
    """One ``anno/NNNNN.json.gz``; a missing or malformed file is a ConfigError naming it."""
    try:
        with gzip.open(path, "rt") as f:
            anno = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"Bench2Drive annotation {path}: missing") from None
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"Bench2Drive annotation {path}: not gzip-compressed JSON: {e}") from None
    if not isinstance(anno, dict):
        raise ConfigError(f"Bench2Drive annotation {path}: expected a JSON object")
    return anno


def _matrix(record: dict[str, Any], key: str, where: str) -> np.ndarray:
    m = np.asarray(need(record, key, where), dtype=np.float64)
    if m.shape != (4, 4):
        raise ConfigError(f"{where}: field {key!r} is not a 4 x 4 matrix")
    return m


class Bench2DriveReader(FrameSequence):
    """The keyframes of Bench2Drive clips as frames (see the module doc)."""

    kind = "bench2drive"

    def __init__(self, root: str | Path, stride: int = KEYFRAME_STRIDE) -> None:
        self.root = Path(root)
        self.stride = stride
        self.clips: list[tuple[str, Path, list[int]]] = []
        self._where: list[tuple[int, int]] = []  # frame -> (clip, keyframe)
        for clip in find_clips(self.root):
            numbers = sorted(int(p.name.split(".")[0]) for p in (clip / "anno").glob("*.json.gz"))
            keys = [n for n in numbers if n % stride == 0]
            name = clip.relative_to(self.root).as_posix() if clip != self.root else clip.name
            for k in range(len(keys)):
                self._where.append((len(self.clips), k))
            self.clips.append((name, clip, numbers))
        self._ids = tuple(f"{self.clips[c][0]}/{self._keys(c)[k]:05d}" for c, k in self._where)
        self._maps: dict[str, LaneMap | None] = {}

    def lane_map(self, c: int) -> LaneMap | None:
        """The HD map's lanes of clip ``c``'s town (read once per town); None without one."""
        town = town_of(self.clips[c][0]) or town_of(self.clips[c][1].name)
        if town is None:
            return None
        if town not in self._maps:
            path = find_map(self.root, town)
            self._maps[town] = load_hd_map(path) if path is not None else None
        return self._maps[town]

    def _keys(self, c: int) -> list[int]:
        return [n for n in self.clips[c][2] if n % self.stride == 0]

    @functools.lru_cache(maxsize=64)  # noqa: B019 - the reader lives as long as its frames
    def anno(self, c: int, number: int) -> dict[str, Any] | None:
        """The annotation of recorded frame ``number`` of clip ``c``; None if not recorded."""
        if number not in self.clips[c][2]:
            return None
        return read_anno(self.clips[c][1] / "anno" / f"{number:05d}.json.gz")

    def _boxes(self, c: int, number: int) -> dict[str, dict[str, Any]]:
        anno = self.anno(c, number)
        where = f"{self.clips[c][1] / 'anno' / f'{number:05d}.json.gz'}"
        boxes = need(anno, "bounding_boxes", where) if anno is not None else []
        return {str(need(b, "id", where)): b for b in boxes}

    def _ego_pose(self, c: int, number: int) -> np.ndarray | None:
        """(4, 4) ego -> world in rsd's right-handed convention, or None if not recorded."""
        ego = [b for b in self._boxes(c, number).values() if b.get("class") == "ego_vehicle"]
        if not ego:
            return None
        where = f"{self.clips[c][1] / 'anno' / f'{number:05d}.json.gz'}: ego_vehicle"
        return FLIP_Y @ np.linalg.inv(_matrix(ego[0], "world2ego", where)) @ FLIP_Y

    def _box_pose(self, box: dict[str, Any], where: str) -> np.ndarray:
        """(4, 4) box -> world (rsd convention): heading from world2vehicle, origin at center."""
        key = WORLD_TO_BOX.get(box.get("class", ""), "world2vehicle")
        pose = FLIP_Y @ np.linalg.inv(_matrix(box, key, where)) @ FLIP_Y
        pose[:3, 3] = FLIP_Y[:3, :3] @ np.asarray(need(box, "center", where), dtype=np.float64)
        return pose

    def _frame(self, i: int) -> Frame:
        c, k = self._where[i]
        keys = self._keys(c)
        number = keys[k]
        where = f"{self.clips[c][1] / 'anno' / f'{number:05d}.json.gz'}"
        anno = self.anno(c, number)
        pose = self._ego_pose(c, number)
        if anno is None or pose is None:
            raise ConfigError(f"Bench2Drive annotation {where}: no ego_vehicle bounding box")
        ego_box = next(b for b in anno["bounding_boxes"] if b.get("class") == "ego_vehicle")
        extent = np.asarray(need(ego_box, "extent", where), dtype=float)
        accel = anno.get("acceleration") or [0.0]
        gyro = anno.get("angular_velocity") or [0.0, 0.0, 0.0]
        # speed is None in some frames (docs/anno.md)
        motion = (float(anno.get("speed") or 0.0), float(accel[0] or 0.0), -float(gyro[2] or 0.0))
        size = (2 * float(extent[0]), 2 * float(extent[1]), 2 * float(extent[2]))
        pose_at = lambda j: self._ego_pose(c, keys[j])  # noqa: E731
        ego = ego_state(pose, k, len(keys), pose_at, motion, size)
        lanes, lane_map = [], self.lane_map(c)
        if lane_map is not None:
            lanes, ego.lane_id, ego.lane_offset = lane_map.near(pose[:2, 3], yaw_of(pose[:3, :3]))
        return Frame(
            frame_id=self._ids[i],
            scenario=self.clips[c][0],
            skill=SkillGroup.NOMINAL,
            seed=0,
            step=number,
            t=number / RECORD_HZ,
            ego=ego,
            agents=self._agents(c, k, pose, where),
            lanes=lanes,
            command=command_from_future(ego.future, ego.future_valid),
            cameras=self._cameras(c, number, anno, where),
        )

    def _velocity(self, c: int, number: int, actor: str, box: dict, where: str) -> np.ndarray:
        """(3,) world velocity (m/s, rsd convention) of ``actor`` at recorded frame ``number``."""
        near = [(n, self._boxes(c, n).get(actor)) for n in (number - 1, number + 1)]
        have = [(n, b) for n, b in near if b is not None]
        ends = have if len(have) == 2 else [(number, box), *have]
        if len(ends) == 2:
            (n0, b0), (n1, b1) = sorted(ends, key=lambda e: e[0])
            p0 = np.asarray(b0["center"], dtype=float)
            p1 = np.asarray(b1["center"], dtype=float)
            return FLIP_Y[:3, :3] @ (p1 - p0) * RECORD_HZ / (n1 - n0)
        if box.get("class") == "walker":  # its speed is always 0 in the data: unknown
            return np.full(3, np.nan)
        heading = self._box_pose(box, where)[:3, 0]
        return heading * float(box.get("speed") or 0.0)

    def _agents(self, c: int, k: int, pose: np.ndarray, where: str) -> list[AgentState]:
        keys = self._keys(c)
        inv = np.linalg.inv(pose)
        agents = []
        for actor, box in self._boxes(c, keys[k]).items():
            kind = box.get("class")
            if kind not in WORLD_TO_BOX:
                continue
            cls = (
                AgentClass.PEDESTRIAN
                if kind == "walker"
                else BASE_TYPE_CLASSES.get(str(box.get("base_type", "")).lower(), AgentClass.CAR)
            )
            local = inv @ self._box_pose(box, where)
            vel = inv[:3, :3] @ self._velocity(c, keys[k], actor, box, where)
            extent = np.asarray(need(box, "extent", where), dtype=float)

            def pose_at(j: int, actor: str = actor) -> np.ndarray | None:
                other = self._boxes(c, keys[j]).get(actor)
                return None if other is None else self._box_pose(other, where)

            ident = (int(actor) if actor.isdigit() else len(agents), actor)
            size = (2 * float(extent[0]), 2 * float(extent[1]), 2 * float(extent[2]))
            tracks = past_future(pose, k, len(keys), pose_at)
            agents.append(agent_state(ident, cls, local, vel, size, tracks))
        return agents

    def _cameras(self, c: int, number: int, anno: dict, where: str) -> dict[str, CameraView]:
        cam = (anno.get("sensors") or {}).get(FRONT_CAMERA)
        if cam is None:
            return {}
        where = f"{where}: sensors.{FRONT_CAMERA}"
        intrinsics = np.asarray(need(cam, "intrinsic", where), dtype=np.float64)
        if intrinsics.shape != (3, 3):
            raise ConfigError(f"{where}: field 'intrinsic' is not 3 x 3")
        cam2ego = _matrix(cam, "cam2ego", where)
        image = self.clips[c][1] / "camera" / "rgb_front" / f"{number:05d}.jpg"
        view = CameraView(
            name=FRONT_CAMERA,
            image_path=str(image),
            intrinsics=intrinsics,
            sensor_to_ego=FLIP_Y @ cam2ego @ CV_TO_CARLA_CAM,
            width=int(cam.get("image_size_x", 0)),
            height=int(cam.get("image_size_y", 0)),
            timestamp=number / RECORD_HZ,
        )
        return {FRONT_CAMERA: view}
