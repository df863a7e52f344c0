"""The navsim-style plan score on hand-built scenes: a straight 3-lane road along +x, the ego
at 10 m/s, plans of 6 waypoints at 0.5 s."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.geometry import BEVGrid
from rsd.metrics.events import event_windows
from rsd.metrics.plan_score import plan_scores, summarise_plan_scores

GRID = BEVGrid()
T, SPEED = 6, 10.0
TIMES = 0.5 * np.arange(1, T + 1)
STRAIGHT = np.stack([SPEED * TIMES, np.zeros(T)], -1)  # the expert: 10 m/s straight on
PAST = np.stack([-SPEED * 0.5 * np.arange(4, 0, -1), np.zeros(4)], -1)


def road(half_width: float = 6.0) -> np.ndarray:
    """(H, W) drivable raster: every cell whose centre has |y| < half_width."""
    y = GRID.y_max - (np.arange(GRID.width) + 0.5) * GRID.resolution
    return np.broadcast_to(np.abs(y) < half_width, (GRID.height, GRID.width)).astype(np.float32)


def agent(x: float, y: float = 0.0, vx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A 4.5 x 1.85 m car at (x, y) driving at ``vx``: its (8,) box and (T, 3) logged future."""
    box = np.array([x, y, 4.5, 1.85, 1.5, 0.0, vx, 0.0])
    future = np.stack([x + vx * TIMES, np.full(T, y), np.zeros(T)], -1)
    return box, future


def score(plans, agents=(), expert=STRAIGHT, drivable=None, expert_valid=None):
    """plan_scores of N plans in N copies of one scene with the given agents."""
    plans = np.asarray(plans, float).reshape(-1, T, 2)
    n, k = len(plans), max(len(agents), 1)
    boxes, futures = np.zeros((n, k, 8)), np.zeros((n, k, T, 3))
    mask = np.zeros((n, k), bool)
    for i, (b, f) in enumerate(agents):
        boxes[:, i], futures[:, i], mask[:, i] = b, f, True
    valid = np.ones((n, T), bool) if expert_valid is None else expert_valid
    return plan_scores(
        plans,
        np.broadcast_to(expert, (n, T, 2)),
        valid,
        boxes,
        futures,
        mask[..., None] & np.ones(T, bool),
        mask,
        np.broadcast_to(road() if drivable is None else drivable, (n, GRID.height, GRID.width)),
        GRID,
        ego_size=np.tile([4.5, 1.85], (n, 1)),
        ego_speed=np.full(n, SPEED),
        ego_past=np.broadcast_to(PAST, (n, 4, 2)),
        ego_past_valid=np.ones((n, 4), bool),
    )


def test_the_experts_own_plan_scores_one_on_an_empty_road():
    s = score(STRAIGHT)
    for key in ("pdm_score", "nc", "dac", "ttc", "ep", "comfort"):
        assert s[key][0] == pytest.approx(1.0), key


def test_a_plan_through_a_parked_car_scores_zero():
    s = score(STRAIGHT, agents=[agent(20.0)])
    assert s["nc"][0] == 0 and s["pdm_score"][0] == 0 and s["ttc"][0] == 0


def test_a_plan_off_the_road_scores_zero():
    # drifts 8 m to the left over 3 s: off a road of |y| < 6 m, no one to hit
    plan = STRAIGHT + np.stack([np.zeros(T), 8.0 * (TIMES / 3.0) ** 2], -1)
    s = score(plan)
    assert s["dac"][0] == 0 and s["pdm_score"][0] == 0 and s["nc"][0] == 1


def test_progress_is_the_share_of_the_experts_path():
    # half the expert's progress along its own (straight) path
    s = score(STRAIGHT * 0.5)
    assert s["ep"][0] == pytest.approx(0.5, abs=1e-6)
    # beyond the expert's end point, and sideways of it, still counts only as far as it got
    assert score(STRAIGHT * 1.2)["ep"][0] == pytest.approx(1.0)


def test_progress_is_one_when_the_expert_barely_moves():
    slow = STRAIGHT * 0.1  # 3 m in 3 s: below navsim's 5 m threshold
    assert score(np.zeros((T, 2)), expert=slow)["ep"][0] == 1.0


def test_a_car_driving_into_the_egos_back_is_not_the_egos_fault():
    # closes in from behind at 11 m/s and overlaps the ego's rear half from 0.5 s on
    s = score(STRAIGHT, agents=[agent(-5.0, vx=11.0)])
    assert s["nc"][0] == 1
    # the same car overtaking through the ego (its centre ahead of the ego's): the ego's fault
    assert score(STRAIGHT, agents=[agent(-5.0, vx=14.0)])["nc"][0] == 0


def test_time_to_collision_sees_a_closing_gap_that_does_not_yet_touch():
    # parked car at 38 m: the ego's front reaches 32.25 m at 3 s (no contact), but moving on at
    # 10 m/s it would touch the car's rear (35.75 m) within 1 s
    s = score(STRAIGHT, agents=[agent(38.0)])
    assert s["nc"][0] == 1 and s["ttc"][0] == 0
    assert s["pdm_score"][0] == pytest.approx((5 * 0 + 5 * 1 + 2 * s["comfort"][0]) / 12)
    # a parked car 20 m further away is out of reach
    assert score(STRAIGHT, agents=[agent(58.0)])["ttc"][0] == 1


def test_a_jump_to_a_standstill_is_not_comfortable():
    stop = np.zeros((T, 2))  # 10 m/s to 0 at once
    s = score(stop)
    assert s["comfort"][0] == 0 and s["dac"][0] == 1


def test_frames_without_a_full_expert_future_are_not_scored():
    valid = np.ones((2, T), bool)
    valid[1, -1] = False
    s = score([STRAIGHT, STRAIGHT], expert_valid=valid)
    assert list(s["valid"]) == [True, False]
    assert np.isnan(s["pdm_score"][1])
    summary = summarise_plan_scores(s)
    assert summary["pdm_frames"] == 1 and summary["pdm_score"] == pytest.approx(1.0)


def test_a_batch_scores_each_frame_as_alone():
    rng = np.random.default_rng(0)
    plans = STRAIGHT + rng.normal(0, 1.5, (5, T, 2))
    cars = [agent(20.0, 3.5, 8.0), agent(30.0, 0.0, 9.0)]
    together = score(plans, agents=cars)
    for i in range(5):
        alone = score(plans[i], agents=cars)
        for key in ("pdm_score", "nc", "dac", "ttc", "ep", "comfort"):
            assert together[key][i] == pytest.approx(alone[key][0]), key


def test_event_windows_reach_three_seconds_either_side_within_an_episode():
    episode = ["a"] * 5 + ["b"] * 2
    t = [0.0, 2.5, 3.0, 6.0, 9.5, 3.0, 4.0]
    is_event = [False, False, True, False, False, False, False]
    assert event_windows(episode, t, is_event).tolist() == [
        True,
        True,
        True,
        True,
        False,
        False,  # same time, other episode
        False,
    ]
    summary = summarise_plan_scores(score([STRAIGHT] * 7), event_windows(episode, t, is_event))
    assert summary["pdm_frames"] == 4
