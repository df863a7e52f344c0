"""nuScenes (v1.0 JSON tables) read into :class:`rsd.scene.Frame`s, without the devkit.

One frame per sample (keyframe, 2 Hz), scenes in ``scene.json`` order, samples along each
scene's ``next`` chain; the frame id is the sample token. Everything is expressed in the ego
frame of the sample's ``LIDAR_TOP`` keyframe (nuScenes' ego frame is already x forward,
y left, z up); the devkit's conventions are followed where it defines one:

* boxes: ``translation`` / ``rotation`` moved into the ego frame as ``Box.translate`` /
  ``Box.rotate`` do; ``size`` is ``(w, l, h)``; yaw is the heading of the rotated x axis;
* velocity: ``NuScenes.box_velocity`` (central difference over the neighbouring annotations of
  the instance, one-sided at a track's ends, NaN past 1.5 s / 3 s), rotated into the ego frame;
  where it is NaN (a lone annotation) the agent's velocity is unknown (``velocity_valid``
  False, 0 m/s);
* classes: the devkit's ``category_to_detection_name`` (ten detection classes); other
  categories (animals, strollers, emergency vehicles, debris...) are left out;
* the front camera: ``CAM_FRONT`` of the sample, with ``sensor_to_ego`` mapping the camera
  into the keyframe's ego frame through the camera's own ego pose (the car moves between the
  lidar and the camera timestamps).

The ego's speed and yaw rate are central differences of the ego poses of the neighbouring
``LIDAR_TOP`` sample data (sweeps when present, else keyframes); its acceleration a central
difference of those speeds over the neighbouring keyframes.

Lanes come from nuScenes' map expansion (v1.3) of the scene's ``log.location``, read from
``DATAROOT/maps/expansion/<location>.json`` (:mod:`rsd.datasets.nuscenes_map`): lanes and lane
connectors around the ego in its frame, the ego's lane (the one under it, heading its way) and
its signed offset from that centreline. Without the file (or without ``log.json``) frames have
no lanes and the lane offset is unknown (NaN).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.datasets.common import (
    FrameSequence,
    agent_state,
    command_from_future,
    ego_state,
    need,
    past_future,
    pose_matrix,
    quat_to_matrix,
    yaw_of,
)
from rsd.datasets.lanes import LaneMap
from rsd.datasets.nuscenes_map import expansion_path, load_expansion
from rsd.scene import FRONT_CAMERA, AgentClass, AgentState, CameraView, EgoState, Frame, SkillGroup

TABLES = (
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "instance",
    "category",
    "ego_pose",
    "calibrated_sensor",
    "sensor",
)
KEY_SENSOR = "LIDAR_TOP"
EGO_SIZE = (4.084, 1.85, 1.56)
"""(length, width, height) m of the nuScenes car (the length and width VAD uses)."""
MAX_TIME_DIFF = 1.5
"""The devkit's ``box_velocity`` limit (s), doubled for a central difference."""

CATEGORY_CLASSES: dict[str, AgentClass] = {
    "vehicle.car": AgentClass.CAR,
    "vehicle.truck": AgentClass.TRUCK,
    "vehicle.bus.bendy": AgentClass.BUS,
    "vehicle.bus.rigid": AgentClass.BUS,
    "vehicle.trailer": AgentClass.TRAILER,
    "vehicle.construction": AgentClass.CONSTRUCTION_VEHICLE,
    "vehicle.motorcycle": AgentClass.MOTORCYCLE,
    "vehicle.bicycle": AgentClass.BICYCLE,
    "human.pedestrian.adult": AgentClass.PEDESTRIAN,
    "human.pedestrian.child": AgentClass.PEDESTRIAN,
    "human.pedestrian.construction_worker": AgentClass.PEDESTRIAN,
    "human.pedestrian.police_officer": AgentClass.PEDESTRIAN,
    "movable_object.barrier": AgentClass.BARRIER,
    "movable_object.trafficcone": AgentClass.TRAFFIC_CONE,
}
"""nuScenes category -> class, as the devkit's ``category_to_detection_name``."""


