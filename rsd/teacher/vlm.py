"""The VLM teacher: picture + prompt -> any :class:`VLMBackend` -> parsed assessments.

For each frame it renders the numbered top-down picture (:mod:`rsd.teacher.render`), builds
the versioned prompt (:mod:`rsd.teacher.prompt`), sends the whole batch to the backend (which
bounds its own concurrency), and parses every answer (:mod:`rsd.teacher.parse`) with the
frame's pixel transform, so that answers in image coordinates still find their objects.
Backend failures become ``failed`` assessments with the backend's reason; nothing raises on
model output.
"""

from __future__ import annotations

from collections.abc import Sequence

from rsd.scene import Frame
from rsd.teacher.backends.base import VLMBackend, VLMRequest
from rsd.teacher.parse import parse_assessment
from rsd.teacher.prompt import ANSWER_SCHEMA, PROMPT_VERSION, build_prompt
from rsd.teacher.render import PixelTransform, RenderConfig, render_scene
from rsd.teacher.schema import RiskAssessment


def make_request(
    frame: Frame, render: RenderConfig | None = None
) -> tuple[VLMRequest, PixelTransform]:
    """The backend request for ``frame`` and the transform of its picture."""
    png, transform = render_scene(frame, render or RenderConfig())
    system, user = build_prompt(frame)
    return VLMRequest(png, system, user, json_schema=ANSWER_SCHEMA), transform


class VLMTeacher:
    """:class:`~rsd.teacher.schema.Teacher` backed by a vision-language model."""

    def __init__(self, backend: VLMBackend, render: RenderConfig | None = None) -> None:
        self.backend = backend
        self.render = render or RenderConfig()
        self.teacher_id = f"vlm:{backend.name}"
        self.prompt_version = PROMPT_VERSION

    def __repr__(self) -> str:
        return f"VLMTeacher({self.teacher_id!r}, prompt={self.prompt_version!r})"

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        """One assessment per frame, same order (failed ones carry the reason)."""
        if not frames:
            return []
        built = [make_request(f, self.render) for f in frames]
        responses = self.backend.generate([req for req, _ in built])
        if len(responses) != len(frames):
            raise RuntimeError(
                f"backend {self.backend.name} returned {len(responses)} answers "
                f"for {len(frames)} requests"
            )
        return [
            parse_assessment(
                resp.text,
                frame,
                teacher_id=self.teacher_id,
                prompt_version=self.prompt_version,
                transform=transform,
                error=resp.error,
                latency_s=resp.latency_s,
            )
            for frame, (_, transform), resp in zip(frames, built, responses, strict=True)
        ]
