"""Planning metrics on hand-computed cases, over several batch shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rsd.metrics.planning import (
    ade,
    boxes_overlap,
    fde,
    l2_uniad,
    l2_vad,
    plan_collision,
    plan_collision_steps,
    planning_metrics,
    travel_yaw,
)

SHAPES = [(), (1,), (3,), (2, 3)]
T = 6


def tile(a: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(a, (*lead, *a.shape)).copy()


def linear_error_case() -> tuple[np.ndarray, np.ndarray]:
    """Expert along +x at 2 m per step; the plan drifts sideways by 0.1 m per step, so the error
    at waypoint t (1-based) is 0.1 t."""
    t = np.arange(1, T + 1)
    gt = np.stack([2.0 * t, np.zeros(T)], -1)
    pred = np.stack([2.0 * t, 0.1 * t], -1)
    return pred, gt


@pytest.mark.parametrize("lead", SHAPES)
def test_l2_conventions_differ_as_defined(lead):
    pred, gt = linear_error_case()
    vad = l2_vad(tile(pred, lead), tile(gt, lead))
    uniad = l2_uniad(tile(pred, lead), tile(gt, lead))
    # VAD: mean of 0.1..0.2n over the first n = 2h steps; UniAD: the error at step n
    assert vad == pytest.approx({"l2_vad_1s": 0.15, "l2_vad_2s": 0.25, "l2_vad_3s": 0.35})
    assert uniad == pytest.approx({"l2_uniad_1s": 0.2, "l2_uniad_2s": 0.4, "l2_uniad_3s": 0.6})


def test_l2_vad_is_an_average_of_per_sample_averages():
    gt = np.zeros((2, T, 2))
    pred = np.zeros((2, T, 2))
    pred[0, :, 0] = 1.0  # error 1 at every step
    pred[1, :, 0] = 3.0  # error 3, but only its first step is valid
    valid = np.ones((2, T), bool)
    valid[1, 1:] = False
    out = l2_vad(pred, gt, valid)
    assert out["l2_vad_3s"] == pytest.approx(2.0)  # (1 + 3) / 2, not the pooled 9 / 7
    assert l2_uniad(pred, gt, valid)["l2_uniad_3s"] == pytest.approx(1.0)  # sample 1 has no step 6


def test_torch_tensors_accepted():
    pred, gt = linear_error_case()
    out = l2_vad(torch.tensor(pred)[None], torch.tensor(gt)[None])
    assert out["l2_vad_3s"] == pytest.approx(0.35)


@pytest.mark.parametrize("lead", SHAPES)
def test_ade_fde_ignore_invalid_steps(lead):
    gt = np.zeros((T, 2))
    pred = np.zeros((T, 2))
    pred[:, 1] = [1, 2, 3, 4, 100, 100]
    valid = np.array([1, 1, 1, 1, 0, 0], bool)
    assert ade(tile(pred, lead), tile(gt, lead), tile(valid, lead)) == pytest.approx(2.5)
    # the last step is invalid in every sample: no FDE
    assert math.isnan(fde(tile(pred, lead), tile(gt, lead), tile(valid, lead)))
    assert fde(tile(pred, lead), tile(gt, lead)) == pytest.approx(100.0)


def test_fde_averages_only_samples_with_a_valid_last_step():
    gt = np.zeros((2, T, 2))
    pred = np.zeros((2, T, 2))
    pred[0, -1, 0], pred[1, -1, 0] = 5.0, 100.0
    valid = np.ones((2, T), bool)
    valid[1, -1] = False
    assert fde(pred, gt, valid) == pytest.approx(5.0)


def test_overlap_needs_the_rotated_box_axis():
    a = np.array([0.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([1.1, 1.1, 1.0, 1.0, np.pi / 4])
    # projections overlap on x and y; only b's diagonal axis separates them
    assert not boxes_overlap(a, b)
    assert boxes_overlap(a, np.array([1.1, 0.0, 1.0, 1.0, np.pi / 4]))  # 0.5 + 0.707 > 1.1
    assert not boxes_overlap(a, np.array([1.25, 0.0, 1.0, 1.0, np.pi / 4]))


def test_travel_yaw_follows_direction_and_holds_when_stopped():
    xy = np.array([[[0.0, 1.0], [0.0, 2.0], [0.0, 2.0], [-1.0, 2.0]]])
    np.testing.assert_allclose(travel_yaw(xy)[0], [np.pi / 2, np.pi / 2, np.pi / 2, np.pi])


def agent_scene(lead: tuple[int, ...], agent_y: float = 0.0):
    """One car 4.5 x 1.85 standing at (10, agent_y) plus one padded (masked) agent on the plan."""
    boxes = np.zeros((2, 8))
    boxes[:, 2:5] = [4.5, 1.85, 1.5]
    future = np.zeros((2, T, 3))
    future[0, :, :2] = [10.0, agent_y]
    future[1, :, :2] = [5.0, 0.0]
    fut_valid = np.ones((2, T), bool)
    mask = np.array([True, False])
    return tile(boxes, lead), tile(future, lead), tile(fut_valid, lead), tile(mask, lead)


def straight_plan(y: float = 0.0) -> np.ndarray:
    return np.stack([2.5 * np.arange(1, T + 1), np.full(T, y)], -1)  # x = 2.5 .. 15


@pytest.mark.parametrize("lead", [(1,), (3,), (2, 2)])
def test_plan_through_an_agent_collides_at_the_right_steps(lead):
    scene = agent_scene(lead)
    hit = plan_collision_steps(tile(straight_plan(), lead), None, *scene)
    # |x - 10| < (4.084 + 4.5) / 2 = 4.292 at x = 7.5, 10, 12.5 (steps 2, 3, 4)
    expected = np.array([0, 0, 1, 1, 1, 0], bool)
    assert hit.shape == (int(np.prod(lead)), T)
    assert (hit == expected).all()
    out = plan_collision(tile(straight_plan(), lead), None, *scene)
    assert out == pytest.approx(
        {"collision_box_1s": 0.0, "collision_box_2s": 0.5, "collision_box_3s": 0.5}
    )


@pytest.mark.parametrize("lead", [(1,), (3,)])
def test_parallel_plan_4m_to_the_side_is_clear(lead):
    out = plan_collision(tile(straight_plan(4.0), lead), None, *agent_scene(lead))
    assert out == {"collision_box_1s": 0.0, "collision_box_2s": 0.0, "collision_box_3s": 0.0}


def test_plan_yaw_comes_from_direction_of_travel():
    # ego drives along +y: its 4.084 m side lies along y, so a box 2 m to its right is clear
    pred = np.stack([np.zeros(T), 3.0 * np.ones(T)], -1)[None]
    pred[0, :, 1] = np.linspace(0.5, 3.0, T)
    boxes = np.array([[[2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]])
    future = np.tile(np.array([2.0, 3.0, 0.0]), (1, 1, T, 1))
    args = (boxes, future, np.ones((1, 1, T), bool), np.ones((1, 1), bool))
    assert not plan_collision_steps(pred, None, *args).any()
    yaw0 = np.concatenate([pred, np.zeros((1, T, 1))], -1)  # the same plan held at yaw 0
    assert plan_collision_steps(yaw0, None, *args)[0, -1]


def test_expert_collision_steps_are_excluded():
    scene = agent_scene((1,))
    pred = straight_plan()[None]
    expert = np.zeros((1, T, 3))
    expert[0, :, :2] = straight_plan(4.0)
    expert[0, 3, :2] = [10.0, 0.0]  # the expert itself hits the agent at step 3 only
    vad = plan_collision(pred, None, *scene, expert, np.ones((1, T), bool))
    # VAD: the step's indicator is zeroed, the denominator keeps it
    assert vad == pytest.approx(
        {"collision_box_1s": 0.0, "collision_box_2s": 1 / 4, "collision_box_3s": 2 / 6}
    )
    drop = plan_collision(pred, None, *scene, expert, None, drop_expert_steps=True)
    assert drop == pytest.approx(
        {"collision_box_1s": 0.0, "collision_box_2s": 1 / 3, "collision_box_3s": 2 / 5}
    )
    # the expert driving the plan itself: every collision is excused
    same = plan_collision(pred, None, *scene, pred)
    assert same == {"collision_box_1s": 0.0, "collision_box_2s": 0.0, "collision_box_3s": 0.0}


def test_larger_ego_box_collides_earlier():
    scene = agent_scene((1,))
    hit = plan_collision_steps(straight_plan()[None], np.array([[9.0, 2.0, 1.5]]), *scene)
    # |x - 10| < (9 + 4.5) / 2 = 6.75 at x = 5 .. 15
    assert (hit[0] == np.array([0, 1, 1, 1, 1, 1], bool)).all()


def test_planning_metrics_labels_both_conventions():
    pred, gt = linear_error_case()
    boxes, future, fut_valid, mask = agent_scene((1,), agent_y=30.0)
    out = planning_metrics(
        pred[None], gt[None], agent_boxes=boxes, agent_future=future,
        agent_future_valid=fut_valid, agent_mask=mask,
    )  # fmt: skip
    assert out["l2_vad_3s"] == pytest.approx(0.35)
    assert out["l2_uniad_3s"] == pytest.approx(0.6)
    assert out["l2_vad_avg"] == pytest.approx(0.25)
    assert out["l2_uniad_avg"] == pytest.approx(0.4)
    assert out["ade"] == pytest.approx(0.35) and out["fde"] == pytest.approx(0.6)
    assert out["collision_box_3s"] == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.randoms(use_true_random=False))
def test_invariant_to_sample_order(seed, b, rnd):
    rng = np.random.default_rng(seed)
    pred, gt = rng.normal(0, 5, (b, T, 2)), rng.normal(0, 5, (b, T, 3))
    valid = rng.random((b, T)) > 0.3
    boxes = np.concatenate([rng.normal(0, 8, (b, 3, 2)), rng.uniform(1, 5, (b, 3, 3)),
                            rng.normal(0, 1, (b, 3, 3))], -1)  # fmt: skip
    future = rng.normal(0, 8, (b, 3, T, 3))
    fut_valid, mask = rng.random((b, 3, T)) > 0.2, rng.random((b, 3)) > 0.2
    perm = list(range(b))
    rnd.shuffle(perm)

    def run(i):
        return planning_metrics(
            pred[i], gt[i], valid[i], agent_boxes=boxes[i], agent_future=future[i],
            agent_future_valid=fut_valid[i], agent_mask=mask[i],
        )  # fmt: skip

    a, p = run(list(range(b))), run(perm)
    assert a.keys() == p.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(p[k])) or a[k] == pytest.approx(p[k]), k
