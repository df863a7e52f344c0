"""The plan score's comfort term smooths as navsim's ``pdm_comfort_metrics`` does: a bound is
broken by a sustained excess of the 10 Hz tracked trajectory, not by one sample or by the kink
a spline through 0.5 s waypoints has at every waypoint."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.metrics.plan_score import PlanScoreConfig, comfort, known_past, track_plan

CFG = PlanScoreConfig()
T_S = np.arange(31) * CFG.sim_dt  # the 3 s horizon at 10 Hz
WAYPOINT_T = 0.5 * np.arange(1, 7)


def straight_track(lon_accel: np.ndarray, v0: float = 10.0) -> dict[str, np.ndarray]:
    """A track along +x at 10 Hz with the given longitudinal acceleration (S,) m/s^2."""
    speed = v0 + np.concatenate([[0.0], np.cumsum(lon_accel[:-1]) * CFG.sim_dt])
    xy = np.stack([np.concatenate([[0.0], np.cumsum(speed[:-1]) * CFG.sim_dt]), 0 * T_S], -1)
    vel = np.stack([speed, 0 * T_S], -1)
    acc = np.stack([lon_accel, 0 * T_S], -1)
    return {"t": T_S, "xy": xy[None], "vel": vel[None], "acc": acc[None], "yaw": 0 * T_S[None]}


def circle_track(yaw_rate: float, speed: float = 4.0) -> dict[str, np.ndarray]:
    """A track at constant ``speed`` m/s turning left at a constant ``yaw_rate`` rad/s."""
    yaw = yaw_rate * T_S
    vel = speed * np.stack([np.cos(yaw), np.sin(yaw)], -1)
    acc = speed * yaw_rate * np.stack([-np.sin(yaw), np.cos(yaw)], -1)
    xy = speed / yaw_rate * np.stack([np.sin(yaw), 1 - np.cos(yaw)], -1)
    return {"t": T_S, "xy": xy[None], "vel": vel[None], "acc": acc[None], "yaw": yaw[None]}


def test_steady_braking_inside_the_bound_is_comfortable_and_outside_is_not():
    assert comfort(straight_track(np.full(31, -4.0)), CFG)[0] == 1.0
    held = comfort(straight_track(np.full(31, -4.2)), CFG, per_bound=True)
    assert not held["lon_accel"][0]
    assert held["lon_jerk"][0] and held["jerk"][0]  # constant: no jerk at all


def test_a_single_sample_spike_is_smoothed_away_as_in_navsim():
    # one 0.1 s sample at -6 m/s^2 in the middle: the whole-horizon quadratic fit of 31
    # samples weighs the centre sample by 2157 / 29667 = 0.073, i.e. -0.44 m/s^2
    spike = np.zeros(31)
    spike[15] = -6.0
    assert comfort(straight_track(spike), CFG)[0] == 1.0
    # a 1.5 s stretch of it is a sustained excess
    spike[8:23] = -6.0
    assert comfort(straight_track(spike), CFG, per_bound=True)["lon_accel"][0] == False  # noqa: E712


def test_yaw_rate_bound_on_a_steady_turn():
    # 4 m/s on a circle: lateral acceleration 4 * yaw rate stays below 4.89 m/s^2
    inside = comfort(circle_track(0.9), CFG, per_bound=True)
    outside = comfort(circle_track(1.0), CFG, per_bound=True)
    assert all(v[0] for v in inside.values())
    assert not outside["yaw_rate"][0]
    assert outside["lat_accel"][0] and outside["yaw_accel"][0]


def test_a_plan_braking_steadily_through_its_waypoints_is_comfortable():
    # 10 m/s, then 3 m/s^2 of braking from now on, given as 6 waypoints at 0.5 s: every bound
    # holds for this motion; the spline's kink at now (constant-speed past) used to read as a
    # jerk of ~10 m/s^3 over a 7-step window
    plan = np.stack([10 * WAYPOINT_T - 1.5 * WAYPOINT_T**2, 0 * WAYPOINT_T], -1)[None]
    past = known_past(None, None, np.array([10.0]), CFG.dt)
    assert comfort(track_plan(plan, past, CFG), CFG)[0] == 1.0


@pytest.mark.parametrize("decel", [6.0, 8.0])
def test_a_plan_braking_harder_than_nuplans_bound_is_not_comfortable(decel):
    stop_t = 10.0 / decel  # brakes to a standstill, then stands
    t = np.minimum(WAYPOINT_T, stop_t)
    plan = np.stack([10 * t - decel / 2 * t**2, 0 * t], -1)[None]
    past = known_past(None, None, np.array([10.0]), CFG.dt)
    assert comfort(track_plan(plan, past, CFG), CFG)[0] == 0.0
