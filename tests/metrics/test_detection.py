"""nuScenes-style detection metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rsd.metrics.detection import (
    average_precision,
    box_tp_errors,
    detection_metrics,
    gts_from_targets,
    match_greedy,
    scale_iou,
    tp_error_curve,
    yaw_difference,
)


def box(x: float, y: float, l: float = 4.5, w: float = 1.85, h: float = 1.5, yaw: float = 0.0,
        vx: float = 0.0, vy: float = 0.0) -> np.ndarray:  # fmt: skip
    return np.array([x, y, l, w, h, yaw, vx, vy], float)


def pred(boxes, scores, classes) -> dict:
    return {"boxes": np.reshape(boxes, (-1, 8)), "scores": np.asarray(scores, float),
            "classes": np.asarray(classes, int)}  # fmt: skip


def gt(boxes, classes) -> dict:
    return {"boxes": np.reshape(boxes, (-1, 8)), "classes": np.asarray(classes, int)}


def test_aoe_is_the_smallest_yaw_difference():
    for yaw in (-2.0, 0.0, 0.3, 3.0):
        assert yaw_difference(yaw, yaw + np.pi) == pytest.approx(np.pi)
        assert yaw_difference(yaw, yaw + 2 * np.pi - 0.1) == pytest.approx(0.1)
        assert yaw_difference(yaw + 0.4, yaw) == pytest.approx(0.4)
    # broadcasting over batch shapes
    assert yaw_difference(np.zeros((2, 3)), np.full((2, 3), np.pi)).shape == (2, 3)


@pytest.mark.parametrize("lead", [(), (4,), (2, 3)])
def test_ase_against_itself_and_double_length(lead):
    lwh = np.broadcast_to([4.0, 2.0, 1.5], (*lead, 3))
    assert np.allclose(1 - scale_iou(lwh, lwh), 0.0)
    double = lwh * np.array([2.0, 1.0, 1.0])
    assert np.allclose(1 - scale_iou(lwh, double), 0.5)  # IoU = V / 2V
    errs = box_tp_errors(box(1, 2, yaw=0.0, vx=3.0), box(1, 5, l=9.0, yaw=np.pi, vy=4.0))
    assert errs["ATE"] == pytest.approx(3.0) and errs["ASE"] == pytest.approx(0.5)
    assert errs["AOE"] == pytest.approx(np.pi) and errs["AVE"] == pytest.approx(5.0)


def perfect_case(n_samples: int = 3):
    rng = np.random.default_rng(0)
    gts, preds, score = [], [], 1.0
    for s in range(n_samples):
        boxes = np.stack([box(10 * i, 3 * s, yaw=rng.uniform(-3, 3), vx=rng.normal())
                          for i in range(3)])  # fmt: skip
        classes = np.array([0, 1, 2])
        gts.append(gt(boxes, classes))
        preds.append(pred(boxes, score - 0.1 * np.arange(3), classes))
        score -= 0.3
    return preds, gts


def test_perfect_detections_score_one():
    preds, gts = perfect_case()
    out = detection_metrics(preds, gts)
    assert out["mAP"] == pytest.approx(1.0)
    for err in ("mATE", "mASE", "mAOE", "mAVE"):
        assert out[err] == pytest.approx(0.0, abs=1e-9)
    assert out["NDS"] == pytest.approx(1.0)


def test_no_detections_score_zero():
    _, gts = perfect_case()
    empty = [pred(np.zeros((0, 8)), [], []) for _ in gts]
    out = detection_metrics(empty, gts)
    assert out["mAP"] == 0.0 and out["mATE"] == 1.0 and out["NDS"] == 0.0


def test_half_detected_hand_computed():
    # one class, two objects; one detected 0.7 m off: matched at 1, 2, 4 m but not at 0.5 m
    gts = [gt(np.stack([box(0, 0), box(20, 0)]), [0, 0])]
    preds = [pred(box(0.7, 0), [0.9], [0])]
    out = detection_metrics(preds, gts, class_names=["car"])
    # recall 0.5 at precision 1: precision 1 at recall points 0.11..0.50 -> 40 of 90 points
    assert out["AP/car@0.5m"] == 0.0
    assert out["AP/car@1m"] == pytest.approx(4 / 9)
    assert out["AP/car"] == pytest.approx(1 / 3)
    assert out["ATE/car"] == pytest.approx(0.7)
    # NDS = (5 * 1/3 + (1 - 0.7) + 1 + 1 + 1) / 9
    assert out["NDS"] == pytest.approx((5 / 3 + 3.3) / 9)


def test_false_positive_first_lowers_ap_as_interpolated():
    # a far false positive (score 0.9), then a hit (0.5): (recall, precision) = (0, 0), (0.5, 0.5)
    # interpolated precision = r on [0, 0.5]; AP = sum_{i=11}^{50} (i/100 - 0.1) / 0.9 / 90
    is_tp = np.array([False, True])
    assert average_precision(is_tp, 2) == pytest.approx(8.2 / 81)
    assert average_precision(np.array([True]), 2) == pytest.approx(4 / 9)
    assert average_precision(np.array([True, True]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([True]), 0) == 0.0  # the devkit: no ground truth, AP 0
    assert math.isnan(average_precision(np.array([True]), 0, convention="rsd"))


def test_tp_error_is_the_recall_averaged_cumulative_mean():
    # two objects, matches with errors 0.2 then 0.6: cumulative mean 0.2 at recall 0.5, 0.4 at 1
    # points 0.11..0.50 read 0.2 (40), 0.51..1.00 read 0.2 + 0.2 (r - 0.5) / 0.5 (mean 0.302, 50)
    assert tp_error_curve([0.2, 0.6], 2) == pytest.approx((40 * 0.2 + 50 * 0.302) / 90)
    assert tp_error_curve([0.3], 20) == 1.0  # recall 0.05 never passes 10 %


def test_greedy_matching_by_confidence_each_gt_once():
    gt_xy = [np.array([[0.0, 0.0], [1.5, 0.0]])]
    # the confident prediction takes its nearest object (B, 0.6 m), the next one is left with A
    is_tp, idx, gt_idx = match_greedy(
        [np.array([[1.4, 0.0], [0.9, 0.0]])], [np.array([0.5, 0.9])], gt_xy, 2.0
    )
    assert idx.tolist() == [[0, 1], [0, 0]] and gt_idx.tolist() == [1, 0] and is_tp.all()
    # a duplicate on one object is a false positive; distances must be strictly below threshold
    is_tp, _, _ = match_greedy([np.zeros((2, 2))], [np.array([0.9, 0.8])], [np.zeros((1, 2))], 1)
    assert is_tp.tolist() == [True, False]
    is_tp, _, _ = match_greedy([np.array([[1.0, 0.0]])], [np.array([0.9])], [np.zeros((1, 2))], 1)
    assert is_tp.tolist() == [False]


def test_classes_without_ground_truth_are_skipped_in_the_rsd_convention():
    preds, gts = perfect_case()
    gts = [gt(g["boxes"][:2], g["classes"][:2]) for g in gts]  # no trucks left
    out = detection_metrics(preds, gts, convention="rsd")
    assert math.isnan(out["AP/truck"]) and math.isnan(out["ATE/truck"])
    assert out["mAP"] == pytest.approx(1.0) and out["NDS"] == pytest.approx(1.0)


def test_classes_without_ground_truth_count_as_missed_in_the_devkit_convention():
    preds, gts = perfect_case()
    gts = [gt(g["boxes"][:2], g["classes"][:2]) for g in gts]  # no trucks left
    out = detection_metrics(preds, gts)
    assert out["AP/truck"] == 0.0 and out["ATE/truck"] == 1.0 and out["AVE/truck"] == 1.0
    # car and van perfect: mAP 2/3, each mTP 1/3, NDS = (5 * 2/3 + 4 * 2/3) / 9
    assert out["mAP"] == pytest.approx(2 / 3) and out["mATE"] == pytest.approx(1 / 3)
    assert out["NDS"] == pytest.approx(2 / 3)


def test_issue_case_tie_order():
    # GT car at (0, 0); predictions at (0.3, 0) and (1.5, 0), both score 0.5.
    # devkit: the later-given (1.5 m off) goes first. At 0.5 and 1 m it is a false positive,
    # then the hit: (recall, precision) = (0, 0), (1, 0.5): precision r / 2 on the grid, so
    # AP = mean_{i=11..100} max(i / 200 - 0.1, 0) / 0.9 = (sum_{i=21..100} (i - 20) / 200) / 81
    # = 16.2 / 81 = 0.2. At 2 and 4 m it takes the object: (1, 1), then an FP at (1, 0.5);
    # np.interp reads the last precision at recall 1: AP = (89 * 0.9 + 0.4) / 81 = 80.5 / 81.
    gts = [gt(box(0, 0), [0])]
    preds = [pred(np.stack([box(0.3, 0), box(1.5, 0)]), [0.5, 0.5], [0, 0])]
    out = detection_metrics(preds, gts, class_names=["car"])
    assert out["AP/car@0.5m"] == pytest.approx(0.2) and out["AP/car@1m"] == pytest.approx(0.2)
    assert out["AP/car@2m"] == pytest.approx(80.5 / 81)
    # TP error at 2 m: one match, ATE 1.5 everywhere up to recall 1
    assert out["ATE/car"] == pytest.approx(1.5)
    mean_ap = (0.4 + 161 / 81) / 4
    assert out["NDS"] == pytest.approx((5 * mean_ap + 0 + 3) / 9)  # ATE 1.5 scores 0
    assert out["NDS"] == pytest.approx(0.665, abs=5e-4)  # issue 15's figure
    old = detection_metrics(preds, gts, class_names=["car"], convention="rsd")
    assert old["AP/car@0.5m"] == pytest.approx(1.0) and old["ATE/car"] == pytest.approx(0.3)
    assert old["NDS"] == pytest.approx(0.967, abs=5e-4)


def test_issue_case_exact_grid_recall_and_confidence_interpolation():
    # GT cars at (0, 0) and (20, 0); predictions (0.2, 0) 0.9 hit, (-30, 0) 0.8 FP,
    # (20.4, 0) 0.7 hit: (recall, precision) = (0.5, 1), (0.5, 0.5), (1, 2/3).
    # devkit: at recall 0.5 np.interp reads 0.5, then linear to 2/3 at 1:
    # AP = (39 * 0.9 + sum_{i=50..100} (0.5 + (i - 50) / 300 - 0.1)) / 81 = (35.1 + 24.65) / 81
    gts = [gt(np.stack([box(0, 0), box(20, 0)]), [0, 0])]
    preds = [pred(np.stack([box(0.2, 0), box(-30, 0), box(20.4, 0)]), [0.9, 0.8, 0.7], [0] * 3)]
    out = detection_metrics(preds, gts, class_names=["car"])
    assert out["AP/car"] == pytest.approx(59.75 / 81)
    assert out["AP/car"] == pytest.approx(0.7377, abs=5e-5)
    old = detection_metrics(preds, gts, class_names=["car"], convention="rsd")
    assert old["AP/car"] == pytest.approx(0.7438, abs=5e-5)
    # TP error over confidence: matches (score 0.9, cumulative mean 0.2), (0.7, 0.3). The
    # confidence is 0.9 below recall 0.5, 0.8 at 0.5 (the FP, last at that recall), then
    # 0.8 - 0.1 (r - 0.5) / 0.5 up to 0.7 at recall 1; the cumulative mean read at confidence c
    # is 0.2 + 0.1 (0.9 - c) / 0.2 (0.25 at 0.8)
    c = 0.8 - 0.1 * (np.arange(51, 101) / 100 - 0.5) / 0.5
    ate = (39 * 0.2 + 0.25 + np.sum(0.2 + 0.1 * (0.9 - c) / 0.2)) / 90
    assert out["ATE/car"] == pytest.approx(ate) and out["ATE/car"] == pytest.approx(0.2425)
    assert old["ATE/car"] == pytest.approx(0.2283, abs=5e-5)


def test_torch_inputs_and_batch_ground_truth():
    boxes = torch.zeros(2, 3, 8)
    boxes[..., 0] = torch.tensor([[0.0, 10.0, 20.0], [5.0, 15.0, 25.0]])
    boxes[..., 2:5] = torch.tensor([4.5, 1.85, 1.5])
    batch = {
        "agent_boxes": boxes,
        "agent_cls": torch.tensor([[0, 1, -1], [0, 0, 2]]),
        "agent_mask": torch.tensor([[True, True, False], [True, True, True]]),
        "agent_in_grid": torch.tensor([[True, True, True], [True, False, True]]),
    }
    gts = gts_from_targets(batch)
    assert [len(g["boxes"]) for g in gts] == [2, 2]
    preds = [
        {
            "boxes": torch.tensor(g["boxes"]),
            "scores": torch.linspace(0.9, 0.5, len(g["boxes"])) - 0.3 * i,
            "classes": torch.tensor(g["classes"]),
        }
        for i, g in enumerate(gts)
    ]
    out = detection_metrics(preds, gts)
    assert out["mAP"] == pytest.approx(1.0) and out["NDS"] == pytest.approx(1.0)


def random_case(seed: int, n_samples: int):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_samples):
        m = rng.integers(0, 5)
        g = np.concatenate([rng.uniform(-30, 30, (m, 2)), rng.uniform(1, 6, (m, 3)),
                            rng.uniform(-3, 3, (m, 3))], -1)  # fmt: skip
        gc = rng.integers(0, 3, m)
        keep = rng.random(m) > 0.3
        noise = np.concatenate([rng.normal(0, 1.5, (m, 2)), rng.normal(0, 0.3, (m, 6))], -1)
        extra = rng.integers(0, 3)
        p = np.concatenate([(g + noise)[keep], rng.uniform(-30, 30, (extra, 8))])
        pc = np.concatenate([gc[keep], rng.integers(0, 3, extra)])
        gts.append(gt(g, gc))
        preds.append(pred(p, np.zeros(len(p)), pc))
    scores = rng.permutation(sum(len(p["scores"]) for p in preds)) / 100.0  # distinct
    start = 0
    for p in preds:
        p["scores"] = scores[start : start + len(p["scores"])]
        start += len(p["scores"])
    return preds, gts


def same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k]), k


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 5), st.randoms(use_true_random=False))
def test_invariant_to_sample_and_prediction_order(seed, n_samples, rnd):
    preds, gts = random_case(seed, n_samples)
    ref = detection_metrics(preds, gts)
    order = list(range(n_samples))
    rnd.shuffle(order)
    shuffled_preds = []
    for i in order:
        perm = list(range(len(preds[i]["scores"])))
        rnd.shuffle(perm)
        shuffled_preds.append({k: v[perm] for k, v in preds[i].items()})
    same(ref, detection_metrics(shuffled_preds, [gts[i] for i in order]))
    assert 0.0 <= ref["NDS"] <= 1.0 or math.isnan(ref["NDS"])
