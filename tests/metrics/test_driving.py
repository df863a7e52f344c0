"""Driving metrics on hand-made episode logs."""

import json
import math

import numpy as np
import pytest

from rsd.metrics.driving import (
    checkpoint_efficiencies,
    chunk_signals,
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


def test_offroad_factor_is_the_share_of_route_off_road_and_stuck_has_none():
    # Bench2Drive's outside-route-lanes penalty: 1 - percentage / 100
    off = [{"t": 1.0, "type": "offroad", "agent": None, "percentage": 2.5}]
    assert episode_score(_log([20.0] * 10, rc=40.0, infractions=off)) == pytest.approx(39.0)
    old = [{"t": 1.0, "type": "offroad", "agent": None}]  # logs from before: no percentage
    assert episode_score(_log([20.0] * 10, rc=40.0, infractions=old)) == pytest.approx(40.0)
    stuck = _log([0.0] * 10, rc=30.0, infractions=[{"t": 1.0, "type": "stuck", "agent": None}])
    assert episode_score(stuck) == pytest.approx(30.0) and not episode_success(stuck)


def test_timeout_is_a_scenario_timeout_factor_070():
    late = [{"t": 30.0, "type": "timeout", "agent": None}]
    crash = [{"t": 7.0, "type": "vehicle_collision", "agent": 3}]
    assert episode_score(_log([5.0] * 10, rc=80.0, infractions=late)) == pytest.approx(56.0)
    both = _log([5.0] * 10, rc=80.0, infractions=late + crash)
    assert episode_score(both) == pytest.approx(80.0 * 0.7 * 0.6)


def test_success_needs_a_completed_route():
    assert episode_success(_log([20.0] * 10, rc=100.0))
    assert episode_success(_log([20.0] * 10, rc=96.0))
    assert not episode_success(_log([20.0] * 10, rc=96.0), complete_at=99.0)
    assert not episode_success(_log([20.0] * 10, rc=80.0))


def test_constant_speed_straight_run_is_fully_comfortable():
    log = _log([25.0] * 301)
    assert comfortness(log) == 100.0
    # whole 20-frame chunks only: 301 frames -> 15 chunks; at most 20 frames -> one chunk
    assert len(comfort_windows(log.t, log.yaw, log.speed)) == 15
    assert len(comfort_windows(log.t[:45], log.yaw[:45], log.speed[:45])) == 2
    assert len(comfort_windows(log.t[:12], log.yaw[:12], log.speed[:12])) == 1


@pytest.mark.parametrize("decel, ok", [(3.0, True), (5.0, False)])
def test_constant_deceleration_against_the_lon_bound(decel, ok):
    # v linear in t: every derivative is exact, Savitzky-Golay (order 2) keeps it: -3 passes
    # -4.05 < a, -5 does not, in every chunk
    v = 30.0 - decel * np.arange(50) / 10
    log = _log(list(v))
    assert comfort_windows(log.t, log.yaw, log.speed).tolist() == [ok, ok]


def test_savgol_smooths_a_one_frame_spike():
    # Savitzky-Golay window 7 order 2: centre weight 7/21, neighbours 6/21, 3/21, -2/21
    raw = {k: np.zeros(20) for k in ("lon_accel", "lat_accel", "yaw_rate")}
    raw["lon_accel"][10] = 3.0  # above the 2.40 bound before smoothing
    sig = chunk_signals(raw, 0.1)
    np.testing.assert_allclose(sig["lon_accel"][7:14], 3.0 * np.array([-2, 3, 6, 7, 6, 3, -2]) / 21)


def test_jerk_is_the_derivative_of_the_acceleration_magnitude():
    # a constant-speed turn: the acceleration vector turns, its magnitude does not: jerk 0
    # (|da/dt| would be |a| * yaw rate = 4.5 * 0.9 = 4.05 m/s^3)
    raw = {"lon_accel": np.zeros(20), "lat_accel": np.full(20, 4.5), "yaw_rate": np.full(20, 0.9)}
    sig = chunk_signals(raw, 0.1)
    np.testing.assert_allclose(sig["jerk"], 0.0, atol=1e-9)
    np.testing.assert_allclose(sig["lat_accel"], 4.5)


def test_yaw_acceleration_as_bench2drive_or_as_derivative():
    # yaw rate rising 0.5 rad/s per second: Bench2Drive's "yaw_accel" is the smoothed yaw
    # rate itself; the derivative is 0.5 rad/s^2
    raw = {k: np.zeros(20) for k in ("lon_accel", "lat_accel")}
    raw["yaw_rate"] = 0.05 * np.arange(20)
    np.testing.assert_allclose(chunk_signals(raw, 0.1)["yaw_accel"], raw["yaw_rate"], atol=1e-9)
    true = chunk_signals(raw, 0.1, true_yaw_accel=True)["yaw_accel"]
    np.testing.assert_allclose(true, 0.5, atol=1e-9)


def test_sharp_turn_breaks_comfort():
    yaw = np.concatenate([np.zeros(100), np.linspace(0, 1.5, 10), np.full(91, 1.5)])
    log = _log([10.0] * 201, yaw=yaw)  # 1.5 rad/s yaw rate for 1 s
    assert comfortness(log) < 100.0


def test_checkpoint_efficiency_is_a_ratio_of_segment_means():
    # one checkpoint over the whole route: ego 10 m/s on the 4 frames with others around,
    # others 5, 20, 5, 20 -> 100 * 10 / 12.5 = 80 (a mean of ratios would give 125)
    nearby = [5.0, 20.0, math.nan, 5.0, 20.0]
    vals = checkpoint_efficiencies([0, 1, 2, 3, 4], 4.0, [10.0] * 5, nearby, checkpoints=1)
    assert vals == [80.0]
    # no other vehicle in a segment: 100; values are rounded to 0.01 %
    assert checkpoint_efficiencies([0, 1, 2], 2.0, [1.0] * 3, [math.nan] * 3, 1) == [100.0]
    assert checkpoint_efficiencies([0, 1, 2], 2.0, [1.0] * 3, [3.0] * 3, 1) == [33.33]
    # short of 95 % of the route and no cut passed: no checkpoint
    assert checkpoint_efficiencies([0, 1, 2], 4.0, [1.0] * 3, [3.0] * 3, 1) == []


def test_checkpoints_cut_the_route_in_20():
    # 200 m route, 1 m per frame at 10 m/s beside 20 m/s traffic: a cut each time progress
    # passes the last cut by more than 10 m (frames 11, 22, ..., 198) and one at the end
    prog = np.arange(201.0)
    vals = checkpoint_efficiencies(prog, 200.0, [10.0] * 201, [20.0] * 201)
    assert vals == [50.0] * 19
    log = _log([10.0] * 201)
    log.route_length, log.route_progress = 200.0, list(prog)
    log.nearby_speed = [20.0] * 100 + [40.0] * 101
    # segments: frames 0-10 (50 %), 11-21, ..., 88-98 (9 at 50 %), 99-109 (one frame at 20:
    # 10 / (1 * 20 + 10 * 40) / 11 -> 26.19), then 25 % for the rest (9 values)
    first_mixed = round(10.0 / ((20.0 + 10 * 40.0) / 11) * 100, 2)
    expected = (9 * 50.0 + first_mixed + 9 * 25.0) / 19
    assert efficiency(log) == pytest.approx(expected)


def test_efficiency_without_progress_uses_the_distance_driven():
    log = _log([10.0] * 201)  # x advances 1 m per frame; route length 500: 40 % driven
    log.route_length = 200.0
    assert efficiency(log) == pytest.approx(50.0)
    log.route_length = 500.0  # cuts every 25 m: 7 cuts, the end (40 %) is not recorded
    assert efficiency(log) == pytest.approx(50.0)
    log.speed, log.x = [0.0] * 201, [0.0] * 201
    assert math.isnan(efficiency(log))  # standing still: no cut, no end


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
    log.route_progress = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert EpisodeLog.from_json(log.to_json()).route_progress == log.route_progress
    old = json.loads(log.to_json())
    del old["route_progress"]  # a log written before the field existed still loads
    assert EpisodeLog.from_json(json.dumps(old)).route_progress == []


def test_tables_compute_each_episodes_comfort_once(monkeypatch):
    """The overall, per-scenario and per-skill tables share each episode's comfort (its
    smoothing fits are most of the tables' time), and their values are each table's own: the
    per-scenario comfort is the mean over that scenario's episodes."""
    import rsd.metrics.driving as driving

    calls: list[int] = []
    real = driving.comfortness

    def counted(log, *a, **k):
        calls.append(id(log))
        return real(log, *a, **k)

    monkeypatch.setattr(driving, "comfortness", counted)
    swerve = [0.3 * math.sin(i / 2) for i in range(40)]
    logs = [
        _log([20.0] * 40, scenario="highway"),
        _log([20.0] * 40, yaw=swerve, scenario="cut_in", skill="emergency_brake"),
    ]
    m = driving_metrics(logs)
    assert sorted(calls) == sorted(id(lg) for lg in logs)
    comfort = [real(lg) for lg in logs]
    assert comfort[0] == 100.0 and comfort[1] < 100.0
    assert m["per_scenario"]["cut_in"]["comfortness"] == pytest.approx(comfort[1])
    assert m["overall"]["comfortness"] == pytest.approx(sum(comfort) / 2)
