"""Scenario specifications: YAML files describing a family of seeded episodes.

Any numeric parameter may be a constant or a range drawn from the episode seed::

    speed: 25.0                  # constant
    speed: {uniform: [22, 28]}   # float, uniform in [22, 28]
    count: {randint: [8, 12]}    # int, inclusive bounds
    side:  {choice: [left, right]}

All draws go through one ``numpy.random.Generator`` seeded from the episode seed, in a fixed
order (the order of :func:`draw_params`), so the same ``(spec, seed)`` always yields the same
parameter values and hence the same episode.

Validation errors raise :class:`rsd.config.ConfigError` whose message names the field,
e.g. ``events[0].decel: a range needs exactly two bounds``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rsd.config import ConfigError, load_yaml
from rsd.scene import SkillGroup

BUILTIN_PACKAGE = "rsd.sim.builtin"
EVAL_SEED = 10_000
"""First seed of driving evaluation; training data uses seeds ``0..N-1``, so the two never
overlap."""
ENV_IDS = ("highway-v0", "highway-fast-v0", "rsd-merge-v0", "rsd-roundabout-v0", "intersection-v0")
"""The highway-env ids a scenario may use (:mod:`rsd.sim.envs` sets them up; highway-env's own
``merge-v0`` / ``roundabout-v0`` fail with the continuous actions the ego drives with)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Uniform(_Strict):
    uniform: tuple[float, float]

    @field_validator("uniform")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise ValueError(f"lower bound {v[0]} exceeds upper bound {v[1]}")
        return v


class RandInt(_Strict):
    randint: tuple[int, int]

    @field_validator("randint")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] > v[1]:
            raise ValueError(f"lower bound {v[0]} exceeds upper bound {v[1]}")
        return v


class Choice(_Strict):
    choice: list[Any] = Field(min_length=1)


Num = float | Uniform | RandInt | Choice
"""A numeric parameter: a constant or a distribution drawn from the seed."""
Text = str | Choice


def draw(value: Any, rng: np.random.Generator) -> Any:
    """Draw one value of a parameter (constants are returned unchanged, no draw consumed)."""
    if isinstance(value, Uniform):
        return float(rng.uniform(*value.uniform))
    if isinstance(value, RandInt):
        return int(rng.integers(value.randint[0], value.randint[1] + 1))
    if isinstance(value, Choice):
        item = value.choice[int(rng.integers(len(value.choice)))]
        return item.item() if isinstance(item, np.generic) else item
    return value


def describe(value: Any) -> str:
    """Short human form of a parameter: ``25``, ``U[22, 28]``, ``{left, right}``."""
    if isinstance(value, Uniform):
        return f"U[{value.uniform[0]:g}, {value.uniform[1]:g}]"
    if isinstance(value, RandInt):
        return f"int[{value.randint[0]}, {value.randint[1]}]"
    if isinstance(value, Choice):
        return "{" + ", ".join(str(c) for c in value.choice) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _positive(v: Any, what: str = "value") -> Any:
    lows = {Uniform: lambda x: x.uniform[0], RandInt: lambda x: x.randint[0]}
    if isinstance(v, (int, float)) and v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    for t, low in lows.items():
        if isinstance(v, t) and low(v) < 0:
            raise ValueError(f"{what} must be >= 0, got lower bound {low(v)}")
    if isinstance(v, Choice) and any(not isinstance(c, (int, float)) or c < 0 for c in v.choice):
        raise ValueError(f"{what} choices must be numbers >= 0")
    return v


class EgoSpec(_Strict):
    """The ego's start: speed (m/s), cruise target speed (m/s), lane and route."""

    speed: Num = 25.0
    target_speed: Num = 27.0
    lane: Num | None = None
    """Start lane index on multi-lane roads (0 = leftmost); ``None`` = drawn uniformly."""
    destination: Text | None = None
    """Destination node in the road network (roundabout / intersection)."""

    _pos = field_validator("speed", "target_speed")(_positive)


class TrafficSpec(_Strict):
    """Background traffic: how many NPCs, their speeds (m/s) and spacing (m)."""

    count: Num = 10
    speed: Num = Uniform(uniform=(22.0, 27.0))
    gap: Num = 25.0
    """Mean bumper-to-bumper gap between consecutive NPCs in one lane (m)."""
    spawn_rate: Num = 0.0
    """NPCs spawned per second at the network's entries during the episode (1/s)."""
    lookahead: float = 120.0
    """NPCs are placed within [-lookbehind, lookahead] m of the ego along the road."""
    lookbehind: float = 60.0

    _pos = field_validator("count", "speed", "gap", "spawn_rate")(_positive)


class BrakeEvent(_Strict):
    """The ego's lead vehicle brakes hard at time ``at`` (s) with ``decel`` (m/s^2)."""

    type: Literal["brake"]
    target: Literal["lead"] = "lead"
    at: Num
    decel: Num
    hold: Num = 2.0
    """Time (s) the target stays stopped (or braking) before it drives on again."""
    gap: Num = 30.0
    """Initial bumper gap (m) from the ego to the scripted lead, placed in the ego's lane."""

    _pos = field_validator("at", "decel", "hold", "gap")(_positive)

    @field_validator("decel")
    @classmethod
    def _decel_range(cls, v: Any) -> Any:
        hi = {Uniform: lambda x: x.uniform[1], RandInt: lambda x: x.randint[1]}
        top = v if isinstance(v, (int, float)) else hi.get(type(v), lambda x: 0.0)(v)
        if top > 10.0:
            raise ValueError(f"deceleration above 10 m/s^2 is not physical, got {top}")
        return v


