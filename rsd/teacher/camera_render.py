"""The camera image a VLM teacher is shown: the photo, each visible object's 3D box, a mark.

:func:`render_camera` opens the frame's camera image, draws every shown object's projected
3D box (its 12 edges, cut at the camera's near plane) in a class colour and its id in a white
numbered label at the box's mark (the set-of-marks prompting the paper's grounding uses),
nearest objects last so that their labels stay on top, then resizes the picture so that its
longer side is at most :attr:`CameraRenderConfig.max_side_px`. The returned
:class:`~rsd.teacher.camera.CameraLayout` is in the pixels of the returned picture, so an
answer given in image coordinates finds its object.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw

from rsd.config import ConfigError
from rsd.scene import CLASS_RGB, AgentClass, Frame
from rsd.teacher.camera import Camera, CameraLayout, layout_objects
from rsd.teacher.render import draw_label, label_font


@dataclass(frozen=True)
class CameraRenderConfig:
    """How the camera picture sent to the VLM is drawn."""

    max_side_px: int = 1024
    """The picture's longer side is scaled down to this (never up)."""
    label_frac: float = 0.03
    """Label text height as a fraction of the picture's height (before resizing)."""
    line_frac: float = 0.003
    """Box line width as a fraction of the picture's height (before resizing)."""

    def __post_init__(self) -> None:
        if self.max_side_px < 32 or not 0 < self.label_frac < 0.5 or not 0 < self.line_frac:
            raise ValueError(f"camera render settings out of range: {self}")


def class_colour(cls: int) -> tuple[int, int, int]:
    """The box colour of class ``cls`` (:data:`rsd.scene.CLASS_RGB`)."""
    return CLASS_RGB[AgentClass(int(cls))]


def load_image(cam: Camera, frame_id: str) -> Image.Image:
    """The camera's image as RGB; ConfigError naming the file when it cannot be read or its
    size disagrees with the calibration."""
    try:
        with Image.open(cam.image_path) as img:
            img = img.convert("RGB")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{cam.image_path}: camera image of frame {frame_id}: {e}") from None
    if img.size != (int(cam.width), int(cam.height)):
        raise ConfigError(
            f"{cam.image_path}: image is {img.size[0]} x {img.size[1]} but camera {cam.name} "
            f"of frame {frame_id} is calibrated for {cam.width} x {cam.height}"
        )
    return img


def render_camera(
    frame: Frame, cam: Camera, cfg: CameraRenderConfig = CameraRenderConfig()
) -> tuple[bytes, CameraLayout]:
    """``frame`` on ``cam``'s image with numbered boxes (PNG bytes) and the layout of the
    returned picture (which objects are shown where, and why the others are not)."""
    layout = layout_objects(frame, cam)
    img = load_image(cam, frame.frame_id)
    draw = ImageDraw.Draw(img)
    font = label_font(max(8, round(cfg.label_frac * img.height)))
    width = max(1, round(cfg.line_frac * img.height))
    classes = {a.id: a.cls for a in frame.agents}
    for b in layout.shown:  # farthest first: nearer boxes and labels drawn over them
        colour = class_colour(classes[b.object_id])
        for p, q in b.edges:
            draw.line([tuple(p), tuple(q)], fill=colour, width=width)
    for b in layout.shown:
        draw_label(draw, img.size, b.mark, str(b.object_id), (255, 255, 255), font)
    factor = min(1.0, cfg.max_side_px / max(img.size))
    if factor < 1.0:
        size = (round(img.width * factor), round(img.height * factor))
        img = img.resize(size, Image.Resampling.LANCZOS)
        layout = layout.scaled(factor)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue(), layout
