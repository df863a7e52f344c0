"""Track a planned trajectory with physical controls: pure pursuit + a speed controller.

A plan is ``(T, 2)`` waypoints ``(x, y)`` in the ego frame of the moment it was made, one every
``KEYFRAME_DT`` (0.5 s), as every rsd planner outputs it. :class:`TrajectoryController` keeps the
latest plan in world coordinates (right-handed "up" world of :mod:`rsd.sim.convert`) and, at
every 10 Hz step, returns ``(accel, steer)`` for :meth:`rsd.sim.episode.Episode.step`:

* **Lateral**: pure pursuit on the polyline ``ego position at plan time -> waypoints``
  (extended straight beyond its last point), look-ahead ``clip(0.4 v + 3, 4, 25)`` m, inverted
  through highway-env's kinematic bicycle: the centre's path curvature is
  ``kappa = sin(beta) / (L / 2)`` with ``beta = arctan(tan(steer) / 2)``, so
  ``steer = arctan(2 tan(arcsin(kappa L / 2)))``.
* **Longitudinal**: the plan implies a speed profile: the ego's speed when the plan was made,
  then each 0.5 s segment's mean speed (segment length / 0.5 s) at the segment's middle,
  linear in between. The command is the profile's slope (feed-forward of the plan's own
  acceleration) plus ``(v_target - v) / SPEED_TAU`` (a proportional correction; ``v_target``
  the profile at the time since the plan was made), clipped to ``ACCEL_LIMITS``
  (-9..+4 m/s^2). Without the feed-forward the loop lagged a hard brake by about a second
  (a tracked expert plan then rear-ended in ``sudden_brake``).

Signs: rsd's frames are counter-clockwise positive; highway-env's steering is positive towards
its +y (to the right on screen), so the steering angle is negated once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsd.scene import KEYFRAME_DT, SIM_HZ, wrap_angle
from rsd.sim.convert import heading_to_up, to_up

ACCEL_LIMITS = (-9.0, 4.0)
"""Acceleration the controller may command (m/s^2)."""
SPEED_TAU = 0.5
"""Time constant (s) of the speed loop: ``accel = (v_target - v) / SPEED_TAU``."""
SPEED_PREVIEW = 0.0
"""How far ahead (s) of the elapsed time the plan's speed profile is read. With the plan's
acceleration fed forward none is needed (a command acts over the next step, so the speed of a
constant-deceleration plan is tracked exactly); the proportional loop alone needed 0.25 s."""
STEER_MAX = np.pi / 4


@dataclass(frozen=True)
class ControllerConfig:
    lookahead_gain: float = 0.4
    """Look-ahead distance per m/s of speed (s)."""
    lookahead_min: float = 4.0
    lookahead_max: float = 25.0
    lookahead_base: float = 3.0
    """Look-ahead at standstill (m), before the clip. ``0.4 v + 3`` m: the former ``0.6 v + 4``
    (at least 5 m) cut the 9 m-radius right turns of the intersection enough to leave the road
    while tracking the expert's own plan (2 of 5 dev-seed episodes; 0 with this one)."""
    speed_tau: float = SPEED_TAU
    speed_preview: float = SPEED_PREVIEW
    feedforward: bool = True
    """Add the plan's own acceleration (the slope of its speed profile, which starts at the
    ego's speed when the plan was made) to the proportional term; without it the loop lags a
    hard brake by about a second."""


