"""Closed-loop driving metrics in the Bench2Drive convention, as pure functions.

Input: episode logs as written by :mod:`rsd.sim.closed_loop` (any object with the attributes of
:class:`~rsd.sim.closed_loop.EpisodeLog`: ``scenario, skill, outcome, route_completion,
infractions, t, yaw, speed, nearby_speed``...).

* **Driving Score** of an episode = route completion (0-100) x the product of the penalties of
  its infractions (CARLA leaderboard factors, :data:`PENALTIES`). Only vehicle collisions and
  leaving the road happen here; off-road is scored like a collision with a static object
  (0.65). ``stuck`` and ``timeout`` carry no factor: they end the episode, and the route not
  driven is already missing from the completion. The reported DS is the mean over episodes.
* **Success**: no infraction of any kind (``timeout``/``stuck`` included) and route completion
  >= :data:`COMPLETE_AT` % (goal scenarios reach 100 at the goal; on open roads the route is the
  distance the expert covers in the episode, and 5 % short of it still counts as completed).
* **Efficiency**: ego speed / mean speed of the vehicles within 50 m, in %, at 20 checkpoints
  evenly spaced over the episode, averaged over the checkpoints that have neighbours.
* **Comfortness**: share of consecutive 20-frame (2 s) windows in which every frame is within
  nuPlan's bounds (:data:`COMFORT_BOUNDS`). Kinematics come from the logged 10 Hz pose and
  speed by central differences, each derivative smoothed with a 5-frame (0.5 s) moving average
  before the next one is taken (nuPlan filters its signals too).
* **Rates**: collision and off-road rates (% of episodes); success per skill group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PENALTIES = {
    "pedestrian_collision": 0.50,
    "vehicle_collision": 0.60,
    "static_collision": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
    "offroad": 0.65,
}
"""Multiplicative Driving Score penalty per infraction type (others: 1)."""
COMPLETE_AT = 95.0
"""Route completion (%) at which a route counts as completed for the success rate."""
CHECKPOINTS = 20
"""Efficiency checkpoints per episode."""
WINDOW = 20
"""Frames per comfort window (2 s at 10 Hz)."""
SMOOTH = 5
"""Moving-average width (frames) applied to each derivative."""
COMFORT_BOUNDS = {
    "lon_accel": (-4.05, 2.40),
    "lat_accel": (-4.89, 4.89),
    "yaw_rate": (-0.95, 0.95),
    "yaw_accel": (-1.93, 1.93),
    "lon_jerk": (-4.13, 4.13),
    "jerk": (-8.37, 8.37),
}
"""nuPlan comfort bounds: m/s^2, m/s^2, rad/s, rad/s^2, m/s^3, m/s^3."""


def episode_score(log: Any) -> float:
    """Driving Score (0-100) of one episode: route completion x infraction penalties."""
    factor = 1.0
    for inf in log.infractions:
        factor *= PENALTIES.get(inf["type"], 1.0)
    return float(log.route_completion) * factor


def episode_success(log: Any) -> bool:
    """Completed (>= ``COMPLETE_AT`` %) with no infraction at all."""
    return not log.infractions and float(log.route_completion) >= COMPLETE_AT


def _smooth(x: np.ndarray) -> np.ndarray:
    if len(x) < SMOOTH:
        return x
    pad = SMOOTH // 2
    xp = np.pad(x, pad, mode="edge")
    return np.convolve(xp, np.ones(SMOOTH) / SMOOTH, mode="valid")


def _diff(x: np.ndarray, dt: float) -> np.ndarray:
    if len(x) < 2:
        return np.zeros_like(x)
    return _smooth(np.gradient(x, dt))


def kinematics(t: Sequence[float], yaw: Sequence[float], speed: Sequence[float]) -> dict:
    """Per-frame ``lon_accel, lat_accel, yaw_rate, yaw_accel, lon_jerk, jerk`` (jerk = norm
    of the derivative of the planar acceleration vector) from poses at a fixed rate."""
    t, v = np.asarray(t, dtype=float), np.asarray(speed, dtype=float)
    psi = np.unwrap(np.asarray(yaw, dtype=float))
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.1
    lon_accel = _diff(v, dt)
    yaw_rate = _diff(psi, dt)
    lat_accel = v * yaw_rate
    # acceleration vector in the world and its derivative
    ax = lon_accel * np.cos(psi) - lat_accel * np.sin(psi)
    ay = lon_accel * np.sin(psi) + lat_accel * np.cos(psi)
    return {
        "lon_accel": lon_accel,
        "lat_accel": lat_accel,
        "yaw_rate": yaw_rate,
        "yaw_accel": _diff(yaw_rate, dt),
        "lon_jerk": _diff(lon_accel, dt),
        "jerk": np.hypot(_diff(ax, dt), _diff(ay, dt)),
    }


def comfort_windows(t: Sequence[float], yaw: Sequence[float], speed: Sequence[float]) -> np.ndarray:
    """(n_windows,) bool: each consecutive ``WINDOW``-frame window within every bound (an
    episode shorter than one window is one window)."""
    k = kinematics(t, yaw, speed)
    ok = np.ones(len(t), dtype=bool)
    for name, (lo, hi) in COMFORT_BOUNDS.items():
        ok &= (k[name] >= lo) & (k[name] <= hi)
    n = max(len(ok) // WINDOW, 1)
    return np.array([ok[i * WINDOW : (i + 1) * WINDOW].all() for i in range(n)])


def comfortness(log: Any) -> float:
    """Share (%) of comfortable 20-frame windows of one episode."""
    return 100.0 * float(np.mean(comfort_windows(log.t, log.yaw, log.speed)))


def efficiency(speed: Sequence[float], nearby_speed: Sequence[float]) -> float:
    """Mean over ``CHECKPOINTS`` evenly spaced frames of ego speed / nearby mean speed (%);
    NaN when no checkpoint has neighbours (or all of them stand still)."""
    v, n = np.asarray(speed, dtype=float), np.asarray(nearby_speed, dtype=float)
    if len(v) == 0:
        return float("nan")
    idx = np.unique(np.linspace(0, len(v) - 1, CHECKPOINTS).round().astype(int))
    ok = np.isfinite(n[idx]) & (n[idx] > 0.1)
    if not ok.any():
        return float("nan")
    return float(100.0 * np.mean(v[idx][ok] / n[idx][ok]))


def _mean(xs: Sequence[float]) -> float:
    arr = np.asarray([x for x in xs if np.isfinite(x)], dtype=float)
    return float(arr.mean()) if arr.size else float("nan")


def summarise(logs: Sequence[Any]) -> dict:
    """DS, SR, efficiency, comfortness, completion and infraction rates over ``logs``."""
    n = len(logs)
    if n == 0:
        return {"episodes": 0}
    return {
        "episodes": n,
        "driving_score": _mean([episode_score(lg) for lg in logs]),
        "success_rate": 100.0 * sum(episode_success(lg) for lg in logs) / n,
        "route_completion": _mean([float(lg.route_completion) for lg in logs]),
        "efficiency": _mean([efficiency(lg.speed, lg.nearby_speed) for lg in logs]),
        "comfortness": _mean([comfortness(lg) for lg in logs]),
        "collision_rate": 100.0 * sum(lg.outcome == "vehicle_collision" for lg in logs) / n,
        "offroad_rate": 100.0 * sum(lg.outcome == "offroad" for lg in logs) / n,
        "stuck_or_timeout_rate": 100.0 * sum(lg.outcome in ("stuck", "timeout") for lg in logs) / n,
    }


def driving_metrics(logs: Sequence[Any]) -> dict:
    """``{"overall": ..., "per_scenario": {name: ...}, "per_skill": {group: ...},
    "multi_ability": {group: success %}}``; each table as :func:`summarise`."""
    by_scn: dict[str, list] = {}
    by_skill: dict[str, list] = {}
    for lg in logs:
        by_scn.setdefault(lg.scenario, []).append(lg)
        by_skill.setdefault(lg.skill, []).append(lg)
    per_skill = {k: summarise(v) for k, v in sorted(by_skill.items())}
    return {
        "overall": summarise(logs),
        "per_scenario": {k: summarise(v) for k, v in by_scn.items()},
        "per_skill": per_skill,
        "multi_ability": {k: v["success_rate"] for k, v in per_skill.items()},
    }
