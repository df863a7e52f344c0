"""What a teacher says about a frame: :class:`RiskAssessment` (pydantic, JSON round trip).

A teacher never raises on bad model output: it returns an assessment whose ``status`` says
what failed and whose ``raw_text`` keeps what the model answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from rsd.scene import Frame


class RiskCategory(StrEnum):
    """Why an object is risky to the ego."""

    LEAD_BRAKING = "lead_braking"
    """A vehicle ahead on the ego's path is braking or much slower."""
    CUT_IN = "cut_in"
    """A vehicle is moving into the ego's lane close ahead."""
    MERGING_CONFLICT = "merging_conflict"
    """Merging / lane-change conflict beside the ego (incl. the ego's own merge)."""
    CROSSING_CONFLICT = "crossing_conflict"
    """Paths cross at an intersection or roundabout."""
    FOLLOWING = "following"
    """Ordinary car-following: on the path, but at a comfortable headway."""
    REAR = "rear"
    """Approaching fast from behind."""
    NONE = "none"
    """No interaction worth attention."""


class Status(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    """Usable, but the parser had to repair it (missing objects, clamped scores...)."""
    FAILED = "failed"
    """Unusable: no JSON, time-out, server error...; see ``failure_reason``."""


class ObjectRisk(BaseModel):
    """The teacher's judgement of one object."""

    model_config = ConfigDict(extra="forbid")

    object_id: int
    """``AgentState.id`` of the object in the frame."""
    risk: float = Field(ge=0.0, le=1.0)
    rank: int = Field(ge=1)
    """1 = most risky; ranks within an assessment are 1..N without gaps or ties."""
    category: RiskCategory = RiskCategory.NONE
    rationale: str = ""
    flags: list[str] = Field(default_factory=list)
    """What the parser repaired for this object, e.g. ``missing``, ``clamped``, ``reranked``."""


class RiskAssessment(BaseModel):
    """A teacher's answer for one frame."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    teacher_id: str
    """e.g. ``privileged``, ``openai:qwen2.5-vl-7b``, ``noisy(0.25,seed=0,privileged)``."""
    prompt_version: str
    scene_risk: float = Field(ge=0.0, le=1.0, default=0.0)
    objects: list[ObjectRisk] = Field(default_factory=list)
    status: Status = Status.OK
    failure_reason: str | None = None
    """Short machine-readable reason (``timeout``, ``http_500``, ``not_json``...) when not ok."""
    raw_text: str | None = None
    """The teacher's raw answer, where there is one."""
    latency_s: float | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    """Parser statistics, e.g. ``{"unknown_ids": 2, "missing": 1}``."""

    def by_id(self) -> dict[int, ObjectRisk]:
        return {o.object_id: o for o in self.objects}

    @property
    def usable(self) -> bool:
        return self.status is not Status.FAILED


@runtime_checkable
class Teacher(Protocol):
    """Anything that judges risk. Implementations are batched and must not raise on model
    output (only on programming or configuration errors)."""

    teacher_id: str
    prompt_version: str

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]: ...
