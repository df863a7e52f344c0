"""rsd's detection metrics against nuscenes-devkit 1.2.0's, recorded on generated cases.

The fixture is written by ``scripts/devkit_detection_fixture.py`` run in a separate environment
with the devkit installed (the devkit needs numpy<2; it is not a dependency and this test does
not run it). Every number the devkit gave must come out of the default convention.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rsd.metrics.detection import detection_metrics

FIXTURE = Path(__file__).parent.parent / "fixtures" / "devkit_detection.json"
DOC = json.loads(FIXTURE.read_text())


def as_inputs(samples: list[dict]) -> tuple[list[dict], list[dict]]:
    preds = [
        {
            "boxes": np.reshape(s["pred_boxes"], (-1, 8)),
            "scores": np.asarray(s["pred_scores"]),
            "classes": np.asarray(s["pred_classes"], int),
        }  # fmt: skip
        for s in samples
    ]
    gts = [
        {"boxes": np.reshape(s["gt_boxes"], (-1, 8)), "classes": np.asarray(s["gt_classes"], int)}
        for s in samples
    ]
    return preds, gts


def test_fixture_covers_ties_grid_recalls_and_missing_classes():
    assert DOC["devkit_version"] == "1.2.0" and len(DOC["cases"]) >= 40
    tied = missing = 0
    for case in DOC["cases"]:
        scores = np.concatenate([s["pred_scores"] for s in case["samples"]] + [[]])
        tied += len(np.unique(scores)) < len(scores)
        gt_cls = np.concatenate([s["gt_classes"] for s in case["samples"]] + [[]])
        missing += len(np.unique(gt_cls)) < len(DOC["class_names"])
    assert tied >= 10 and missing >= 5


@pytest.mark.parametrize("index", range(len(DOC["cases"])))
def test_matches_devkit(index):
    case = DOC["cases"][index]
    preds, gts = as_inputs(case["samples"])
    ours = detection_metrics(preds, gts, class_names=DOC["class_names"])
    for key, expected in case["devkit"].items():
        assert not math.isnan(ours[key]), key
        assert ours[key] == pytest.approx(expected, abs=1e-9), key


def test_old_convention_differs_from_devkit_on_the_issue_cases():
    # the two minimal cases of issue 15 come first: rsd's earlier choices give other numbers
    for case in DOC["cases"][:2]:
        preds, gts = as_inputs(case["samples"])
        old = detection_metrics(preds, gts, class_names=DOC["class_names"], convention="rsd")
        assert abs(old["AP/car"] - case["devkit"]["AP/car"]) > 1e-3
