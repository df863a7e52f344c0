"""The scene as a VLM sees it: a top-down picture with a numbered mark on every object.

Forward is up and left is left, as on a map seen from above the car. The picture shows the
drivable area (every lane near the ego, filled), painted lane lines (dashed where striped,
solid where continuous), each agent's oriented box in a class colour with its id in a large
white label, the ego in blue marked ``EGO``, and arrows of each agent's motion relative to the
ego over ``arrow_horizon_s``. A faint 10 m grid gives scale.

The pixel <-> ego-metre mapping is an exact affine map, :class:`PixelTransform`, returned with
the PNG so that answers given in image coordinates can be matched back to objects.

Pixel coordinates are ``(u, v)`` = (column, row) in continuous units, origin at the image's
top-left corner, ``u`` to the right, ``v`` down; the centre of pixel ``(i, j)`` is at
``(i + 0.5, j + 0.5)``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rsd.geometry import box_corners
from rsd.scene import CLASS_RGB, Frame, LineKind

BACKGROUND = (214, 222, 204)
ROAD = (92, 94, 100)
LINE = (245, 245, 245)
GRID = (200, 208, 190)
EGO = (30, 110, 230)
CLASS_FILL = CLASS_RGB
"""Box fill per class (the package's one class palette, :data:`rsd.scene.CLASS_RGB`)."""
ARROW = (255, 235, 60)
SHOULDER_M = 0.6
"""Paved margin outside the outer lane lines, so that edge lines stand out."""
SUPERSAMPLE = 2
"""Drawing happens at this multiple of the output size, then is downsampled (anti-aliasing)."""


@dataclass(frozen=True)
class RenderConfig:
    """What part of the scene the picture covers and how large it is."""

    size_px: int = 512
    """Image height in pixels (the forward extent); the width follows from the aspect ratio."""
    metres_ahead: float = 60.0
    metres_behind: float = 20.0
    half_width: float = 30.0
    """Metres to each side of the ego."""
    arrows: bool = True
    """Draw each agent's motion relative to the ego."""
    arrow_horizon_s: float = 1.0
    """Arrow length = relative displacement over this time (capped at 15 m)."""
    label_px: int = 15
    """Height of the id labels in output pixels."""


@dataclass(frozen=True)
class PixelTransform:
    """Exact mapping between ego-frame metres ``(x fwd, y left)`` and pixels ``(u, v)``.

    ``u = (y_left - y) * px_per_m``, ``v = (x_top - x) * px_per_m``.

    The same axes as :func:`rsd.geometry.world_to_pixel`, but not the same transform: the
    picture's own extent and scale (pixels per metre, any size), ``(u, v)`` = (col, row) order
    for PIL, and no cell grid; kept apart so that the teacher's pictures do not depend on the
    model's BEV grid.
    """

    px_per_m: float
    x_top: float
    """Ego x (m) at the image's top edge."""
    y_left: float
    """Ego y (m) at the image's left edge."""
    width: int
    height: int

    def to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """``(..., 2)`` ego metres ``(x, y)`` -> ``(..., 2)`` pixels ``(u, v)``."""
        xy = np.asarray(xy, dtype=np.float64)
        u = (self.y_left - xy[..., 1]) * self.px_per_m
        v = (self.x_top - xy[..., 0]) * self.px_per_m
        return np.stack([u, v], axis=-1)

    def to_ego(self, uv: np.ndarray) -> np.ndarray:
        """``(..., 2)`` pixels ``(u, v)`` -> ``(..., 2)`` ego metres ``(x, y)``."""
        uv = np.asarray(uv, dtype=np.float64)
        x = self.x_top - uv[..., 1] / self.px_per_m
        y = self.y_left - uv[..., 0] / self.px_per_m
        return np.stack([x, y], axis=-1)

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """``(...,)`` whether ego points ``(..., 2)`` fall inside the image."""
        uv = self.to_pixel(xy)
        return (
            (uv[..., 0] >= 0) & (uv[..., 0] < self.width) & (uv[..., 1] >= 0)
            & (uv[..., 1] < self.height)
        )  # fmt: skip

    def scaled(self, factor: float) -> PixelTransform:
        """The same view at ``factor`` times the resolution."""
        return PixelTransform(
            self.px_per_m * factor,
            self.x_top,
            self.y_left,
            round(self.width * factor),
            round(self.height * factor),
        )


def make_transform(cfg: RenderConfig) -> PixelTransform:
    """The transform of a picture rendered under ``cfg``."""
    extent_x = cfg.metres_ahead + cfg.metres_behind
    if extent_x <= 0 or cfg.half_width <= 0 or cfg.size_px < 16:
        raise ValueError(f"render extent or size out of range: {cfg}")
    px_per_m = cfg.size_px / extent_x
    width = max(16, round(2 * cfg.half_width * px_per_m))
    return PixelTransform(px_per_m, cfg.metres_ahead, cfg.half_width, width, cfg.size_px)


@lru_cache(maxsize=8)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _offset_polyline(centre: np.ndarray, offset: float) -> np.ndarray:
    """``(N, 2)`` polyline shifted ``offset`` metres to its left (per-vertex normals)."""
    d = np.gradient(centre, axis=0) if len(centre) > 1 else np.array([[1.0, 0.0]])
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    return centre + offset * normal


def _dashes(line: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    """Pieces of a polyline (metres) for a dashed line: ``dash`` drawn, ``gap`` skipped."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return []
    starts = np.arange(0.0, s[-1], dash + gap)
    pieces = []
    for a in starts:
        b = min(a + dash, s[-1])
        inner = (s > a) & (s < b)
        ts = np.concatenate([[a], s[inner], [b]])
        pieces.append(np.stack([np.interp(ts, s, line[:, 0]), np.interp(ts, s, line[:, 1])], 1))
    return pieces


def _poly(tf: PixelTransform, pts: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in tf.to_pixel(pts).tolist()]


def _draw_lanes(draw: ImageDraw.ImageDraw, frame: Frame, tf: PixelTransform) -> None:
    lanes = [
        lane
        for lane in frame.lanes
        if len(lane.centre) >= 2 and np.isfinite(lane.centre).all() and np.isfinite(lane.width)
    ]
    for lane in lanes:  # drivable area first, so lines stay on top
        centre = np.asarray(lane.centre, dtype=np.float64)
        left = _offset_polyline(centre, lane.width / 2 + SHOULDER_M)
        right = _offset_polyline(centre, -lane.width / 2 - SHOULDER_M)
        draw.polygon(_poly(tf, np.vstack([left, right[::-1]])), fill=ROAD)
    lw = max(1, round(0.25 * tf.px_per_m))
    for lane in lanes:
        centre = np.asarray(lane.centre, dtype=np.float64)
        for kind, side in ((lane.left_line, 1.0), (lane.right_line, -1.0)):
            if kind == LineKind.NONE:
                continue
            line = _offset_polyline(centre, side * lane.width / 2)
            pieces = [line] if kind == LineKind.CONTINUOUS else _dashes(line, 3.0, 6.0)
            for piece in pieces:
                draw.line(_poly(tf, piece), fill=LINE, width=lw)


def _draw_grid(draw: ImageDraw.ImageDraw, tf: PixelTransform) -> None:
    x_bottom = tf.x_top - tf.height / tf.px_per_m
    y_right = tf.y_left - tf.width / tf.px_per_m
    for x in np.arange(np.ceil(x_bottom / 10) * 10, tf.x_top, 10.0):
        (u0, v), (u1, _) = tf.to_pixel(np.array([[x, tf.y_left], [x, y_right]])).tolist()
        draw.line([(u0, v), (u1, v)], fill=GRID, width=1)
    for y in np.arange(np.ceil(y_right / 10) * 10, tf.y_left, 10.0):
        (u, v0), (_, v1) = tf.to_pixel(np.array([[tf.x_top, y], [x_bottom, y]])).tolist()
        draw.line([(u, v0), (u, v1)], fill=GRID, width=1)


def _arrow(draw: ImageDraw.ImageDraw, tf: PixelTransform, start: np.ndarray, end: np.ndarray):
    p0, p1 = tf.to_pixel(np.array([start, end]))
    d = p1 - p0
    n = float(np.hypot(*d))
    if n < 1.0:
        return
    d /= n
    w = max(2, round(0.35 * tf.px_per_m))
    head = min(n * 0.5, 0.9 * tf.px_per_m + 3 * w)
    base = p1 - d * head
    normal = np.array([-d[1], d[0]]) * head * 0.5
    draw.line([tuple(p0), tuple(base)], fill=(20, 20, 20), width=w + 2)
    draw.line([tuple(p0), tuple(base)], fill=ARROW, width=w)
    draw.polygon(
        [tuple(p1), tuple(base + normal), tuple(base - normal)], fill=ARROW, outline=(20, 20, 20)
    )


def _label_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[float, float, float]:
    """(width, height, padding) in pixels of a label box around ``text``."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, anchor="lt")
    pad = max(2, round(getattr(font, "size", 10) * 0.18))
    return x1 - x0 + 2 * pad, y1 - y0 + 2 * pad, pad


def _rect(centre_uv, w: float, h: float, size: tuple[int, int]) -> np.ndarray:
    """``(4,)`` label rectangle ``[left, top, right, bottom]`` centred on ``centre_uv``, moved
    inside an image of ``size`` = (width, height) pixels."""
    left = min(max(centre_uv[0] - w / 2, 1), size[0] - w - 1)
    top = min(max(centre_uv[1] - h / 2, 1), size[1] - h - 1)
    return np.array([left, top, left + w, top + h])


def draw_label(draw, size: tuple[int, int], centre_uv, text: str, fill, font) -> None:
    """A label box with ``text`` centred on pixel ``centre_uv``, kept inside an image of
    ``size`` = (width, height) pixels; white text on the ego's blue, black otherwise."""
    w, h, pad = _label_size(draw, text, font)
    x0, y0, _, _ = draw.textbbox((0, 0), text, font=font, anchor="lt")
    left, top, right, bottom = _rect(centre_uv, w, h, size).tolist()
    draw.rounded_rectangle(
        [left, top, right, bottom], radius=pad, fill=fill, outline=(0, 0, 0), width=2
    )
    text_fill = (255, 255, 255) if fill == EGO else (0, 0, 0)
    draw.text((left + pad - x0, top + pad - y0), text, fill=text_fill, font=font, anchor="lt")


def _overlap(rect: np.ndarray, others: np.ndarray) -> float:
    """Total area of ``rect`` ``(4,)`` overlapping the rectangles ``others`` ``(K, 4)``."""
    if len(others) == 0:
        return 0.0
    w = np.minimum(rect[2], others[:, 2]) - np.maximum(rect[0], others[:, 0])
    h = np.minimum(rect[3], others[:, 3]) - np.maximum(rect[1], others[:, 1])
    return float((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())


def _place_labels(
    draw,
    tf: PixelTransform,
    items: list[tuple[str, np.ndarray]],
    font,
    fixed_boxes: np.ndarray,
    fixed_labels: list[np.ndarray],
) -> list[np.ndarray]:
    """Label centres for ``(text, box corners in px (4, 2))`` items: beside each box (the side
    toward the image's centre line first, then the other side, above, below), choosing the
    first spot that covers no other box and no label already placed, else the least covered.
    ``fixed_boxes`` ``(K, 4)`` and ``fixed_labels`` are rectangles to keep clear too."""
    own = np.array([[*c.min(axis=0), *c.max(axis=0)] for _, c in items]).reshape(-1, 4)
    boxes = np.vstack([own, fixed_boxes.reshape(-1, 4)])
    gap = 0.4 * tf.px_per_m
    placed: list[np.ndarray] = list(fixed_labels)
    centres = []
    for k, (text, corners) in enumerate(items):
        w, h, _ = _label_size(draw, text, font)
        (u0, v0), (u1, v1) = corners.min(axis=0), corners.max(axis=0)
        cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
        right = np.array([u1 + gap + w / 2, cv])
        left = np.array([u0 - gap - w / 2, cv])
        sides = [right, left] if cu < tf.width / 2 else [left, right]
        above, below = np.array([cu, v0 - gap - h / 2]), np.array([cu, v1 + gap + h / 2])
        others = np.delete(boxes, k, axis=0)
        best, best_cost = sides[0], np.inf
        for cand in [*sides, above, below]:
            rect = _rect(cand, w, h, (tf.width, tf.height))
            cost = _overlap(rect, others) + 2 * _overlap(rect, np.array(placed).reshape(-1, 4))
            cost += 0.5 * _overlap(rect, boxes[k : k + 1])
            if cost < best_cost - 1e-9:
                best, best_cost = cand, cost
            if cost == 0:
                break
        placed.append(_rect(best, w, h, (tf.width, tf.height)))
        centres.append(best)
    return centres


def render_scene(frame: Frame, cfg: RenderConfig = RenderConfig()) -> tuple[bytes, PixelTransform]:
    """``frame`` as a top-down PNG (forward up) and the exact pixel <-> ego-metre transform.

    Agents whose centre lies outside the picture are not drawn (their box may show at the
    edge if it reaches in, without a label).
    """
    tf = make_transform(cfg)
    hi = tf.scaled(SUPERSAMPLE)
    img = Image.new("RGB", (hi.width, hi.height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    _draw_grid(draw, hi)
    _draw_lanes(draw, frame, hi)
    outline = max(1, SUPERSAMPLE)
    agents = [a for a in frame.agents if np.isfinite([a.x, a.y, a.yaw, a.length, a.width]).all()]
    for a in agents:
        corners = box_corners(a.x, a.y, a.yaw, a.length, a.width)
        if not hi.inside(corners).any():
            continue
        fill = CLASS_FILL.get(a.cls, (200, 200, 200))
        draw.polygon(_poly(hi, corners), fill=fill, outline=(0, 0, 0), width=outline)
        nose = box_corners(a.x, a.y, a.yaw, a.length, a.width)[[0, 3]].mean(axis=0)
        draw.line(_poly(hi, np.array([[a.x, a.y], nose])), fill=(0, 0, 0), width=outline)
    ego = frame.ego
    ego_box = box_corners(0.0, 0.0, 0.0, ego.length, ego.width)
    draw.polygon(_poly(hi, ego_box), fill=EGO, outline=(0, 0, 0), width=outline)
    if cfg.arrows:
        for a in agents:
            if not hi.inside(np.array([a.x, a.y])):
                continue
            rel = np.array([a.vx - ego.speed, a.vy]) * cfg.arrow_horizon_s
            n = float(np.hypot(*rel))
            if not np.isfinite(n) or n < 0.5:
                continue
            rel *= min(1.0, 15.0 / n)
            start = np.array([a.x, a.y]) + rel / n * min(a.length / 2, n)
            _arrow(draw, hi, start, start + rel)
    font = label_font(cfg.label_px * SUPERSAMPLE)
    # the ego's label first (below it), then agents nearest the ego first: the best spots
    # go to the objects that matter most
    _, h, _ = _label_size(draw, "EGO", font)
    ego_uv = hi.to_pixel(ego_box)
    ego_centre = np.array([ego_uv[:, 0].mean(), ego_uv[:, 1].max() + 0.3 * hi.px_per_m + h / 2])
    shown = sorted(
        (a for a in agents if hi.inside(np.array([a.x, a.y]))), key=lambda a: np.hypot(a.x, a.y)
    )
    ego_rect = _rect(ego_centre, *_label_size(draw, "EGO", font)[:2], (hi.width, hi.height))
    ego_aabb = np.array([*ego_uv.min(axis=0), *ego_uv.max(axis=0)])
    items = [("EGO", ego_uv)] + [
        (str(a.id), hi.to_pixel(box_corners(a.x, a.y, a.yaw, a.length, a.width))) for a in shown
    ]
    centres = [ego_centre] + _place_labels(draw, hi, items[1:], font, ego_aabb, [ego_rect])
    for (text, _), centre in zip(items, centres, strict=True):
        fill = EGO if text == "EGO" else (255, 255, 255)
        draw_label(draw, (hi.width, hi.height), centre, text, fill, font)
    out = img.resize((tf.width, tf.height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=False)
    return buf.getvalue(), tf
