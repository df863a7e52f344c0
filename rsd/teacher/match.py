"""Which frame object an answer entry talks about: by id first, else by image position.

A VLM is asked to answer with the ids drawn on the picture, but grounding-style models often
answer with image coordinates instead: a point ``{"x": u, "y": v}`` (also ``"point"`` /
``"center"`` as ``[u, v]``) or a box ``"box"`` / ``"bbox"`` / ``"bbox_2d"`` as
``[u0, v0, u1, v1]``, all in pixels of the rendered picture. On the top-down picture those go
through the renderer's exact :class:`~rsd.teacher.render.PixelTransform` to ego metres, and
then to the nearest agent centre within :data:`MATCH_RADIUS_M`; on a camera picture (no depth,
so no way back to metres) the picture's :class:`ImageLocator` (a
:class:`~rsd.teacher.camera.CameraLayout`) names the object drawn there; anything else is
unknown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from rsd.scene import Frame
from rsd.teacher.render import PixelTransform

MATCH_RADIUS_M = 3.0
"""Largest distance (m) between an answered position and an agent centre for a match."""

ID_KEYS = ("id", "object_id", "obj_id", "agent_id", "object", "label")
POINT_KEYS = ("point", "center", "centre", "point_2d")
BOX_KEYS = ("box", "bbox", "bbox_2d", "box_2d")
_INT = re.compile(r"-?\d+")


class ImageLocator(Protocol):
    """A picture that knows which object it shows at a pixel (e.g. a camera layout)."""

    def object_at(self, uv: np.ndarray) -> int | None:
        """Id of the object drawn at pixel ``uv`` ``(2,)``, if any."""
        ...


ImageMap = PixelTransform | ImageLocator
"""How the picture's pixels relate to the frame's objects."""


def _finite_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def as_int(v: Any) -> int | None:
    """An integer from ``6``, ``6.0``, ``"6"``, ``"#6"``, ``"car 6"``...; ``None`` otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) and v == int(v) else None
    if isinstance(v, str) and len(v) <= 64:
        f = _finite_number(v)
        if f is not None:
            return int(f) if f == int(f) and abs(f) < 1e18 else None
        found = _INT.findall(v)
        if len(found) == 1 and len(found[0]) <= 18:
            return int(found[0])
    return None


def entry_id(entry: Mapping[str, Any]) -> int | None:
    """The object id an answer entry names, if any."""
    for key in ID_KEYS:
        if key in entry:
            i = as_int(entry[key])
            if i is not None:
                return i
    return None


def entry_pixel(entry: Mapping[str, Any]) -> np.ndarray | None:
    """``(2,)`` pixel ``(u, v)`` an answer entry points at (a box gives its centre), if any."""
    for key in BOX_KEYS:
        box = entry.get(key)
        if isinstance(box, (list, tuple)) and len(box) == 4:
            vals = [_finite_number(b) for b in box]
            if all(v is not None for v in vals):
                u0, v0, u1, v1 = vals
                return np.array([(u0 + u1) / 2, (v0 + v1) / 2])
    for key in POINT_KEYS:
        pt = entry.get(key)
        if isinstance(pt, (list, tuple)) and len(pt) == 2:
            vals = [_finite_number(p) for p in pt]
            if all(v is not None for v in vals):
                return np.array(vals)
    if "x" in entry and "y" in entry:
        u, v = _finite_number(entry["x"]), _finite_number(entry["y"])
        if u is not None and v is not None:
            return np.array([u, v])
    return None


def nearest_agent(frame: Frame, xy: np.ndarray, radius_m: float = MATCH_RADIUS_M) -> int | None:
    """Id of the agent whose centre is nearest to ego point ``xy`` (m), within ``radius_m``."""
    if not frame.agents or not np.isfinite(xy).all():
        return None
    centres = np.array([[a.x, a.y] for a in frame.agents], dtype=np.float64)
    d = np.hypot(*(centres - xy).T)
    d[~np.isfinite(d)] = np.inf
    k = int(np.argmin(d))
    return frame.agents[k].id if d[k] <= radius_m else None


def resolve(
    entry: Mapping[str, Any],
    frame: Frame,
    known: set[int],
    transform: ImageMap | None,
    radius_m: float = MATCH_RADIUS_M,
) -> tuple[int | None, str]:
    """``(object id or None, how)`` for one answer entry; ``how`` is ``id``, ``position`` or
    ``unknown``. A known id wins; an unknown or absent id falls back to the position in the
    picture ``transform`` describes."""
    i = entry_id(entry)
    if i is not None and i in known:
        return i, "id"
    if transform is not None:
        px = entry_pixel(entry)
        if px is not None:
            if isinstance(transform, PixelTransform):
                found = nearest_agent(frame, transform.to_ego(px), radius_m)
            else:
                found = transform.object_at(px)
            if found is not None and found in known:
                return found, "position"
    return None, "unknown"