class CutInEvent(_Strict):
    """A car from an adjacent lane cuts in ``gap`` m ahead of the ego's front bumper."""

    type: Literal["cut_in"]
    at: Num
    """Earliest trigger time (s); the cut-in starts once the gap condition holds."""
    gap: Num
    """Bumper gap (m) ahead of the ego at which the cutter steers into the ego lane."""
    side: Text = Choice(choice=["left", "right"])
    speed_delta: Num = 4.0
    """Cutter's speed surplus over the ego's target speed while overtaking (m/s)."""
    decel: Num = 0.0
    """Braking (m/s^2) the cutter applies once it is in the ego lane."""
    brake_time: Num = 1.5
    """How long (s) the cutter brakes after cutting in."""

    _pos = field_validator("at", "gap", "decel", "brake_time")(_positive)


Event = Annotated[BrakeEvent | CutInEvent, Field(discriminator="type")]


class ScenarioSpec(_Strict):
    """One scenario family. See the module docstring for parameter ranges."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    skill: SkillGroup
    description: str = ""
    env_id: str
    duration: float = Field(gt=0, le=600)
    config: dict[str, Any] = Field(default_factory=dict)
    behaviour_mix: dict[Literal["idm", "aggressive", "defensive"], float] = Field(
        default_factory=lambda: {"idm": 1.0}
    )
    class_mix: dict[Literal["car", "van", "truck"], float] = Field(
        default_factory=lambda: {"car": 1.0}
    )
    size_jitter: float = Field(default=0.08, ge=0, lt=0.5)
    """Relative jitter of each agent's length/width/height around its class's nominal size."""
    ego: EgoSpec = Field(default_factory=EgoSpec)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    events: list[Event] = Field(default_factory=list)

    @field_validator("env_id")
    @classmethod
    def _env_id(cls, v: str) -> str:
        if v not in ENV_IDS:
            raise ValueError(f"{v!r} is not one of {', '.join(ENV_IDS)}")
        return v

    @field_validator("skill", mode="before")
    @classmethod
    def _skill(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return SkillGroup[v.upper()]
            except KeyError:
                names = ", ".join(m.name.lower() for m in SkillGroup)
                raise ValueError(f"{v!r} is not one of {names}") from None
        return v

    @field_validator("behaviour_mix", "class_mix")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return v


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("BrakeEvent", "CutInEvent", "brake", "cut_in") or str(part).startswith(
            ("float", "Uniform", "RandInt", "Choice", "function-", "tuple[", "str", "int")
        ):
            continue  # union-branch labels pydantic inserts into the location
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


def parse_spec(data: dict[str, Any], source: str = "spec") -> ScenarioSpec:
    """Validate a plain mapping; errors name the field (``events[0].decel: ...``)."""
    try:
        return ScenarioSpec.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        # an unknown key first (a misspelt one also leaves its real name "required"), then
        # the most specific location (deepest), i.e. the real offending field
        err = max(
            errs,
            key=lambda x: (
                x["type"] == "extra_forbidden",
                len([p for p in x["loc"] if not str(p)[0].isupper()]),
            ),
        )
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + (
                f" (valid keys: {', '.join(ScenarioSpec.model_fields)})"
                if len(err["loc"]) == 1
                else ""
            )
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ConfigError(f"{source}: {_format_loc(err['loc'])}: {msg}{more}") from None


def builtin_scenarios() -> list[str]:
    """Names of the built-in scenarios, sorted."""
    root = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str | Path) -> ScenarioSpec:
    """Load a built-in scenario by name, or a YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return parse_spec(load_yaml(p), str(p))
    name = str(name_or_path)
    if name not in builtin_scenarios():
        raise ConfigError(
            f"unknown scenario {name!r} (built-ins: {', '.join(builtin_scenarios())})"
        )
    with resources.as_file(resources.files(BUILTIN_PACKAGE) / f"{name}.yaml") as f:
        return parse_spec(load_yaml(f), f"{name}.yaml")


def draw_params(spec: ScenarioSpec, rng: np.random.Generator) -> dict[str, Any]:
    """Draw every ranged parameter of ``spec`` in a fixed order; returns JSON-able values.

    Keys are dotted field paths (``ego.speed``, ``events[0].decel``...).
    """
    out: dict[str, Any] = {}

    def take(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, (Uniform, RandInt, Choice, float, int, str)) or value is None:
                if name == "type":
                    continue
                out[f"{prefix}{name}"] = draw(value, rng)

    take("ego.", spec.ego)
    take("traffic.", spec.traffic)
    for i, ev in enumerate(spec.events):
        take(f"events[{i}].", ev)
    return out


def param_ranges(spec: ScenarioSpec) -> dict[str, str]:
    """Every parameter with its range in human form (for ``rsd scenarios``)."""
    out: dict[str, str] = {}
    for prefix, model in [("ego.", spec.ego), ("traffic.", spec.traffic)] + [
        (f"events[{i}].", ev) for i, ev in enumerate(spec.events)
    ]:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is not None and name != "type":
                out[f"{prefix}{name}"] = describe(value)
    return out
