"""Driving metrics on hand-made episode logs."""

import math

import numpy as np
import pytest

from rsd.metrics.driving import (
    comfort_windows,
    comfortness,
    driving_metrics,
    efficiency,
    episode_score,
    episode_success,
)
from rsd.sim.closed_loop import EpisodeLog


def _log(
    speed, yaw=None, nearby=None, rc=100.0, infractions=(), scenario="highway", skill="nominal"
):
    n = len(speed)
    outcome = infractions[0]["type"] if infractions else "success"
    return EpisodeLog(
        scenario=scenario,
        skill=skill,
        seed=10_000,
        planner="test",
        outcome=outcome,
        route_completion=rc,
        route_length=500.0,
        progress=5.0 * rc,
        reached_goal=False,
        duration=(n - 1) / 10,
        infractions=list(infractions),
        t=[i / 10 for i in range(n)],
        x=list(np.cumsum(speed) / 10),
        y=[0.0] * n,
        yaw=[0.0] * n if yaw is None else list(yaw),
        speed=list(speed),
        nearby_speed=[20.0] * n if nearby is None else list(nearby),
    )


def test_score_with_one_vehicle_collision_is_completion_times_060():
    crash = [{"t": 7.0, "type": "vehicle_collision", "agent": 3}]
    log = _log([20.0] * 71, rc=62.5, infractions=crash)
    assert episode_score(log) == pytest.approx(62.5 * 0.6)
    assert not episode_success(log)


def test_offroad_counts_as_a_static_collision_and_stuck_has_no_factor():
    off = _log([20.0] * 10, rc=40.0, infractions=[{"t": 1.0, "type": "offroad", "agent": None}])
    assert episode_score(off) == pytest.approx(40.0 * 0.65)
    stuck = _log([0.0] * 10, rc=30.0, infractions=[{"t": 1.0, "type": "stuck", "agent": None}])
    assert episode_score(stuck) == pytest.approx(30.0) and not episode_success(stuck)


def test_success_needs_a_completed_route():
    assert episode_success(_log([20.0] * 10, rc=100.0))
    assert episode_success(_log([20.0] * 10, rc=96.0))
    assert not episode_success(_log([20.0] * 10, rc=80.0))


def test_constant_speed_straight_run_is_fully_comfortable():
    log = _log([25.0] * 301)
    assert comfortness(log) == 100.0
    assert len(comfort_windows(log.t, log.yaw, log.speed)) == 15


def test_hard_brake_breaks_comfort_in_its_windows_only():
    # 25 m/s for 10 s, then 6 m/s^2 for 2 s (frames 100..120), then 13 m/s
    v = np.full(301, 25.0)
    v[100:121] = 25.0 - 0.6 * np.arange(21)
    v[121:] = v[120]
    log = _log(list(v))
    ok = comfort_windows(log.t, log.yaw, log.speed)
    assert ok[:4].all() and ok[7:].all()  # frames 0..79 and 140..299
    assert not ok[5]  # frames 100..119: -6 m/s^2 is below -4.05
    assert comfortness(log) < 100.0
    assert comfortness(log) == pytest.approx(100.0 * ok.mean())


def test_sharp_turn_breaks_comfort():
    yaw = np.concatenate([np.zeros(100), np.linspace(0, 1.5, 10), np.full(91, 1.5)])
    log = _log([10.0] * 201, yaw=yaw)  # 1.5 rad/s yaw rate for 1 s
    assert comfortness(log) < 100.0


def test_efficiency_hand_case():
    speed = [20.0] * 10 + [30.0] * 10
    nearby = [25.0] * 10 + [20.0] * 10  # 20 frames: every frame is a checkpoint
    assert efficiency(speed, nearby) == pytest.approx((80.0 + 150.0) / 2)
    gaps = [25.0] * 10 + [math.nan] * 10  # checkpoints with no neighbours are skipped
    assert efficiency(speed, gaps) == pytest.approx(80.0)
    assert math.isnan(efficiency(speed, [math.nan] * 20))


def test_tables_per_scenario_and_skill():
    logs = [
        _log([20.0] * 30, scenario="highway", skill="nominal"),
        _log(
            [20.0] * 30,
            rc=50.0,
            scenario="cut_in",
            skill="emergency_brake",
            infractions=[{"t": 2.0, "type": "vehicle_collision", "agent": 1}],
        ),
        _log([20.0] * 30, scenario="sudden_brake", skill="emergency_brake"),
    ]
    m = driving_metrics(logs)
    assert m["overall"]["episodes"] == 3
    assert m["overall"]["driving_score"] == pytest.approx((100 + 30 + 100) / 3)
    assert m["overall"]["success_rate"] == pytest.approx(200 / 3)
    assert m["overall"]["collision_rate"] == pytest.approx(100 / 3)
    assert m["per_scenario"]["cut_in"]["driving_score"] == pytest.approx(30.0)
    assert m["multi_ability"] == {"emergency_brake": 50.0, "nominal": 100.0}


def test_log_json_round_trip_keeps_missing_neighbours():
    log = _log([20.0] * 5, nearby=[math.nan, 20.0, 21.0, math.nan, 19.0])
    back = EpisodeLog.from_json(log.to_json())
    assert back.speed == log.speed and back.outcome == log.outcome
    assert math.isnan(back.nearby_speed[0]) and back.nearby_speed[1] == 20.0
