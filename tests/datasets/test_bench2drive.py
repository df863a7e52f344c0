"""rsd.datasets.bench2drive on a clip written in the format of Bench2Drive's docs/anno.md:
CARLA's left-handed world (y right, yaw clockwise in degrees) -> rsd's ego frame."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.datasets import open_source
from rsd.scene import FRONT_CAMERA, AgentClass

W, H, FOV = 1600, 900, 70.0
EGO_SPEED, CAR_SPEED, WALKER_SPEED = 5.0, 3.0, 1.2


def carla_matrix(location, rotation) -> np.ndarray:
    """CARLA's Transform.get_matrix (pitch, roll, yaw in degrees), as Bench2Drive's get_matrix."""
    pitch, roll, yaw = np.radians(rotation)
    cy, sy, cr, sr, cp, sp = (f(a) for a in (yaw, roll, pitch) for f in (np.cos, np.sin))
    m = np.eye(4)
    m[:3, 3] = location
    m[0, :3] = [cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr]
    m[1, :3] = [sy * cp, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr]
    m[2, :3] = [sp, -cp * sr, cp * cr]
    return m


def _ego(n: int) -> np.ndarray:
    return carla_matrix([100.0, 200.0 + EGO_SPEED * 0.1 * n, 0.0], [0.0, 0.0, 90.0])


def _box(cls: str, actor: str, pose: np.ndarray, extent, **extra) -> dict:
    key = {"walker": "world2ped", "ego_vehicle": "world2ego"}.get(cls, "world2vehicle")
    centre = pose[:3, 3].tolist()
    return {"class": cls, "id": actor, "center": centre, "extent": list(extent),
            key: np.linalg.inv(pose).tolist(), "location": centre, **extra}  # fmt: skip


def _car(n: int) -> np.ndarray:
    pose = _ego(0) @ carla_matrix([10.0, 2.0, 0.8], [0.0, 0.0, 30.0])
    pose[:3, 3] += CAR_SPEED * 0.1 * n * pose[:3, 0]
    return pose


def _walker(n: int) -> np.ndarray:
    return carla_matrix([95.0, 215.0 + WALKER_SPEED * 0.1 * n, 0.9], [0.0, 0.0, 90.0])


def write_clip(root: Path, frames: int = 11) -> Path:
    clip = root / "Scenario" / "Town12_Rep0_1_route0"
    (clip / "anno").mkdir(parents=True)
    (clip / "camera" / "rgb_front").mkdir(parents=True)
    k = np.eye(3)
    k[0, 0] = k[1, 1] = W / (2 * math.tan(math.radians(FOV) / 2))
    k[0, 2], k[1, 2] = W / 2, H / 2
    cam = {"intrinsic": k.tolist(), "cam2ego": carla_matrix([1.5, 0, 1.6], [0, 0, 0]).tolist(),
           "image_size_x": W, "image_size_y": H}  # fmt: skip
    for n in range(frames):
        boxes = [
            _box("ego_vehicle", "1", _ego(n), (2.45, 1.05, 0.75), speed=EGO_SPEED),
            _box("vehicle", "7", _car(n), (2.3, 0.95, 0.8), base_type="truck", speed=CAR_SPEED),
            _box("walker", "9", _walker(n), (0.3, 0.3, 0.9), speed=0.0),  # 0, as in the data
            {"class": "traffic_light", "id": "20", "center": [0, 0, 0], "extent": [1, 1, 1]},
        ]
        anno = {"speed": EGO_SPEED, "acceleration": [0.2, 0, 0], "angular_velocity": [0, 0, 0.1],
                "bounding_boxes": boxes, "sensors": {FRONT_CAMERA: cam}}  # fmt: skip
        with gzip.open(clip / "anno" / f"{n:05d}.json.gz", "wt") as f:
            json.dump(anno, f)
        (clip / "camera" / "rgb_front" / f"{n:05d}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    return clip


def test_keyframes_boxes_and_velocities(tmp_path) -> None:
    write_clip(tmp_path)
    src = open_source(f"bench2drive:{tmp_path}")
    base = "Scenario/Town12_Rep0_1_route0"
    assert src.frame_ids == (f"{base}/00000", f"{base}/00005", f"{base}/00010")
    f = src[1]
    assert f.t == 0.5 and f.ego.speed == EGO_SPEED and f.ego.yaw_rate == -0.1
    assert (f.ego.length, f.ego.width) == (4.9, 2.1)
    np.testing.assert_allclose(f.ego.past[-1, :2], [-2.5, 0.0], atol=1e-9)  # 0.5 s behind
    assert f.ego.past_valid.tolist() == [False] * 3 + [True]
    assert f.ego.future_valid.tolist() == [True] + [False] * 5
    car = next(a for a in f.agents if a.source_id == "7")
    walker = next(a for a in f.agents if a.source_id == "9")
    assert len(f.agents) == 2 and (car.cls, walker.cls) == (AgentClass.TRUCK, AgentClass.PEDESTRIAN)
    # CARLA ego coordinates of the car, computed the CARLA way, then y flipped to point left
    rel = np.linalg.inv(_ego(5)) @ _car(5)
    np.testing.assert_allclose([car.x, car.y, car.z], rel[:3, 3] * [1, -1, 1], atol=1e-9)
    assert abs(car.yaw - math.radians(-30)) < 1e-9  # 30 deg clockwise in CARLA
    assert (car.length, car.width, car.height) == (4.6, 1.9, 1.6)
    v = CAR_SPEED * np.array([math.cos(math.radians(-30)), math.sin(math.radians(-30))])
    np.testing.assert_allclose([car.vx, car.vy], v, atol=1e-9)
    # world +y in CARLA is the ego's heading; the walker walks along it
    np.testing.assert_allclose([walker.vx, walker.vy], [WALKER_SPEED, 0.0], atol=1e-9)


def test_front_camera(tmp_path) -> None:
    write_clip(tmp_path)
    cam = open_source(f"bench2drive:{tmp_path}")[0].cameras[FRONT_CAMERA]
    assert Path(cam.image_path).is_file() and (cam.width, cam.height) == (W, H)
    uv, depth = cam.project(np.array([[21.5, 0.0, 1.6], [21.5, -2.0, 1.6], [21.5, 0.0, 0.0]]))
    np.testing.assert_allclose(depth, 20.0)
    np.testing.assert_allclose(uv[0], [W / 2, H / 2], atol=1e-9)  # on the optical axis
    assert uv[1, 0] > W / 2 and uv[2, 1] > H / 2  # right of the ego is right, ground is below


def test_bad_files_name_them(tmp_path) -> None:
    clip = write_clip(tmp_path, frames=3)
    (clip / "anno" / "00000.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="00000.json.gz: not gzip-compressed JSON"):
        open_source(f"bench2drive:{tmp_path}")[0]
    with pytest.raises(ConfigError, match="no clip folder"):
        open_source(f"bench2drive:{clip / 'camera'}")
