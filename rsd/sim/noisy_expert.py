"""The privileged expert's plan with injected noise: DART's recovery states without a student.

DART (Laskey et al. 2017) lets the *expert with injected noise* drive and labels every visited
state with the *clean* expert's action. Here the driver is the expert's tracked plan
(:class:`~rsd.sim.tracked_expert.TrackedExpertPlanner`: the expert's own 3 s future from a
deep copy of the live state, tracked by the controller) and, at a re-plan (every 0.5 s) with
no perturbation running, with probability ``p`` (a seeded coin) a perturbation starts and holds
for ``hold_s``:

* **longitudinal**: the plan's progress along its own path is scaled by ``s ~ U(0.7, 1.3)``
  (waypoint ``k`` moves to ``s`` times its arc length along the path, extended straight past
  its end), so every segment's implied speed is ``s`` times the expert's: the ego drifts too
  slow or too fast, and "too close behind a slower car" arises on its own;
* **lateral**: a smooth offset ``d ~ U(-lateral_m, lateral_m)`` (m, to the path's left),
  growing from 0 at the ego to ``d`` at ``ramp_s`` along a smoothstep.

The labels are not this planner's business: :func:`rsd.sim.relabel.student_episode` labels
every visited keyframe with the clean expert's future from that state, and drops frames whose
expert continuation crashes. A perturbation may crash the episode; the rollout then ends there
(the frames before it keep their labels). Seeded by (scenario seed, ``mix_seed``): the same
seeds give the same rollout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsd.config import ConfigError
from rsd.scene import KEYFRAME_DT, Frame
from rsd.sim.planners import Planner, PlanOutput
from rsd.sim.tracked_expert import TrackedExpertPlanner

_NOISE_STREAM = 0xDA27
"""Third word of the noise generator's seed: independent of the DAgger mixture's coin, which
is seeded by (scenario seed, mix seed) alone."""


@dataclass(frozen=True)
class DartNoise:
    """The noise injected into the expert's plan (module doc)."""

    p: float = 0.3
    """Probability that a re-plan with no perturbation running starts one."""
    hold_s: float = 2.0
    """How long a perturbation lasts (s; whole 0.5 s re-plan periods, at least one)."""
    scale: tuple[float, float] = (0.7, 1.3)
    """Range of the factor on the plan's progress along its path (uniform)."""
    lateral_m: float = 1.0
    """Largest lateral offset (m; uniform in ``[-lateral_m, lateral_m]``; 0: none)."""
    ramp_s: float = 1.5
    """Plan time (s) at which the lateral offset reaches its full value."""

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"dart_noise.p: a probability in [0, 1], got {self.p}")
        if not 0.0 < lo <= hi:
            raise ConfigError(f"dart_noise.scale: need 0 < low <= high, got {list(self.scale)}")
        if self.hold_s <= 0 or self.ramp_s <= 0 or self.lateral_m < 0:
            raise ConfigError("dart_noise: hold_s and ramp_s must be > 0, lateral_m >= 0")

    @property
    def hold_plans(self) -> int:
        """Re-plan periods a perturbation lasts."""
        return max(1, round(self.hold_s / KEYFRAME_DT))


