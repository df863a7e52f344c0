"""What one closed-loop episode leaves behind: :class:`EpisodeLog` (JSON-able), the input of
:mod:`rsd.metrics.driving`. Definitions of its fields are in :mod:`rsd.sim.closed_loop`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from rsd.metrics.driving import episode_success

OUTCOMES = ("success", "incomplete", "vehicle_collision", "offroad", "stuck", "timeout")
"""How a closed-loop episode ended, one word: ``success`` exactly when
:func:`rsd.metrics.driving.episode_success` (no infraction, route completed), so every episode
logged ``success`` counts in the success rate; ``incomplete`` when it ended without an
infraction short of a completed route; else its first infraction's type."""


@dataclass
class EpisodeLog:
    """Everything :mod:`rsd.metrics.driving` needs about one closed-loop episode (JSON-able)."""

    scenario: str
    skill: str
    seed: int
    planner: str
    outcome: str
    """One of :data:`OUTCOMES` (see :func:`outcome_of`)."""
    route_completion: float
    """0-100, see :mod:`rsd.sim.closed_loop`."""
    route_length: float
    progress: float
    reached_goal: bool
    duration: float
    """Simulated seconds."""
    infractions: list[dict] = field(default_factory=list)
    """``{"t": s, "type": ..., "agent": id or None}``; ``offroad`` also has ``percentage``: the
    share (%) of the route length driven off the road."""
    t: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)
    nearby_speed: list[float] = field(default_factory=list)
    """Mean speed of the other vehicles within ``NEARBY_M`` m (NaN when there is none)."""
    route_progress: list[float] = field(default_factory=list)
    """Per step, the ego's progress along the route (m; for the expert, the distance driven)."""
    wall_s: float = 0.0

    @property
    def episode_id(self) -> str:
        return f"{self.scenario}-{self.seed:05d}"

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["nearby_speed"] = [None if np.isnan(v) else v for v in self.nearby_speed]
        d.pop("wall_s")  # timing is not part of the (deterministic) log
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> EpisodeLog:
        d = json.loads(text)
        d["nearby_speed"] = [np.nan if v is None else v for v in d["nearby_speed"]]
        return cls(**d)


def outcome_of(log: EpisodeLog) -> str:
    """The :data:`OUTCOMES` word of an ended episode (its infractions and route completion
    filled in)."""
    if log.infractions:
        return str(log.infractions[0]["type"])
    return "success" if episode_success(log) else "incomplete"