def locate_tables(root: Path) -> tuple[Path, Path]:
    """``(dataroot, table_dir)`` of ``root``: a dataroot holding one ``v1.0-*`` folder, or the
    table folder itself (its parent is then the dataroot)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"nuscenes:{root}: no such directory")
    if (root / "sample.json").exists():
        return root.parent, root
    versions = sorted(p for p in root.glob("v1.0-*") if p.is_dir())
    if len(versions) != 1:
        found = ", ".join(p.name for p in versions) or "none"
        raise ConfigError(
            f"nuscenes:{root}: expected one v1.0-* table folder (found: {found}); "
            "give the table folder itself, e.g. nuscenes:DIR/v1.0-mini"
        )
    return root, versions[0]


def load_table(table_dir: Path, name: str) -> dict[str, dict[str, Any]]:
    """Records of table ``name`` by token; a missing or malformed file is a ConfigError."""
    path = table_dir / f"{name}.json"
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"nuScenes table {path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"nuScenes table {path}: not valid JSON: {e}") from None
    if not isinstance(records, list):
        raise ConfigError(f"nuScenes table {path}: expected a list of records")
    return {need(r, "token", str(path)): r for r in records}


class NuScenesReader(FrameSequence):
    """The samples of a nuScenes release as frames (see the module doc)."""

    kind = "nuscenes"

    def __init__(self, root: str | Path) -> None:
        self.dataroot, self.table_dir = locate_tables(Path(root))
        self.t = {name: load_table(self.table_dir, name) for name in TABLES}
        # log.json only names the map location: without it, no lanes
        has_log = (self.table_dir / "log.json").exists()
        self.t["log"] = load_table(self.table_dir, "log") if has_log else {}
        self._maps: dict[str, LaneMap | None] = {}
        self._index_tables()
        self._ids = tuple(tok for scene in self.scenes for tok in scene)

    def _ref(self, table: str, token: str, where: str) -> dict[str, Any]:
        try:
            return self.t[table][token]
        except KeyError:
            raise ConfigError(
                f"nuScenes table {self.table_dir / (where + '.json')}: refers to {table} "
                f"token {token!r}, which {table}.json does not have"
            ) from None

    def _index_tables(self) -> None:
        self.scenes: list[list[str]] = []
        self.position: dict[str, tuple[int, int]] = {}  # sample -> (scene, keyframe)
        for s_i, scene in enumerate(self.t["scene"].values()):
            chain, tok = [], need(scene, "first_sample_token", "scene.json")
            while tok:
                self.position[tok] = (s_i, len(chain))
                chain.append(tok)
                tok = need(self._ref("sample", tok, "scene"), "next", "sample.json")
            self.scenes.append(chain)
        self.key_data: dict[tuple[str, str], dict[str, Any]] = {}
        for sd in self.t["sample_data"].values():
            if need(sd, "is_key_frame", "sample_data.json"):
                cs = self._ref("calibrated_sensor", sd["calibrated_sensor_token"], "sample_data")
                channel = self._ref("sensor", cs["sensor_token"], "calibrated_sensor")["channel"]
                self.key_data[(sd["sample_token"], channel)] = sd
        self.anns: dict[str, list[dict[str, Any]]] = {}
        self.ann_of: dict[tuple[str, str], dict[str, Any]] = {}
        for ann in self.t["sample_annotation"].values():
            sample, inst = ann["sample_token"], need(ann, "instance_token", "sample_annotation")
            self.anns.setdefault(sample, []).append(ann)
            self.ann_of[(inst, sample)] = ann
        self.instance_id = {tok: i for i, tok in enumerate(self.t["instance"])}

    # --- poses -------------------------------------------------------------------------------
    def _pose(self, sd: dict[str, Any]) -> np.ndarray:
        ep = self._ref("ego_pose", sd["ego_pose_token"], "sample_data")
        return pose_matrix(quat_to_matrix(ep["rotation"]), ep["translation"])

    def _key(self, sample: str) -> dict[str, Any]:
        for channel in (KEY_SENSOR, FRONT_CAMERA):
            if (sample, channel) in self.key_data:
                return self.key_data[(sample, channel)]
        raise ConfigError(f"nuScenes {self.table_dir}: sample {sample} has no {KEY_SENSOR} data")

    def ego_pose(self, sample: str) -> np.ndarray:
        """(4, 4) ego -> world pose of the sample's key sensor."""
        return self._pose(self._key(sample))

    def _ego_motion(self, sample: str) -> tuple[float, float]:
        """Ego ``(speed m/s, yaw rate rad/s)`` by central difference over its key sensor's
        neighbouring sample data; ``(nan, nan)`` when it has none."""
        sd = self._key(sample)
        prev = self.t["sample_data"].get(sd["prev"]) or sd
        nxt = self.t["sample_data"].get(sd["next"]) or sd
        dt = 1e-6 * (nxt["timestamp"] - prev["timestamp"])
        if dt <= 0:
            return float("nan"), float("nan")
        p0, p1, here = self._pose(prev), self._pose(nxt), self._pose(sd)
        v_ego = here[:3, :3].T @ ((p1[:3, 3] - p0[:3, 3]) / dt)
        dyaw = (yaw_of(p1[:3, :3]) - yaw_of(p0[:3, :3]) + np.pi) % (2 * np.pi) - np.pi
        return float(v_ego[0]), float(dyaw / dt)

    def box_velocity(self, ann: dict[str, Any]) -> np.ndarray:
        """(3,) world velocity (m/s) of an annotation, as the devkit's ``box_velocity``."""
        has_prev, has_next = bool(ann["prev"]), bool(ann["next"])
        if not has_prev and not has_next:
            return np.full(3, np.nan)
        first = (
            self._ref("sample_annotation", ann["prev"], "sample_annotation") if has_prev else ann
        )
        last = self._ref("sample_annotation", ann["next"], "sample_annotation") if has_next else ann
        time_diff = 1e-6 * (
            self._ref("sample", last["sample_token"], "sample_annotation")["timestamp"]
            - self._ref("sample", first["sample_token"], "sample_annotation")["timestamp"]
        )
        limit = MAX_TIME_DIFF * (2 if has_prev and has_next else 1)
        if time_diff > limit:
            return np.full(3, np.nan)
        return (np.asarray(last["translation"]) - np.asarray(first["translation"])) / time_diff

    @staticmethod
    def box_pose(ann: dict[str, Any]) -> np.ndarray:
        """(4, 4) box -> world pose of an annotation."""
        return pose_matrix(quat_to_matrix(ann["rotation"]), ann["translation"])

    # --- frames ------------------------------------------------------------------------------
    def _frame(self, i: int) -> Frame:
        token = self._ids[i]
        scene_i, k = self.position[token]
        chain = self.scenes[scene_i]
        pose = self.ego_pose(token)
        ego = self._ego_state(chain, k, pose)
        lanes, ego.lane_id, ego.lane_offset = self._lanes(scene_i, pose)
        sample = self._ref("sample", token, "scene")
        first = self._ref("sample", chain[0], "scene")
        return Frame(
            frame_id=token,
            scenario=str(list(self.t["scene"].values())[scene_i].get("name", scene_i)),
            skill=SkillGroup.NOMINAL,
            seed=0,
            step=k,
            t=1e-6 * (sample["timestamp"] - first["timestamp"]),
            ego=ego,
            agents=self._agents(chain, k, pose),
            lanes=lanes,
            command=command_from_future(ego.future, ego.future_valid),
            cameras=self._cameras(token, pose),
        )

    def lane_map(self, scene_i: int) -> LaneMap | None:
        """The map expansion's lanes of scene ``scene_i``'s location (read once per location);
        None without ``log.json`` or the expansion file."""
        scene = list(self.t["scene"].values())[scene_i]
        log = self.t["log"].get(scene.get("log_token", ""))
        if log is None:
            return None
        location = str(need(log, "location", "log.json"))
        if location not in self._maps:
            path = expansion_path(self.dataroot, location)
            self._maps[location] = load_expansion(path) if path.exists() else None
        return self._maps[location]

    def _lanes(self, scene_i: int, pose: np.ndarray) -> tuple[list, str, float]:
        """``(lanes, ego lane id, lane offset m)`` at ego ``pose`` (4 x 4); no map: no lanes,
        offset NaN."""
        lane_map = self.lane_map(scene_i)
        if lane_map is None:
            return [], "", float("nan")
        return lane_map.near(pose[:2, 3], yaw_of(pose[:3, :3]))

    def _ego_state(self, chain: list[str], k: int, pose: np.ndarray) -> EgoState:
        speed, yaw_rate = self._ego_motion(chain[k])
        accel = 0.0
        if 0 < k < len(chain) - 1:
            (v0, _), (v1, _) = self._ego_motion(chain[k - 1]), self._ego_motion(chain[k + 1])
            ts = [self._ref("sample", chain[j], "scene")["timestamp"] for j in (k - 1, k + 1)]
            accel = (v1 - v0) / (1e-6 * (ts[1] - ts[0]))
        pose_at = lambda j: self.ego_pose(chain[j])  # noqa: E731
        return ego_state(pose, k, len(chain), pose_at, (speed, accel, yaw_rate), EGO_SIZE)

    def _agents(self, chain: list[str], k: int, pose: np.ndarray) -> list[AgentState]:
        inv = np.linalg.inv(pose)
        agents = []
        for ann in self.anns.get(chain[k], []):
            inst = self._ref("instance", ann["instance_token"], "sample_annotation")
            category = self._ref("category", inst["category_token"], "instance")["name"]
            cls = CATEGORY_CLASSES.get(category)
            if cls is None:
                continue
            local = inv @ self.box_pose(ann)
            vel = inv[:3, :3] @ self.box_velocity(ann)  # NaN: unknown (agent_state)
            width, length, height = (float(v) for v in need(ann, "size", "sample_annotation"))
            tok = ann["instance_token"]

            def pose_at(j: int, tok: str = tok) -> np.ndarray | None:
                other = self.ann_of.get((tok, chain[j]))
                return None if other is None else self.box_pose(other)

            tracks = past_future(pose, k, len(chain), pose_at)
            ident = (self.instance_id[tok], tok)
            agents.append(agent_state(ident, cls, local, vel, (length, width, height), tracks))
        return agents

    def _cameras(self, sample: str, pose: np.ndarray) -> dict[str, CameraView]:
        sd = self.key_data.get((sample, FRONT_CAMERA))
        if sd is None:
            return {}
        cs = self._ref("calibrated_sensor", sd["calibrated_sensor_token"], "sample_data")
        cam_to_cam_ego = pose_matrix(quat_to_matrix(cs["rotation"]), cs["translation"])
        sensor_to_ego = np.linalg.inv(pose) @ self._pose(sd) @ cam_to_cam_ego
        intrinsics = np.asarray(need(cs, "camera_intrinsic", "calibrated_sensor"), float)
        if intrinsics.shape != (3, 3):
            raise ConfigError(
                f"nuScenes table {self.table_dir / 'calibrated_sensor.json'}: "
                f"camera_intrinsic of {cs['token']} is not 3 x 3"
            )
        view = CameraView(
            name=FRONT_CAMERA,
            image_path=str(self.dataroot / need(sd, "filename", "sample_data")),
            intrinsics=intrinsics,
            sensor_to_ego=sensor_to_ego,
            width=int(sd.get("width", 0)),
            height=int(sd.get("height", 0)),
            timestamp=1e-6 * sd["timestamp"],
        )
        return {FRONT_CAMERA: view}