def scale_progress(waypoints: np.ndarray, factor: float) -> np.ndarray:
    """``(T, 2)`` ego-frame waypoints (the path starts at the origin) with waypoint ``k`` moved
    to ``factor`` times its arc length along the path ``origin -> waypoints``, extended
    straight along its last segment; a plan that does not move is returned as is."""
    wp = np.asarray(waypoints, dtype=np.float64)
    path = np.vstack([[0.0, 0.0], wp])
    seg = np.diff(path, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    moving = seg_len > 1e-6
    if not moving.any():
        return wp.copy()
    keep = np.concatenate([[True], moving])  # drop repeated points: np.interp needs rising xp
    pts = path[keep]
    cum = np.concatenate([[0.0], np.cumsum(seg_len[moving])])
    target = factor * np.concatenate([[0.0], np.cumsum(seg_len)])[1:]
    out = np.column_stack([np.interp(target, cum, pts[:, 0]), np.interp(target, cum, pts[:, 1])])
    beyond = target > cum[-1]
    if beyond.any():
        last = seg[moving][-1] / seg_len[moving][-1]
        out[beyond] = pts[-1] + (target[beyond] - cum[-1])[:, None] * last
    return out


def offset_laterally(waypoints: np.ndarray, offset: float, ramp_s: float) -> np.ndarray:
    """``(T, 2)`` ego-frame waypoints shifted by ``offset`` m along the path's left normal,
    scaled by a smoothstep of plan time ``t_k = (k + 1) * 0.5 s`` over ``[0, ramp_s]``."""
    wp = np.asarray(waypoints, dtype=np.float64)
    path = np.vstack([[0.0, 0.0], wp])
    tangent = np.gradient(path, axis=0)[1:]
    norm = np.hypot(tangent[:, 0], tangent[:, 1])
    # a standing plan has no direction: the ego's left (+y of its frame)
    normal = np.where(
        norm[:, None] > 1e-6,
        np.column_stack([-tangent[:, 1], tangent[:, 0]]) / np.maximum(norm, 1e-6)[:, None],
        np.array([0.0, 1.0]),
    )
    u = np.clip(np.arange(1, len(wp) + 1) * KEYFRAME_DT / ramp_s, 0.0, 1.0)
    weight = u * u * (3.0 - 2.0 * u)
    return wp + normal * (offset * weight)[:, None]


class NoisyExpertPlanner:
    """The expert's tracked plan, perturbed now and then (module doc). ``factor`` and
    ``offset`` are the perturbation of the last plan (1 and 0 when clean)."""

    def __init__(self, episode: Any, noise: DartNoise | None = None, mix_seed: int = 0) -> None:
        self.clean = TrackedExpertPlanner(episode)
        self.noise = noise or DartNoise()
        self.rng = np.random.default_rng([int(episode.seed), int(mix_seed), _NOISE_STREAM])
        self.left = 0  # re-plans the running perturbation still holds after the current one
        self.factor, self.offset = 1.0, 0.0
        self.perturbed_plans = 0

    def tick(self) -> None:
        """Every simulation step: the expert's state follows the episode."""
        self.clean.tick()

    def _draw(self) -> None:
        """Keep the running perturbation, or toss the coin for a new one."""
        if self.left > 0:
            self.left -= 1
            return
        self.factor, self.offset = 1.0, 0.0
        if self.rng.random() < self.noise.p:
            self.factor = float(self.rng.uniform(*self.noise.scale))
            self.offset = float(self.rng.uniform(-1.0, 1.0)) * self.noise.lateral_m
            self.left = self.noise.hold_plans - 1

    def plan(self, frame: Frame) -> PlanOutput:
        self._draw()
        out = self.clean.plan(frame)
        if self.factor == 1.0 and self.offset == 0.0:
            return out
        self.perturbed_plans += 1
        wp = scale_progress(out.waypoints, self.factor)
        if self.offset:
            wp = offset_laterally(wp, self.offset, self.noise.ramp_s)
        return PlanOutput(wp)


@dataclass(frozen=True)
class NoisyExpertRecipe:
    """A picklable :class:`~rsd.sim.planners.PlannerRecipe` of the noisy expert (worker
    processes build their own planner per episode)."""

    noise: DartNoise = field(default_factory=DartNoise)
    mix_seed: int = 0
    replan_s: float = KEYFRAME_DT

    @property
    def name(self) -> str:
        return "dart"

    def factory(self) -> Callable[[Any], Planner]:
        return functools.partial(NoisyExpertPlanner, noise=self.noise, mix_seed=self.mix_seed)

    def init_worker(self) -> None:
        """Nothing to set up: no model."""
