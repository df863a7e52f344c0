"""The comfort term of the plan score (:mod:`rsd.metrics.plan_score`): nuPlan's bounds on a
tracked 10 Hz trajectory, smoothed as navsim's ``pdm_comfort_metrics`` smooths its states."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from scipy.signal import savgol_filter


class ComfortSettings(Protocol):
    """What :func:`comfort` reads of a :class:`~rsd.metrics.plan_score.PlanScoreConfig`."""

    sim_dt: float
    lon_accel: tuple[float, float]
    lat_accel: float
    yaw_rate: float
    yaw_accel: float
    lon_jerk: float
    jerk: float
    accel_window: int
    jerk_accel_window: int
    yaw_window: int


def comfort_signals(track: dict[str, np.ndarray], cfg: ComfortSettings) -> dict[str, np.ndarray]:
    """Raw comfort signals (N, S) of a tracked trajectory
    (:func:`~rsd.metrics.plan_score.track_plan`): ``lon`` / ``lat`` acceleration (m/s^2, along /
    left of ``track["yaw"]``) and ``speed`` (m/s)."""
    vel, acc = track["vel"], track["acc"]
    h = np.stack([np.cos(track["yaw"]), np.sin(track["yaw"])], -1)
    return {
        "lon": (acc * h).sum(-1),
        "lat": h[..., 0] * acc[..., 1] - h[..., 1] * acc[..., 0],
        "speed": np.linalg.norm(vel, axis=-1),
    }


def comfort(track: dict[str, np.ndarray], cfg: ComfortSettings, per_bound: bool = False) -> Any:
    """(N,) 1.0 where the tracked trajectory (:func:`~rsd.metrics.plan_score.track_plan`) keeps
    nuPlan's comfort bounds at every step: longitudinal acceleration in ``cfg.lon_accel``,
    |lateral acceleration|, |yaw rate|, |yaw acceleration|, |longitudinal jerk| and |jerk|
    below their bounds.
    ``per_bound``: ``{bound: (N,) bool}`` whether each bound holds instead.

    The signals are smoothed as navsim's ``pdm_comfort_metrics`` smooths its 10 Hz states
    (Savitzky-Golay throughout): each acceleration is held to its bound after a fit over the
    whole horizon (``cfg.accel_window``, order 2); a jerk is the derivative (same window) of
    the acceleration smoothed over ``cfg.jerk_accel_window`` steps, and the jerk bound holds
    ``d|a|/dt``, the rate of the acceleration's magnitude (not ``|da/dt|``); yaw rate and yaw
    acceleration are the first (order 2) and second (order 3) derivatives of the unwrapped
    heading over ``cfg.yaw_window`` steps. So a bound is broken by a sustained excess, not by
    one sample: a spline through 0.5 s waypoints kinks at every waypoint."""
    sig = comfort_signals(track, cfg)
    lon, lat = sig["lon"], sig["lat"]
    n_time, dt = lon.shape[1], cfg.sim_dt

    def sg(x: np.ndarray, window: int, order: int = 2, deriv: int = 0) -> np.ndarray:
        window = n_time if window <= 0 else min(window, n_time)
        return savgol_filter(x, window, order, deriv=deriv, delta=dt, axis=1)

    def jerk(a: np.ndarray) -> np.ndarray:
        return sg(sg(a, cfg.jerk_accel_window), cfg.accel_window, deriv=1)

    heading = np.unwrap(track["yaw"], axis=1)
    lon_s = sg(lon, cfg.accel_window)
    ok = {
        "lon_accel": (lon_s >= cfg.lon_accel[0]) & (lon_s <= cfg.lon_accel[1]),
        "lat_accel": np.abs(sg(lat, cfg.accel_window)) <= cfg.lat_accel,
        "yaw_rate": np.abs(sg(heading, cfg.yaw_window, deriv=1)) <= cfg.yaw_rate,
        "yaw_accel": np.abs(sg(heading, cfg.yaw_window, 3, deriv=2)) <= cfg.yaw_accel,
        "lon_jerk": np.abs(jerk(lon)) <= cfg.lon_jerk,
        "jerk": np.abs(jerk(np.hypot(lon, lat))) <= cfg.jerk,
    }
    ok = {k: v.all(axis=1) for k, v in ok.items()}
    if per_bound:
        return ok
    return np.logical_and.reduce(list(ok.values())).astype(float)
