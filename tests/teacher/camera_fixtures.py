"""A forward camera on a tiny image, and frames that carry it (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rsd.scene import CameraView, Frame

F_PX, CX, CY, W, H = 200.0, 160.0, 90.0, 320, 180
"""Focal length and principal point (px) and image size of the test camera."""
CAM_POS = np.array([1.5, 0.0, 1.6])
"""Camera centre in the ego frame (m): on the roof, 1.5 m ahead of the ego origin."""
# camera axes (x right, y down, z forward) as ego vectors: the columns of the rotation
FORWARD_ROT = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def intrinsics() -> np.ndarray:
    return np.array([[F_PX, 0.0, CX], [0.0, F_PX, CY], [0.0, 0.0, 1.0]])


def sensor_to_ego(rot: np.ndarray = FORWARD_ROT, pos: np.ndarray = CAM_POS) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rot, pos
    return t


def write_image(path: Path, size: tuple[int, int] = (W, H)) -> Path:
    """A plain grey picture with a darker lower half (the road)."""
    img = np.full((size[1], size[0], 3), 120, dtype=np.uint8)
    img[size[1] // 2 :] = 70
    Image.fromarray(img).save(path)
    return path


def camera(image: Path, rot: np.ndarray = FORWARD_ROT) -> CameraView:
    return CameraView(
        name="CAM_FRONT",
        image_path=str(image),
        intrinsics=intrinsics(),
        sensor_to_ego=sensor_to_ego(rot),
        width=W,
        height=H,
    )


def with_camera(frame: Frame, cam: CameraView | None) -> Frame:
    frame.cameras = {} if cam is None else {"CAM_FRONT": cam}  # type: ignore[attr-defined]
    return frame
