"""The VLM teacher: picture + prompt -> any :class:`VLMBackend` -> parsed assessments.

For each frame it draws the picture and builds the versioned prompt, sends the whole batch to
the backend (which bounds its own concurrency), and parses every answer
(:mod:`rsd.teacher.parse`) with the picture's pixel map, so that answers in image coordinates
still find their objects. Two views:

* ``top_down`` (default; simulator frames): the numbered map-like picture of
  :mod:`rsd.teacher.render` and :func:`~rsd.teacher.prompt.build_prompt`;
* ``camera`` (real data, as the paper does): the frame's front camera image with each visible
  object's projected 3D box and number (:mod:`rsd.teacher.camera_render`) and
  :func:`~rsd.teacher.prompt.build_camera_prompt`, which lists every object and says which
  ones the image does not show and why. A frame without a front camera gets a ``failed``
  assessment (``no_camera``).

Backend failures become ``failed`` assessments with the backend's reason; nothing raises on
model output. A camera image that cannot be read raises :class:`~rsd.config.ConfigError`
naming the file (input data, not model output).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rsd.scene import Frame
from rsd.teacher.backends.base import VLMBackend, VLMRequest
from rsd.teacher.camera import FRONT_CAMERA, front_camera
from rsd.teacher.camera_render import CameraRenderConfig, render_camera
from rsd.teacher.match import ImageMap
from rsd.teacher.parse import parse_assessment
from rsd.teacher.prompt import (
    ANSWER_SCHEMA,
    CAMERA_PROMPT_VERSION,
    PROMPT_VERSION,
    build_camera_prompt,
    build_prompt,
)
from rsd.teacher.render import PixelTransform, RenderConfig, render_scene
from rsd.teacher.schema import RiskAssessment, Status

View = Literal["top_down", "camera"]
VIEWS: tuple[str, ...] = ("top_down", "camera")


def make_request(
    frame: Frame, render: RenderConfig | None = None
) -> tuple[VLMRequest, PixelTransform]:
    """The top-down backend request for ``frame`` and the transform of its picture."""
    png, transform = render_scene(frame, render or RenderConfig())
    system, user = build_prompt(frame)
    return VLMRequest(png, system, user, json_schema=ANSWER_SCHEMA), transform


def make_camera_request(
    frame: Frame, camera: str = FRONT_CAMERA, render: CameraRenderConfig | None = None
) -> tuple[VLMRequest, ImageMap] | None:
    """The camera-view backend request for ``frame`` and its picture's layout; ``None`` when
    the frame has no camera ``camera``."""
    cam = front_camera(frame, camera)
    if cam is None:
        return None
    png, layout = render_camera(frame, cam, render or CameraRenderConfig())
    system, user = build_camera_prompt(frame, layout)
    return VLMRequest(png, system, user, json_schema=ANSWER_SCHEMA), layout


class VLMTeacher:
    """:class:`~rsd.teacher.schema.Teacher` backed by a vision-language model."""

    def __init__(
        self,
        backend: VLMBackend,
        render: RenderConfig | None = None,
        view: View = "top_down",
        camera_render: CameraRenderConfig | None = None,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view {view!r}: choose one of {', '.join(VIEWS)}")
        self.backend = backend
        self.view = view
        self.render = render or RenderConfig()
        self.camera_render = camera_render or CameraRenderConfig()
        self.teacher_id = f"vlm:{backend.name}"
        self.prompt_version = CAMERA_PROMPT_VERSION if view == "camera" else PROMPT_VERSION

    def __repr__(self) -> str:
        return f"VLMTeacher({self.teacher_id!r}, prompt={self.prompt_version!r})"

    def _request(self, frame: Frame) -> tuple[VLMRequest, ImageMap] | None:
        if self.view == "camera":
            return make_camera_request(frame, render=self.camera_render)
        return make_request(frame, self.render)

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        """One assessment per frame, same order (failed ones carry the reason)."""
        if not frames:
            return []
        built = [self._request(f) for f in frames]
        asked = [b for b in built if b is not None]
        responses = iter(self.backend.generate([req for req, _ in asked]) if asked else [])
        out = []
        for frame, b in zip(frames, built, strict=True):
            if b is None:
                out.append(self._no_camera(frame))
                continue
            resp = next(responses, None)
            if resp is None:
                raise RuntimeError(
                    f"backend {self.backend.name} returned fewer answers than the "
                    f"{len(asked)} requests"
                )
            out.append(
                parse_assessment(
                    resp.text,
                    frame,
                    teacher_id=self.teacher_id,
                    prompt_version=self.prompt_version,
                    transform=b[1],
                    error=resp.error,
                    latency_s=resp.latency_s,
                )
            )
        if next(responses, None) is not None:
            raise RuntimeError(f"backend {self.backend.name} returned more answers than asked")
        return out

    def _no_camera(self, frame: Frame) -> RiskAssessment:
        return RiskAssessment(
            frame_id=frame.frame_id,
            teacher_id=self.teacher_id,
            prompt_version=self.prompt_version,
            status=Status.FAILED,
            failure_reason="no_camera",
        )
