"""What every VLM backend speaks: :class:`VLMRequest` in, :class:`VLMResponse` out.

A backend turns a batch of requests (one scene image plus a system and a user text each)
into a batch of responses, in the same order. Trouble on the server or model side (time-outs,
HTTP errors, a model that answers nothing) never raises: it comes back as a response with
``text=None`` and a short machine-readable ``error`` such as ``timeout``, ``http_429``,
``http_500`` or ``connection``. Only configuration or programming errors raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class VLMRequest:
    """One question to a VLM about one scene."""

    image_png: bytes
    """The rendered scene (PNG bytes), see :func:`rsd.teacher.render.render_scene`."""
    system: str
    """System prompt."""
    user: str
    """User prompt (the text part; the image is attached by the backend)."""
    json_schema: dict | None = None
    """JSON schema of the expected answer, for backends with structured output; ``None``
    asks for free text."""

    def __repr__(self) -> str:  # the PNG bytes would flood logs and reprs
        return (
            f"VLMRequest(image_png=<{len(self.image_png)} bytes>, system={self.system[:40]!r}..., "
            f"user={self.user[:40]!r}..., json_schema={'yes' if self.json_schema else 'no'})"
        )


@dataclass
class VLMResponse:
    """The answer to one :class:`VLMRequest`."""

    text: str | None
    """The model's raw answer; ``None`` when there is none."""
    error: str | None = None
    """Short reason when the request failed: ``timeout``, ``http_429``, ``http_500``,
    ``connection``, ``empty``...; ``None`` on success."""
    latency_s: float = 0.0
    """Wall time from the first attempt to the final answer (retries and back-off included)."""
    attempts: int = 1
    """HTTP requests (or generate calls) made for this answer."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@runtime_checkable
class VLMBackend(Protocol):
    """Anything that can answer :class:`VLMRequest` batches."""

    name: str
    """Identifies backend and model, e.g. ``"openai:Qwen/Qwen2.5-VL-7B-Instruct"``; part of
    the teacher id and so of every cache key."""

    def generate(self, requests: Sequence[VLMRequest]) -> list[VLMResponse]:
        """One response per request, in the same order; never raises on server or model
        trouble."""
        ...
