"""Record nuscenes-devkit's detection metrics on generated cases as a test fixture.

Run it in a separate environment that has the devkit (it needs numpy<2, which rsd does not
support, so the devkit is never a dependency of rsd)::

    python3 -m venv /tmp/devkit-venv
    /tmp/devkit-venv/bin/pip install nuscenes-devkit==1.2.0
    /tmp/devkit-venv/bin/python scripts/devkit_detection_fixture.py \
        --out tests/fixtures/devkit_detection.json

It imports nothing from rsd and rsd never imports it; ``tests/metrics/test_detection_devkit.py``
reads the JSON and compares ``rsd.metrics.detection.detection_metrics`` (default convention)
with the devkit's numbers. Each case is a few samples of boxes in rsd's layout
``(x, y, l, w, h, yaw, vx, vy)`` (m, rad, m/s) with integer classes; the devkit sees them as
``DetectionBox`` es (size ``(w, l, h)``, yaw as a quaternion about z) and runs
``nuscenes.eval.detection.algo.accumulate`` / ``calc_ap`` / ``calc_tp`` per class and threshold;
mAP, the mean TP errors and NDS come from its ``DetectionMetrics`` with the attribute error
taken out of its TP metric list (rsd boxes have no attributes, so the devkit's AAE would be nan).
Cases mix distinct scores, tied scores (rounded to 0.1) and ground-truth counts that put recall
exactly on the 1 % grid, and some leave a class without ground truth.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile

import numpy as np
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.utils import center_distance
from nuscenes.eval.detection import algo
from nuscenes.eval.detection import data_classes as dc
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionConfig, DetectionMetrics

CLASS_NAMES = ("car", "truck", "bus")  # devkit names standing for rsd's class indices 0, 1, 2
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
TP_THRESHOLD = 2.0
RSD_TP_NAMES = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE"}


def to_devkit(token: str, row: list[float], cls: int, score: float | None) -> DetectionBox:
    x, y, length, width, height, yaw, vx, vy = row
    return DetectionBox(
        sample_token=token,
        translation=(x, y, 0.0),
        size=(width, length, height),
        rotation=(math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)),
        velocity=(vx, vy),
        detection_name=CLASS_NAMES[cls],
        detection_score=-1.0 if score is None else score,
    )


def make_case(rng: np.random.Generator, ties: bool) -> list[dict]:
    """A few samples: ground truth scattered over 60 m, some detected with noise, some missed,
    some false positives. With ``ties`` the scores are rounded to 0.1 (many equal)."""
    samples = []
    for _ in range(int(rng.integers(1, 5))):
        m = int(rng.integers(0, 6))
        gt = np.concatenate(
            [rng.uniform(-30, 30, (m, 2)), rng.uniform(1, 6, (m, 3)), rng.uniform(-3, 3, (m, 3))],
            axis=-1,
        )
        gt_cls = rng.integers(0, 3, m)
        keep = rng.random(m) > 0.25
        noise = np.concatenate([rng.normal(0, 1.2, (m, 2)), rng.normal(0, 0.3, (m, 6))], -1)
        extra = int(rng.integers(0, 4))
        fp = np.concatenate(
            [rng.uniform(-30, 30, (extra, 2)), rng.uniform(1, 6, (extra, 3)),
             rng.uniform(-3, 3, (extra, 3))], axis=-1,
        )  # fmt: skip
        pred = np.concatenate([(gt + noise)[keep], fp])
        pred[:, 2:5] = np.abs(pred[:, 2:5]) + 0.1  # sizes stay positive
        pred_cls = np.concatenate([gt_cls[keep], rng.integers(0, 3, extra)])
        scores = rng.uniform(0.05, 1.0, len(pred))
        if ties:
            scores = np.round(scores, 1).clip(0.1, 1.0)
        samples.append({
            "gt_boxes": gt.tolist(), "gt_classes": gt_cls.tolist(),
            "pred_boxes": pred.tolist(), "pred_scores": scores.tolist(),
            "pred_classes": pred_cls.tolist(),
        })  # fmt: skip
    return samples


def issue_cases() -> list[list[dict]]:
    """The minimal cases of issue 15, one car class: (1) a tie, GT at (0, 0), predictions at
    (0.3, 0) and (1.5, 0) both scoring 0.5; (2) an exact grid recall, GT at (0, 0) and (20, 0),
    predictions (0.2, 0) 0.9, (-30, 0) 0.8, (20.4, 0) 0.7."""

    def car(x: float) -> list[float]:
        return [x, 0.0, 4.5, 1.85, 1.5, 0.0, 0.0, 0.0]

    def sample(gt_x: list[float], pred_x: list[float], scores: list[float]) -> dict:
        return {"gt_boxes": [car(x) for x in gt_x], "gt_classes": [0] * len(gt_x),
                "pred_boxes": [car(x) for x in pred_x], "pred_scores": scores,
                "pred_classes": [0] * len(pred_x)}  # fmt: skip

    return [
        [sample([0.0], [0.3, 1.5], [0.5, 0.5])],
        [sample([0.0, 20.0], [0.2, -30.0, 20.4], [0.9, 0.8, 0.7])],
    ]


def devkit_metrics(samples: list[dict]) -> dict[str, float]:
    """The devkit's numbers for one case, keyed as rsd's ``detection_metrics``."""
    gt_boxes, pred_boxes = EvalBoxes(), EvalBoxes()
    for s, sample in enumerate(samples):
        token = f"sample{s}"
        gt = zip(sample["gt_boxes"], sample["gt_classes"], strict=True)
        gt_boxes.add_boxes(token, [to_devkit(token, b, c, None) for b, c in gt])
        pred = zip(sample["pred_boxes"], sample["pred_classes"], sample["pred_scores"], strict=True)
        pred_boxes.add_boxes(token, [to_devkit(token, b, c, sc) for b, c, sc in pred])
    cfg = DetectionConfig(
        class_range={name: 50 for name in dc.DETECTION_NAMES}, dist_fcn="center_distance",
        dist_ths=list(THRESHOLDS), dist_th_tp=TP_THRESHOLD, min_recall=0.1, min_precision=0.1,
        max_boxes_per_sample=500, mean_ap_weight=5,
    )  # fmt: skip
    cfg.class_names = list(CLASS_NAMES)  # only the classes rsd uses count in the means
    metrics, out = DetectionMetrics(cfg), {}
    for name in CLASS_NAMES:
        for d in THRESHOLDS:
            md = algo.accumulate(gt_boxes, pred_boxes, name, center_distance, d)
            ap = algo.calc_ap(md, cfg.min_recall, cfg.min_precision)
            metrics.add_label_ap(name, d, ap)
            out[f"AP/{name}@{d:g}m"] = ap
            if d == TP_THRESHOLD:
                for metric, short in RSD_TP_NAMES.items():
                    tp = algo.calc_tp(md, cfg.min_recall, metric)
                    metrics.add_label_tp(name, metric, tp)
                    out[f"{short}/{name}"] = tp
        out[f"AP/{name}"] = metrics.mean_dist_aps[name]
    out["mAP"] = metrics.mean_ap
    for metric, short in RSD_TP_NAMES.items():
        out[f"m{short}"] = metrics.tp_errors[metric]
    out["NDS"] = metrics.nd_score
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/devkit_detection.json")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # rsd has no attributes: the devkit's NDS without its attribute term (5 mAP + 4 TP) / 9
    dc.TP_METRICS = list(RSD_TP_NAMES)
    from importlib.metadata import version

    rng = np.random.default_rng(args.seed)
    cases = [{"samples": c, "devkit": devkit_metrics(c)} for c in issue_cases()]
    for i in range(args.cases):
        samples = make_case(rng, ties=i % 2 == 1)
        cases.append({"samples": samples, "devkit": devkit_metrics(samples)})
    doc = {
        "about": "nuscenes-devkit detection metrics on generated cases; written by "
        "scripts/devkit_detection_fixture.py (see its docstring)",
        "devkit_version": version("nuscenes-devkit"),
        "numpy_version": np.__version__,
        "seed": args.seed,
        "class_names": list(CLASS_NAMES),
        "cases": cases,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as f:
        json.dump(doc, f, indent=1)
    os.chmod(f.name, 0o644)
    os.replace(f.name, args.out)  # atomic: a killed run leaves the old fixture
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
