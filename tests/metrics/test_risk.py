"""Risk agreement and near-miss metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rsd.metrics.risk import (
    auroc,
    box_gap,
    kendall_tau,
    kendall_tau_b,
    near_miss_labels,
    risk_mae,
    risk_map_l1,
    risk_metrics,
    top1_agreement,
)

SHAPES = [(1,), (3,), (2, 2)]


def tile(a, lead):
    a = np.asarray(a)
    return np.broadcast_to(a, (*lead, *a.shape)).copy()


def test_kendall_tau_b_same_reversed_and_ties():
    x = np.array([0.1, 0.5, 0.3, 0.9])
    assert kendall_tau_b(x, 2 * x + 1) == pytest.approx(1.0)
    assert kendall_tau_b(x, -x) == pytest.approx(-1.0)
    # pairs (1,2): tie in y; (1,3), (2,3) concordant -> 2 / sqrt(3 * 2)
    assert kendall_tau_b([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau_b([1, 2], [5, 5]))  # a constant ranking has no order
    assert math.isnan(kendall_tau_b([1], [1]))


@pytest.mark.parametrize("lead", SHAPES)
def test_kendall_tau_averages_frames_with_two_or_more_objects(lead):
    pred = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.9, 0.1, 0.5]])
    teacher = np.array([[0.2, 0.4, 0.6], [0.6, 0.4, 0.2], [0.1, 0.9, 0.5]])
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 0]], bool)  # the last frame has one object
    assert kendall_tau(tile(pred, lead), tile(teacher, lead), tile(valid, lead)) == 0.0
    assert kendall_tau(tile(pred[:1], lead), tile(teacher[:1], lead)) == pytest.approx(1.0)
    assert kendall_tau(tile(pred[1:2], lead), tile(teacher[1:2], lead)) == pytest.approx(-1.0)


def test_top1_agreement_with_masks_and_ties():
    pred = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1], [0.7, 0.7, 0.0], [0.5, 0.9, 0.0]])
    teacher = np.array([[0.8, 0.2, 0.1], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.5, 0.1, 0.0]])
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 1]], bool)
    # frame 0 agrees, frame 1 does not, frame 2 is a 50/50 tie, frame 3 agrees once masked
    assert top1_agreement(pred, teacher, valid) == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert top1_agreement(pred[None], teacher[None], valid[None]) == pytest.approx(0.625)


def test_mae_and_map_l1_respect_masks():
    pred, teacher = np.array([[0.5, 0.9]]), np.array([[0.25, 0.0]])
    assert risk_mae(pred, teacher, np.array([[True, False]])) == pytest.approx(0.25)
    assert risk_mae(torch.tensor(pred), torch.tensor(teacher)) == pytest.approx(0.575)
    assert math.isnan(risk_mae(pred, teacher, np.zeros((1, 2), bool)))
    pm = np.zeros((2, 1, 2, 2))
    tm = np.zeros((2, 1, 2, 2))
    tm[0, 0, 0, 0], tm[0, 0, 1, 1], tm[1] = 1.0, 0.4, 1.0
    mask = np.array([[True, False], [True, True]])  # (H, W), broadcast over the batch
    assert risk_map_l1(pm, tm) == pytest.approx((1.4 + 4.0) / 8)
    assert risk_map_l1(pm, tm, mask, np.array([True, False])) == pytest.approx(1.4 / 3)


def test_auroc_hand_cases():
    assert auroc([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == 0.5
    # positives 0.8, 0.4 vs negatives 0.6, 0.2: 3 of 4 pairs ordered right
    assert auroc([0.8, 0.6, 0.4, 0.2], [1, 0, 1, 0]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts a half: (0.5 + 1) / 2
    assert auroc([0.5, 0.5, 0.1], [1, 0, 0]) == pytest.approx(0.75)
    # masked entries are ignored; one class only is undefined
    assert auroc([[0.8, 0.9], [0.2, 0.1]], [[1, 0], [0, 0]], [[1, 0], [1, 0]]) == 1.0
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))


def test_box_gap():
    a = np.array([0.0, 0.0, 4.0, 2.0, 0.0])
    assert box_gap(a, np.array([10.0, 0.0, 4.0, 2.0, 0.0])) == pytest.approx(6.0)
    # rotated 90 degrees: spans y in [3, 7] against a's [-1, 1]
    assert box_gap(a, np.array([0.0, 5.0, 4.0, 2.0, np.pi / 2])) == pytest.approx(2.0)
    unit = np.array([0.0, 0.0, 1.0, 1.0, 0.0])
    assert box_gap(unit, np.array([3.0, 3.0, 1.0, 1.0, 0.0])) == pytest.approx(2 * math.sqrt(2))
    assert box_gap(a, np.array([1.0, 0.5, 4.0, 2.0, 0.3])) == 0.0
    batch = box_gap(np.broadcast_to(a, (2, 3, 5)), np.array([10.0, 0.0, 4.0, 2.0, 0.0]))
    assert batch.shape == (2, 3) and np.allclose(batch, 6.0)


@pytest.mark.parametrize("lead", SHAPES)
def test_near_miss_labels(lead):
    t = 6
    ego = np.zeros((t, 3))
    ego[:, 0] = 2.0 * np.arange(1, t + 1)
    agents = np.zeros((4, t, 3))
    agents[:, :, 0] = ego[:, 0]
    agents[0, :, 1] = 3.5  # gap 3.5 - 1.85 = 1.65 m: a near miss
    agents[1, :, 1] = 5.0  # gap 3.15 m: clear
    agents[2, :, 1] = 30.0
    agents[2, 4, 1] = 0.0  # on the ego at step 4, but that step is not valid
    agents[3, :, 1] = 3.5  # close, but a padded row
    valid = np.ones((4, t), bool)
    valid[2, 4] = False
    sizes = np.tile([4.084, 1.85], (4, 1))
    labels = near_miss_labels(
        tile(agents, lead), tile(valid, lead), tile(sizes, lead), tile(ego, lead),
        agent_mask=tile([True, True, True, False], lead),
    )  # fmt: skip
    assert labels.shape == (*lead, 4)
    assert (labels == np.array([True, False, False, False])).all()
    # with a 3.5 m threshold the second agent counts too
    wide = near_miss_labels(agents, valid, sizes, ego, distance=3.5)
    assert wide.tolist() == [True, True, False, True]


def test_risk_metrics_dict():
    pred = np.array([[0.9, 0.5, 0.1], [0.2, 0.6, 0.4]])
    teacher = np.array([[0.8, 0.4, 0.0], [0.1, 0.5, 0.3]])
    near = np.array([[True, False, False], [False, True, False]])
    out = risk_metrics(pred, teacher, near_miss=near, pred_map=pred, teacher_map=teacher)
    assert out["risk_mae"] == pytest.approx(0.1)
    assert out["risk_map_l1"] == pytest.approx(0.1)
    assert out["risk_kendall_tau"] == pytest.approx(1.0)
    assert out["risk_top1_agreement"] == 1.0
    # positives 0.9, 0.6 vs negatives 0.5, 0.1, 0.2, 0.4: all ordered right
    assert out["near_miss_auroc"] == 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 5), st.integers(1, 6), st.randoms())
def test_invariant_to_frame_and_object_order(seed, frames, k, rnd):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 5, (frames, k)) / 4.0  # coarse values: ties happen
    teacher = rng.integers(0, 5, (frames, k)) / 4.0
    valid = rng.random((frames, k)) > 0.2
    near = rng.random((frames, k)) > 0.6
    f_perm = np.array(rnd.sample(range(frames), frames))
    o_perm = np.stack([rnd.sample(range(k), k) for _ in range(frames)])

    def shuffled(a):
        return np.take_along_axis(a[f_perm], o_perm, axis=1)

    ref = risk_metrics(pred, teacher, valid, near_miss=near)
    out = risk_metrics(*map(shuffled, (pred, teacher, valid)), near_miss=shuffled(near))
    for key in ref:
        assert (math.isnan(ref[key]) and math.isnan(out[key])) or out[key] == pytest.approx(
            ref[key]
        ), key


def test_risk_collapse_compares_student_and_teacher_on_the_teachers_risky_objects():
    from rsd.metrics.risk import risk_collapse

    teacher = np.array([[0.9, 0.5, 0.1, 0.0]])
    valid = np.array([[True, True, True, False]])
    # a near-empty student map: mean 0.02 on the two risky objects (teacher 0.7): collapsed
    out = risk_collapse(np.array([[0.03, 0.01, 0.5, 0.9]]), teacher, valid)
    assert out["student_risk_on_risky"] == pytest.approx(0.02)
    assert out["teacher_risk_on_risky"] == pytest.approx(0.7)
    assert out["risk_collapsed"] == 1.0
    # a weak but living map: 0.1 >= 0.1 * 0.7
    assert (
        risk_collapse(np.array([[0.15, 0.05, 0.0, 0.0]]), teacher, valid)["risk_collapsed"] == 0.0
    )
    # no risky object among the valid ones: nothing to judge
    none = risk_collapse(np.array([[0.0, 0.0, 0.0, 0.0]]), teacher, np.array([[0, 0, 1, 1]], bool))
    assert np.isnan(none["risk_collapsed"])


def test_eval_warns_about_a_collapsed_map():
    from rsd.pipeline.evaluate import risk_warnings
    from rsd.report.tables import eval_table

    risk = {"risk_collapsed": 1.0, "student_risk_on_risky": 7e-8, "teacher_risk_on_risky": 0.62}
    [warning] = risk_warnings(risk)
    assert "collapsed" in warning and "7e-08" in warning and "0.62" in warning
    assert risk_warnings({**risk, "risk_collapsed": 0.0}) == [] and risk_warnings({}) == []
    result = {"unseen_rig": False, "run": "r", "variant": "rsd", "rig": "dense360",
              "split": "val", "n_samples": 1, "samples_per_s": 1.0,
              "end_to_end_samples_per_s": 1.0, "batch_size": 1, "risk": risk,
              "warnings": [warning]}  # fmt: skip
    assert f"WARNING: {warning}" in eval_table(result)
