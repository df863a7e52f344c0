"""Objects of a frame as a camera sees them: pinhole projection and the per-image layout.

The camera convention is the one :class:`rsd.scene.CameraView` documents (OpenCV's: x right,
y down, z along the optical axis; nuScenes' too): an ego point ``p`` (metres; x forward,
y left, z up) lands at pixel ``(u, v)`` through ``p_cam = inv(sensor_to_ego) @ [p, 1]`` and
``[u z, v z, z] = K @ p_cam``. Pixels are continuous ``(u, v)`` = (column, row) from the
image's top-left corner, as in :mod:`rsd.teacher.render`.

:func:`layout_objects` decides which objects are shown: an object whose box centre is not in
front of the camera is ``behind the camera``; one whose box, clipped to the camera's near
plane and projected, covers less than :data:`MIN_VISIBLE_PX` of the image in either direction
is ``outside the image``; the rest get their 2D box (clipped to the image) and a mark, the
centre of that box, where the numbered label goes. :class:`CameraLayout` also finds the
object an answer points at in image coordinates (:meth:`CameraLayout.object_at`).

Boxes rest on the ego's ground plane (centre height ``h / 2``) unless the agent carries a
``z`` (box centre height, m, ego frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rsd.scene import (
    FRONT_CAMERA,
    AgentState,
    CameraView,
    Frame,
    camera_pixels,
    project_points,
    to_camera,
)

NEAR_M = 0.1
"""Near plane (m along the optical axis): points closer than this are not projected."""
MIN_VISIBLE_PX = 4.0
"""An object is shown when its clipped 2D box spans at least this many pixels each way."""
BEHIND = "behind the camera"
OUTSIDE = "outside the image"

# the 12 edges of a box, as pairs of indices into box_corners_3d's (8, 3)
BOX_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 0),  # bottom
    (4, 5), (5, 6), (6, 7), (7, 4),  # top
    (0, 4), (1, 5), (2, 6), (3, 7),  # verticals
)  # fmt: skip


Camera = CameraView
"""A frame's camera (:class:`rsd.scene.CameraView`): image, intrinsics, sensor->ego."""


def front_camera(frame: Frame, name: str = FRONT_CAMERA) -> Camera | None:
    """The frame's camera ``name`` (``Frame.cameras``), or ``None`` when it has none."""
    cameras: dict[str, Any] = getattr(frame, "cameras", None) or {}
    return cameras.get(name)


def check_camera(cam: Camera) -> None:
    """ValueError naming the camera when its calibration is not usable."""
    k = np.asarray(cam.intrinsics, dtype=np.float64)
    t = np.asarray(cam.sensor_to_ego, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"camera {cam.name}: intrinsics must be a finite (3, 3) pinhole matrix")
    if t.shape != (4, 4) or not np.isfinite(t).all() or abs(np.linalg.det(t[:3, :3]) - 1) > 1e-3:
        raise ValueError(f"camera {cam.name}: sensor_to_ego must be a (4, 4) rigid transform")
    if int(cam.width) < 1 or int(cam.height) < 1:
        raise ValueError(f"camera {cam.name}: image size {cam.width} x {cam.height}")