class TrajectoryController:
    """Holds the current plan (world coordinates) and turns it into controls every step."""

    def __init__(self, cfg: ControllerConfig | None = None) -> None:
        self.cfg = cfg or ControllerConfig()
        self.path: np.ndarray | None = None  # (T + 1, 2) world-up, starting at the ego
        self.speeds: np.ndarray | None = None  # (T,) m/s per segment
        self.v0 = 0.0  # the ego's speed when the plan was made
        self.plan_t = 0.0

    def set_plan(
        self, waypoints: np.ndarray, pose: np.ndarray, t: float, speed: float | None = None
    ) -> None:
        """New plan: ``waypoints`` (T, 2) in the ego frame of ``pose`` = world-up
        ``(x, y, yaw)`` at time ``t`` (s), made at ego speed ``speed`` (m/s; default: the
        plan's first segment speed)."""
        wp = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
        local = np.vstack([[0.0, 0.0], wp])
        c, s = np.cos(pose[2]), np.sin(pose[2])
        self.path = np.column_stack(
            [
                pose[0] + c * local[:, 0] - s * local[:, 1],
                pose[1] + s * local[:, 0] + c * local[:, 1],
            ]
        )
        self.speeds = np.hypot(*np.diff(local, axis=0).T) / KEYFRAME_DT
        self.v0 = float(self.speeds[0] if speed is None else speed)
        self.plan_t = float(t)

    def _profile(self) -> tuple[np.ndarray, np.ndarray]:
        """The plan's speed profile: knots (s since the plan) and speeds (m/s): the speed at
        plan time, then each segment's mean speed at the segment's middle."""
        assert self.speeds is not None
        mids = (np.arange(len(self.speeds)) + 0.5) * KEYFRAME_DT
        return np.concatenate([[0.0], mids]), np.concatenate([[self.v0], self.speeds])

    def target_speed(self, t: float) -> float:
        """Speed (m/s) the plan asks for at time ``t`` (read ``speed_preview`` s ahead)."""
        knots, v = self._profile()
        return float(np.interp(t - self.plan_t + self.cfg.speed_preview, knots, v))

    def plan_accel(self, t: float) -> float:
        """The plan's acceleration (m/s^2) at time ``t``: the slope of its speed profile
        (read ``speed_preview`` s ahead); 0 past its end."""
        knots, v = self._profile()
        tau = t - self.plan_t + self.cfg.speed_preview
        i = int(np.searchsorted(knots, tau, side="right")) - 1
        if i < 0 or i >= len(knots) - 1:
            return 0.0
        return float((v[i + 1] - v[i]) / (knots[i + 1] - knots[i]))

    def steer_towards(self, pose: np.ndarray, speed: float, length: float) -> float:
        """highway-env steering angle (rad) of pure pursuit from ``pose`` (world-up)."""
        assert self.path is not None
        cfg = self.cfg
        ld = cfg.lookahead_gain * speed + cfg.lookahead_base
        ld = float(np.clip(ld, cfg.lookahead_min, cfg.lookahead_max))
        target = _point_ahead(self.path, pose[:2], ld)
        if target is None:
            return 0.0
        d = target - pose[:2]
        dist = max(float(np.hypot(*d)), 1e-3)
        alpha = float(wrap_angle(np.arctan2(d[1], d[0]) - pose[2]))
        kappa = 2.0 * np.sin(alpha) / dist
        beta = np.arcsin(np.clip(kappa * length / 2.0, -0.99, 0.99))
        steer_up = float(np.arctan(2.0 * np.tan(beta)))
        return -float(np.clip(steer_up, -STEER_MAX, STEER_MAX))

    def act(self, pose: np.ndarray, speed: float, length: float, t: float) -> tuple[float, float]:
        """``(accel m/s^2, steer rad)`` for the ego at world-up ``pose`` now (time ``t``)."""
        if self.path is None:
            return 0.0, 0.0
        accel = (self.target_speed(t) - speed) / self.cfg.speed_tau
        if self.cfg.feedforward:
            accel += self.plan_accel(t)
        accel = float(np.clip(accel, *ACCEL_LIMITS))
        return accel, self.steer_towards(pose, speed, length)

    def act_on(self, ego: object, t: float) -> tuple[float, float]:
        """:meth:`act` for a highway-env ego vehicle."""
        return self.act(ego_pose(ego), float(ego.speed), float(ego.LENGTH), t)  # type: ignore[attr-defined]


def ego_pose(vehicle: object) -> np.ndarray:
    """World-up ``(x, y, yaw)`` of a highway-env vehicle."""
    xy = to_up(vehicle.position)  # type: ignore[attr-defined]
    return np.array([xy[0], xy[1], float(heading_to_up(vehicle.heading))])  # type: ignore[attr-defined]


def _point_ahead(path: np.ndarray, xy: np.ndarray, ld: float) -> np.ndarray | None:
    """The point ``ld`` m along ``path`` (N, 2) past the projection of ``xy``; the path is
    extended straight along its last non-degenerate segment. None if the path has no length."""
    seg = np.diff(path, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    ok = seg_len > 1e-3
    if not ok.any():
        return None
    seg, seg_len, starts = seg[ok], seg_len[ok], path[:-1][ok]
    rel = xy[None, :] - starts
    u = np.clip(np.einsum("ij,ij->i", rel, seg) / seg_len**2, 0.0, 1.0)
    foot = starts + u[:, None] * seg
    i = int(np.argmin(np.hypot(*(foot - xy).T)))
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = cum[i] + u[i] * seg_len[i] + ld
    if s >= cum[-1]:
        direction = seg[-1] / seg_len[-1]
        return starts[-1] + seg[-1] + (s - cum[-1]) * direction
    j = int(np.searchsorted(cum, s, side="right") - 1)
    return starts[j] + (s - cum[j]) / seg_len[j] * seg[j]


def steps_per_replan(seconds: float) -> int:
    """Simulation steps between two plans (at least 1)."""
    return max(1, round(seconds * SIM_HZ))
