"""Closed-loop driving metrics following Bench2Drive's evaluation code, as pure functions.

Input: episode logs as written by :mod:`rsd.sim.closed_loop` (any object with the attributes of
:class:`~rsd.sim.episode_log.EpisodeLog`: ``scenario, skill, outcome, route_completion,
route_length, infractions, t, yaw, speed, nearby_speed, route_progress``...). Definitions as in
Bench2Drive (its leaderboard ``statistics_manager.py``, the ``MinimumSpeedRouteTest`` of its
scenario runner and ``tools/efficiency_smoothness_benchmark.py``, read, not copied); the
differences that remain are listed in the README ("Differences from the reference
implementations").

* **Driving Score** of an episode = route completion (0-100) x the product of its infraction
  factors (:data:`PENALTIES`: CARLA's collision 0.60 for vehicles, and Bench2Drive's scenario
  timeout 0.7, given here to ``timeout``: a goal scenario whose duration ran out). Leaving the
  road is Bench2Drive's outside-route-lanes infraction: the factor is
  ``1 - outside_route_percentage / 100``, the share (%) of the route length driven off the road
  (the infraction's ``percentage``; the episode ends there, so it is small and the lost route
  completion carries the cost). ``stuck`` has no factor (Bench2Drive's blocked agent ends the
  route). The reported DS is the mean over episodes.
* **Success**: no infraction of any kind (``timeout``/``stuck`` included) and route completion
  >= ``complete_at`` (default :data:`COMPLETE_AT` %, see the README for why not 100).
* **Efficiency** (Bench2Drive's ``MinimumSpeedRouteTest`` with 20 checkpoints): the route is cut
  into :data:`CHECKPOINTS` equal lengths; at each cut the ego passes, the checkpoint's value is
  100 x (mean ego speed) / (mean of the per-frame mean speed of the other vehicles) over the
  frames since the previous cut that had other vehicles (100 if none), rounded to 0.01; a last
  checkpoint is taken at the end if the ego got past 95 % of the route. An episode's efficiency
  is the mean of its checkpoint values at most 1000 (NaN without any); the reported one the mean
  over episodes that have one.
* **Comfortness** (Bench2Drive's smoothness): the episode is cut into 20-frame chunks (only
  whole ones count; an episode of at most 20 frames is one chunk); in each, the signals are
  Savitzky-Golay smoothed (window 7, order 2) and the chunk passes if every frame is strictly
  within nuPlan's bounds (:data:`COMFORT_BOUNDS`); comfortness = passing chunks / chunks, in %.
  Signals: longitudinal and lateral acceleration, yaw rate, the jerk ``d|a|/dt`` and the
  longitudinal jerk (Savitzky-Golay derivatives of the smoothed accelerations). Bench2Drive's
  "yaw acceleration" is the smoothed yaw *rate* (no derivative is taken), checked against the
  yaw-acceleration bound; that is reproduced by default (``true_yaw_accel=False``; it can never
  fail where the yaw-rate bound holds); ``True`` checks the derivative instead.
* **Rates**: collision and off-road rates (% of episodes); success per skill group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

PENALTIES = {
    "pedestrian_collision": 0.50,
    "vehicle_collision": 0.60,
    "static_collision": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
    "timeout": 0.70,
    "yield_emergency_vehicle": 0.70,
}
"""Multiplicative Driving Score factor per infraction type (others: 1; ``offroad`` is
percentage-based, :func:`infraction_factor`)."""
COMPLETE_AT = 95.0
"""Route completion (%) at which a route counts as completed for the success rate."""
CHECKPOINTS = 20
"""Efficiency checkpoints per route (Bench2Drive's ``MinimumSpeedRouteTest``)."""
MAX_CHECKPOINT_VALUE = 1000.0
"""Checkpoint efficiencies above this (%) are dropped, as Bench2Drive's tool does."""
WINDOW = 20
"""Frames per comfort chunk (2 s at 10 Hz)."""
SAVGOL_WINDOW, SAVGOL_ORDER = 7, 2
"""Savitzky-Golay window (frames) and polynomial order of the comfort signals."""
COMFORT_BOUNDS = {
    "lon_accel": (-4.05, 2.40),
    "lat_accel": (-4.89, 4.89),
    "yaw_rate": (-0.95, 0.95),
    "yaw_accel": (-1.93, 1.93),
    "lon_jerk": (-4.13, 4.13),
    "jerk": (-8.37, 8.37),
}
"""nuPlan comfort bounds (exclusive): m/s^2, m/s^2, rad/s, rad/s^2, m/s^3, m/s^3."""


def infraction_factor(inf: dict) -> float:
    """The Driving Score factor of one infraction ``{"type": ..., "percentage": ...}``."""
    if inf["type"] == "offroad":
        return 1.0 - float(inf.get("percentage", 0.0)) / 100.0
    return PENALTIES.get(inf["type"], 1.0)


def episode_score(log: Any) -> float:
    """Driving Score (0-100) of one episode: route completion x infraction factors."""
    factor = 1.0
    for inf in log.infractions:
        factor *= infraction_factor(inf)
    return max(float(log.route_completion) * factor, 0.0)


def episode_success(log: Any, complete_at: float = COMPLETE_AT) -> bool:
    """Completed (>= ``complete_at`` %) with no infraction at all."""
    return not log.infractions and float(log.route_completion) >= complete_at


# --- comfort ----------------------------------------------------------------------------------


def _savgol(x: np.ndarray, deriv: int = 0, dt: float = 1.0) -> np.ndarray:
    window = min(SAVGOL_WINDOW, len(x))
    if window <= SAVGOL_ORDER:  # too short to fit the polynomial: no smoothing, no derivative
        return np.zeros_like(x) if deriv else x
    return savgol_filter(x, window, SAVGOL_ORDER, deriv=deriv, delta=dt)


def raw_kinematics(t: Any, yaw: Any, speed: Any) -> dict[str, np.ndarray]:
    """Per-frame ``lon_accel = dv/dt``, ``lat_accel = v dyaw/dt`` (m/s^2) and ``yaw_rate``
    (rad/s, counter-clockwise) by central differences of the logged speed and unwrapped yaw:
    what Bench2Drive reads from CARLA's acceleration and angular velocity."""
    t, v = np.asarray(t, float), np.asarray(speed, float)
    psi = np.unwrap(np.asarray(yaw, float))
    if len(t) < 2:
        zero = np.zeros(len(t))
        return {"lon_accel": zero, "lat_accel": zero, "yaw_rate": zero}
    yaw_rate = np.gradient(psi, t)
    return {"lon_accel": np.gradient(v, t), "lat_accel": v * yaw_rate, "yaw_rate": yaw_rate}


def chunk_signals(raw: dict[str, np.ndarray], dt: float, true_yaw_accel: bool = False) -> dict:
    """The six comfort signals of one chunk from its raw ``lon_accel, lat_accel, yaw_rate``
    (Bench2Drive: each smoothed; jerks are derivatives of the smoothed accelerations)."""
    lon, lat, yaw_rate = raw["lon_accel"], raw["lat_accel"], raw["yaw_rate"]
    lon_s = _savgol(lon)
    mag_s = _savgol(np.hypot(lon, lat))
    yaw_s = _savgol(yaw_rate)
    return {
        "lon_accel": lon_s,
        "lat_accel": _savgol(lat),
        "yaw_rate": yaw_s,
        "yaw_accel": _savgol(yaw_s, 1, dt) if true_yaw_accel else yaw_s,
        "lon_jerk": _savgol(lon_s, 1, dt),
        "jerk": _savgol(mag_s, 1, dt),
    }


def comfort_windows(t: Any, yaw: Any, speed: Any, true_yaw_accel: bool = False) -> np.ndarray:
    """(n_chunks,) bool: each whole ``WINDOW``-frame chunk within every bound (an episode of
    at most ``WINDOW`` frames is one chunk)."""
    t = np.asarray(t, float)
    raw = raw_kinematics(t, yaw, speed)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.1
    n = len(t)
    spans = [(0, n)] if n <= WINDOW else [(i, i + WINDOW) for i in range(0, n - WINDOW + 1, WINDOW)]
    out = []
    for a, b in spans:
        sig = chunk_signals({k: v[a:b] for k, v in raw.items()}, dt, true_yaw_accel)
        ok = all(((sig[k] > lo) & (sig[k] < hi)).all() for k, (lo, hi) in COMFORT_BOUNDS.items())
        out.append(ok)
    return np.array(out, bool)


def comfortness(log: Any, true_yaw_accel: bool = False) -> float:
    """Share (%) of comfortable 20-frame chunks of one episode."""
    return 100.0 * float(np.mean(comfort_windows(log.t, log.yaw, log.speed, true_yaw_accel)))


# --- efficiency -------------------------------------------------------------------------------


def _checkpoint_value(ego_sum: float, other_sum: float, n: int) -> float:
    if n > 0 and other_sum:
        return round((ego_sum / n) / (other_sum / n) * 100.0, 2)
    return 100.0


def checkpoint_efficiencies(
    progress: Any,
    route_length: float,
    speed: Any,
    nearby_speed: Any,
    checkpoints: int = CHECKPOINTS,
) -> list[float]:
    """Bench2Drive's checkpoint values (%) of one episode: ``progress`` (N,) route progress per
    frame (m), ``speed`` (N,) ego speed, ``nearby_speed`` (N,) mean speed of the other vehicles
    (NaN: none). A cut is passed when progress exceeds the last cut's by ``route_length /
    checkpoints``; the frame that passes it starts the next segment."""
    prog, v = np.asarray(progress, float), np.asarray(speed, float)
    other = np.asarray(nearby_speed, float)
    if len(prog) == 0 or route_length <= 0:
        return []
    step, last_cut = route_length / checkpoints, 0.0
    values: list[float] = []
    ego_sum = other_sum = 0.0
    n = 0
    for i in range(len(prog)):
        if prog[i] - last_cut > step:
            values.append(_checkpoint_value(ego_sum, other_sum, n))
            last_cut, ego_sum, other_sum, n = prog[i], 0.0, 0.0, 0
        if np.isfinite(other[i]):
            ego_sum, other_sum, n = ego_sum + v[i], other_sum + other[i], n + 1
    if prog[-1] / route_length > 0.95:  # the route ends near 100 %: record its last stretch
        values.append(_checkpoint_value(ego_sum, other_sum, n))
    return values


def route_progress_of(log: Any) -> np.ndarray:
    """(N,) per-frame route progress (m): the logged ``route_progress``, or for logs without
    it the distance driven (cumulative length of the logged path)."""
    prog = getattr(log, "route_progress", None)
    if prog is not None and len(prog) == len(log.speed):
        return np.asarray(prog, float)
    seg = np.hypot(np.diff(log.x), np.diff(log.y))
    return np.concatenate([[0.0], np.cumsum(seg)])


def efficiency(log: Any, checkpoints: int = CHECKPOINTS) -> float:
    """Efficiency (%) of one episode: mean of its checkpoint values up to
    :data:`MAX_CHECKPOINT_VALUE` (:func:`checkpoint_efficiencies`); NaN without any."""
    values = checkpoint_efficiencies(
        route_progress_of(log), float(log.route_length), log.speed, log.nearby_speed, checkpoints
    )
    kept = [x for x in values if x <= MAX_CHECKPOINT_VALUE]
    return float(np.mean(kept)) if kept else float("nan")


# --- tables -----------------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float:
    arr = np.asarray([x for x in xs if np.isfinite(x)], dtype=float)
    return float(arr.mean()) if arr.size else float("nan")


def _efficiency_comfort(logs: Sequence[Any]) -> dict[int, tuple[float, float]]:
    """``{id(log): (efficiency, comfortness)}``: the costly per-episode values (comfort's
    Savitzky-Golay fits), computed once for every table that reads them."""
    return {id(lg): (efficiency(lg), comfortness(lg)) for lg in logs}


def summarise(
    logs: Sequence[Any], complete_at: float = COMPLETE_AT, per_episode: dict | None = None
) -> dict:
    """DS, SR, efficiency, comfortness, completion and infraction rates over ``logs``;
    ``per_episode`` (:func:`_efficiency_comfort` of a superset of ``logs``) spares
    recomputing them."""
    n = len(logs)
    if n == 0:
        return {"episodes": 0}
    per_episode = per_episode or _efficiency_comfort(logs)
    return {
        "episodes": n,
        "driving_score": _mean([episode_score(lg) for lg in logs]),
        "success_rate": 100.0 * sum(episode_success(lg, complete_at) for lg in logs) / n,
        "route_completion": _mean([float(lg.route_completion) for lg in logs]),
        "efficiency": _mean([per_episode[id(lg)][0] for lg in logs]),
        "comfortness": _mean([per_episode[id(lg)][1] for lg in logs]),
        "collision_rate": 100.0 * sum(lg.outcome == "vehicle_collision" for lg in logs) / n,
        "offroad_rate": 100.0 * sum(lg.outcome == "offroad" for lg in logs) / n,
        "stuck_or_timeout_rate": 100.0 * sum(lg.outcome in ("stuck", "timeout") for lg in logs) / n,
    }


def driving_metrics(logs: Sequence[Any], complete_at: float = COMPLETE_AT) -> dict:
    """``{"overall": ..., "per_scenario": {name: ...}, "per_skill": {group: ...},
    "multi_ability": {group: success %}}``; each table as :func:`summarise`."""
    by_scn: dict[str, list] = {}
    by_skill: dict[str, list] = {}
    for lg in logs:
        by_scn.setdefault(lg.scenario, []).append(lg)
        by_skill.setdefault(lg.skill, []).append(lg)
    once = _efficiency_comfort(logs)  # not once per table
    per_skill = {k: summarise(v, complete_at, once) for k, v in sorted(by_skill.items())}
    return {
        "overall": summarise(logs, complete_at, once),
        "per_scenario": {k: summarise(v, complete_at, once) for k, v in by_scn.items()},
        "per_skill": per_skill,
        "multi_ability": {k: v["success_rate"] for k, v in per_skill.items()},
    }