def project(points: np.ndarray, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """``(..., 3)`` ego points -> ``(uv (..., 2), depth (...,))``
    (:func:`rsd.scene.project_points`), ``uv`` NaN behind the near plane. Pixels may lie
    outside the image."""
    uv, depth = project_points(points, cam.intrinsics, cam.sensor_to_ego)
    return np.where(depth[..., None] > NEAR_M, uv, np.nan), depth


def box_corners_3d(
    x: float, y: float, z: float, yaw: float, length: float, width: float, height: float
) -> np.ndarray:
    """``(8, 3)`` corners of a box centred at ``(x, y, z)``: the bottom face front-left,
    front-right, rear-right, rear-left (as :func:`rsd.geometry.box_corners`), then the top
    face in the same order."""
    c, s = np.cos(yaw), np.sin(yaw)
    dx = np.array([1, 1, -1, -1]) * length / 2
    dy = np.array([1, -1, -1, 1]) * width / 2
    xy = np.stack([x + c * dx - s * dy, y + s * dx + c * dy], axis=1)
    bottom = np.column_stack([xy, np.full(4, z - height / 2)])
    top = np.column_stack([xy, np.full(4, z + height / 2)])
    return np.vstack([bottom, top])


def agent_corners(a: AgentState) -> np.ndarray:
    """``(8, 3)`` corners of agent ``a`` in the ego frame (centre height ``a.z`` if given)."""
    z = getattr(a, "z", None)
    z = a.height / 2 if z is None or not np.isfinite(z) else float(z)
    return box_corners_3d(a.x, a.y, z, a.yaw, a.length, a.width, a.height)


def clipped_edges(corners: np.ndarray, cam: Camera) -> list[tuple[np.ndarray, np.ndarray]]:
    """The box's edges in pixels ``[(uv0, uv1), ...]``, each cut at the near plane (edges
    wholly behind it are dropped). Not cut to the image: PIL clips when drawing."""
    p = to_camera(corners, cam.sensor_to_ego)
    out = []
    for i, j in BOX_EDGES:
        a, b = p[i], p[j]
        if a[2] <= NEAR_M and b[2] <= NEAR_M:
            continue
        if a[2] <= NEAR_M or b[2] <= NEAR_M:  # move the end behind onto the near plane
            t = (NEAR_M + 1e-9 - a[2]) / (b[2] - a[2])
            cut = a + t * (b - a)
            a, b = (cut, b) if a[2] <= NEAR_M else (a, cut)
        uv = camera_pixels(np.stack([a, b]), cam.intrinsics)
        out.append((uv[0], uv[1]))
    return out


@dataclass(frozen=True)
class ImageBox:
    """One object as shown in a camera image (pixels of that image)."""

    object_id: int
    box: np.ndarray
    """``(4,)`` ``[u0, v0, u1, v1]``: the projected box, clipped to the image."""
    mark: np.ndarray
    """``(2,)`` ``(u, v)``: where its numbered label is drawn (the centre of ``box``)."""
    depth: float
    """Distance of the box centre along the optical axis (m)."""
    edges: tuple[tuple[np.ndarray, np.ndarray], ...] = field(repr=False, default=())
    """The box's 3D edges in pixels, cut at the near plane, for drawing."""


@dataclass(frozen=True)
class CameraLayout:
    """Which objects of a frame a camera image shows, and where."""

    camera: str
    width: int
    height: int
    shown: tuple[ImageBox, ...]
    """Shown objects, farthest first (the drawing order: near boxes go on top)."""
    hidden: dict[int, str]
    """Object id -> why it is not shown (:data:`BEHIND` or :data:`OUTSIDE`)."""

    def box_of(self, object_id: int) -> ImageBox | None:
        return next((b for b in self.shown if b.object_id == object_id), None)

    def object_at(self, uv: np.ndarray, radius_px: float | None = None) -> int | None:
        """The shown object an answer's pixel ``uv`` ``(2,)`` points at: among the boxes
        containing it, the one whose mark is nearest; else the nearest mark within
        ``radius_px`` (default 5 % of the image diagonal); else ``None``."""
        uv = np.asarray(uv, dtype=np.float64)
        if not self.shown or uv.shape != (2,) or not np.isfinite(uv).all():
            return None
        boxes = np.array([b.box for b in self.shown])
        marks = np.array([b.mark for b in self.shown])
        dist = np.hypot(*(marks - uv).T)
        inside = (
            (boxes[:, 0] <= uv[0]) & (uv[0] <= boxes[:, 2])
            & (boxes[:, 1] <= uv[1]) & (uv[1] <= boxes[:, 3])
        )  # fmt: skip
        if inside.any():
            return self.shown[int(np.argmin(np.where(inside, dist, np.inf)))].object_id
        radius = 0.05 * float(np.hypot(self.width, self.height)) if radius_px is None else radius_px
        k = int(np.argmin(dist))
        return self.shown[k].object_id if dist[k] <= radius else None

    def scaled(self, factor: float) -> CameraLayout:
        """The same layout for the image resized by ``factor``."""
        boxes = tuple(
            replace(
                b,
                box=b.box * factor,
                mark=b.mark * factor,
                edges=tuple((p * factor, q * factor) for p, q in b.edges),
            )
            for b in self.shown
        )
        w, h = round(self.width * factor), round(self.height * factor)
        return CameraLayout(self.camera, w, h, boxes, dict(self.hidden))


def _image_box(a: AgentState, cam: Camera) -> ImageBox | str:
    """Agent ``a`` as shown by ``cam``, or why it is not shown."""
    corners = agent_corners(a)
    _, depth = project(corners.mean(axis=0), cam)
    if not depth > NEAR_M:
        return BEHIND
    edges = clipped_edges(corners, cam)
    pts = np.array([p for e in edges for p in e])
    lo = np.clip(pts.min(axis=0), 0, [cam.width, cam.height])
    hi = np.clip(pts.max(axis=0), 0, [cam.width, cam.height])
    if (hi - lo < MIN_VISIBLE_PX).any():
        return OUTSIDE
    box = np.concatenate([lo, hi])
    return ImageBox(a.id, box, (lo + hi) / 2, float(depth), tuple(edges))


def layout_objects(frame: Frame, cam: Camera) -> CameraLayout:
    """Which of ``frame``'s agents ``cam`` shows (see the module doc), farthest first."""
    check_camera(cam)
    shown: list[ImageBox] = []
    hidden: dict[int, str] = {}
    for a in frame.agents:
        if not np.isfinite([a.x, a.y, a.yaw, a.length, a.width, a.height]).all():
            hidden[a.id] = OUTSIDE  # no usable box: nothing to draw
            continue
        got = _image_box(a, cam)
        if isinstance(got, str):
            hidden[a.id] = got
        else:
            shown.append(got)
    shown.sort(key=lambda b: -b.depth)
    return CameraLayout(cam.name, int(cam.width), int(cam.height), tuple(shown), hidden)
