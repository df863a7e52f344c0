"""nuScenes-style detection metrics on BEV boxes: AP, true-positive errors, NDS.

Implemented from the nuScenes detection benchmark's published definitions (Caesar et al.,
"nuScenes", CVPR 2020, section 4; the devkit's documented metric description), see
``shared/facts.md``. Boxes are ``(N, 8) = x, y, l, w, h, yaw, vx, vy`` (m, rad, m/s) as produced
by :func:`rsd.models.detection.decode_detections`.

* Matching, per class over the whole data set: predictions sorted by descending score; each is
  matched to the nearest not yet matched ground-truth box of its class in the same sample if the
  2D centre distance is ``< d``, ``d`` in {0.5, 1, 2, 4} m; else it is a false positive.
* AP: precision as a function of recall, linearly interpolated at 101 recall points
  ``0, 0.01, ..., 1`` (0 beyond the highest recall reached);
  ``AP = mean over recall > 0.1 of max(precision - 0.1, 0) / 0.9``; the class AP is the mean over
  the four thresholds, mAP the mean over classes.
* True-positive errors on the matches at 2 m: ATE centre distance (m), ASE ``1 - IoU`` after
  aligning centre and yaw, AOE smallest yaw difference (rad, in [0, pi]), AVE ``||v - v_hat||``
  (m/s; a ground truth without a measured velocity is NaN and left out of the mean, as the
  devkit does). Each is the cumulative mean over the matches in score order, read at the
  recall points from 0.1 (exclusive) to the highest recall reached and averaged; a class that
  does not get past 10 % recall scores 1. mTP = mean over classes.
* ``NDS = (5 mAP + sum over TP errors of max(0, 1 - mTP)) / (5 + number of TP errors)``: the
  nuScenes weighting, normalised as the devkit does by the weight total. nuScenes has a fifth
  TP error, AAE (attribute error); there are no attributes here, so it is omitted and the sum
  has 4 terms, normalised by 9 (with AAE it is the familiar ``/ 10``). Perfect detections score 1.

Two conventions (``convention=``), both implemented here from the published definitions:

* ``"nuscenes"`` (default) gives the numbers of nuscenes-devkit 1.2.0
  (``nuscenes/eval/detection/algo.py``), checked against the devkit itself on generated cases
  (``scripts/devkit_detection_fixture.py`` writes ``tests/fixtures/devkit_detection.json``):
  predictions with equal scores are processed last-given first (the devkit sorts
  ``(score, index)`` pairs and reverses them); precision at a recall point is ``np.interp`` of the
  precision-recall samples (at a recall reached by several predictions that is the *last*
  precision, i.e. after the false positives of equal recall); a TP error curve is the
  cumulative mean over the matches interpolated *over confidence*: the confidence at each recall
  point is interpolated from the predictions' scores, the cumulative mean read at that
  confidence from the matches' scores, averaged from recall 0.1 (exclusive) to the last recall
  point with a non-zero confidence; a class without ground truth scores AP 0 and TP errors 1
  and counts in the class means.
* ``"rsd"`` (this package's earlier choices): ties in input order; at an exact grid recall the
  first (highest) precision; the cumulative-mean TP error interpolated linearly over recall
  (it differs from the devkit's between matches whose scores are not evenly spread); classes
  without ground truth are skipped (``nan`` entries, not counted in the means).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rsd.metrics.planning import to_numpy
from rsd.scene import class_names

DIST_THRESHOLDS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
TP_THRESHOLD = 2.0
MIN_RECALL = 0.1
MIN_PRECISION = 0.1
TP_ERRORS: tuple[str, ...] = ("ATE", "ASE", "AOE", "AVE")
NDS_MAP_WEIGHT = 5.0
RECALL_POINTS = np.arange(101) / 100.0
DEVKIT_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
"""The devkit's recall points: ``np.linspace`` multiplies a step of 0.01, so some points lie one
ulp off ``k / 100`` (e.g. 0.30000000000000004); at a recall that sits exactly on the grid this
decides which side of a precision step ``np.interp`` reads, so the devkit's points are used."""
_FIRST = int(round(100 * MIN_RECALL)) + 1  # first recall point strictly above MIN_RECALL
CLASS_NAMES: tuple[str, ...] = class_names()
"""The simulator's classes; a model with more passes ``class_names(cfg.n_classes)``."""
CONVENTIONS: tuple[str, ...] = ("nuscenes", "rsd")
"""``convention=`` values: the devkit's numbers (default) or this package's earlier choices."""


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"detection convention {convention!r}: expected one of {CONVENTIONS}")


def score_order(scores: Any, convention: str = "nuscenes") -> np.ndarray:
    """(P,) indices of ``scores`` (P,) by descending score. Equal scores: last given first for
    ``"nuscenes"`` (the devkit reverses an ascending sort of ``(score, index)``), first given
    first for ``"rsd"``."""
    _check_convention(convention)
    scores = np.asarray(scores, float)
    if convention == "nuscenes":
        return np.argsort(scores, kind="stable")[::-1]
    return np.argsort(-scores, kind="stable")


def yaw_difference(yaw_a: Any, yaw_b: Any) -> np.ndarray:
    """Smallest absolute angle between headings (rad, in [0, pi]); broadcastable arrays."""
    d = np.mod(np.asarray(yaw_a, float) - np.asarray(yaw_b, float) + np.pi, 2 * np.pi) - np.pi
    return np.abs(d)


def scale_iou(lwh_a: Any, lwh_b: Any) -> np.ndarray:
    """(...) 3D IoU of two boxes with aligned centres and yaw, from their (..., 3) sizes:
    ``prod(min(lwh_a, lwh_b)) / (prod(lwh_a) + prod(lwh_b) - prod(min(...)))``."""
    a, b = np.asarray(lwh_a, float), np.asarray(lwh_b, float)
    inter = np.prod(np.minimum(a, b), axis=-1)
    return inter / (np.prod(a, axis=-1) + np.prod(b, axis=-1) - inter)


def box_tp_errors(pred: Any, gt: Any) -> dict[str, np.ndarray]:
    """Per-pair TP errors of (..., 8) predicted vs ground-truth boxes: ``ATE`` (m), ``ASE``
    (1 - :func:`scale_iou`), ``AOE`` (rad, :func:`yaw_difference`), ``AVE`` (m/s)."""
    p, g = to_numpy(pred, np.float64), to_numpy(gt, np.float64)
    return {
        "ATE": np.linalg.norm(p[..., :2] - g[..., :2], axis=-1),
        "ASE": 1.0 - scale_iou(p[..., 2:5], g[..., 2:5]),
        "AOE": yaw_difference(p[..., 5], g[..., 5]),
        "AVE": np.linalg.norm(p[..., 6:8] - g[..., 6:8], axis=-1),
    }


def match_greedy(
    pred_xy: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    gt_xy: Sequence[np.ndarray],
    threshold: float,
    convention: str = "nuscenes",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of one class over all samples.

    ``pred_xy[s]`` (N_s, 2), ``pred_scores[s]`` (N_s,), ``gt_xy[s]`` (M_s, 2) per sample ``s``.
    Returns, in descending score order over all predictions (:func:`score_order`, samples
    concatenated in the order given): ``is_tp``
    (P,) bool, ``pred_index`` (P, 2) = (sample, index in sample), ``gt_index`` (P,) the matched
    ground-truth index in that sample (-1 for false positives).
    """
    sample = np.concatenate([np.full(len(s), i) for i, s in enumerate(pred_scores)] + [[]])
    local = np.concatenate([np.arange(len(s)) for s in pred_scores] + [[]])
    scores = np.concatenate([np.asarray(s, float) for s in pred_scores] + [[]])
    order = score_order(scores, convention)
    pred_index = np.stack([sample[order], local[order]], -1).astype(int).reshape(-1, 2)
    taken = [np.zeros(len(g), bool) for g in gt_xy]
    gt_index = np.full(len(order), -1)
    for n, (s, i) in enumerate(pred_index):
        if len(gt_xy[s]) == 0:
            continue
        dist = np.linalg.norm(gt_xy[s] - pred_xy[s][i], axis=-1)
        dist[taken[s]] = np.inf
        j = int(np.argmin(dist))
        if dist[j] < threshold:
            taken[s][j] = True
            gt_index[n] = j
    return gt_index >= 0, pred_index, gt_index


def _interp_first(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``fp`` over non-decreasing ``xp`` (repeats allowed): at a repeated
    ``xp`` value the first of its ``fp`` is taken; between values, the segment from the last
    point of the lower value to the first of the higher; ``fp[0]`` below, 0 above ``xp[-1]``."""
    hi = np.searchsorted(xp, x, side="left")  # first index with xp >= x
    out = np.zeros(len(x))
    inside = hi < len(xp)
    h = hi[inside]
    lo = np.maximum(h - 1, 0)
    x0, x1, y0, y1 = xp[lo], xp[h], fp[lo], fp[h]
    w = np.where((x1 > x0) & (h > 0), (x[inside] - x0) / np.where(x1 > x0, x1 - x0, 1.0), 1.0)
    out[inside] = y0 + w * (y1 - y0)
    return out


def average_precision(is_tp: Any, num_gt: int, convention: str = "nuscenes") -> float:
    """nuScenes AP from the (P,) TP flags of predictions in descending score order and the number
    of ground-truth boxes; 0 without predictions; without ground truth 0 (``"nuscenes"``) or
    ``nan`` (``"rsd"``). At a recall reached by several predictions the precision read is the
    last (``"nuscenes"``, ``np.interp``) or the first (``"rsd"``)."""
    _check_convention(convention)
    is_tp = np.asarray(is_tp, bool)
    if num_gt == 0:
        return 0.0 if convention == "nuscenes" else float("nan")
    if len(is_tp) == 0:
        return 0.0
    tp = np.cumsum(is_tp)
    recall = tp / num_gt
    precision = tp / np.arange(1, len(is_tp) + 1)
    if convention == "nuscenes":
        prec = np.interp(DEVKIT_RECALL_POINTS, recall, precision, right=0.0)[_FIRST:]
    else:
        prec = _interp_first(RECALL_POINTS, recall, precision)[_FIRST:]
    return float(np.mean(np.maximum(prec - MIN_PRECISION, 0.0)) / (1.0 - MIN_PRECISION))


def cumulative_mean(errors: np.ndarray) -> np.ndarray:
    """(E,) running mean of ``errors`` that skips NaN entries (a match whose ground truth has no
    velocity has no AVE), as the devkit's ``cummean``: 0 before the first number, all ones when
    there is none. Without NaN it is ``cumsum / (1..E)`` exactly."""
    if len(errors) and np.isnan(errors).all():
        return np.ones_like(errors)
    count = np.cumsum(~np.isnan(errors))
    total = np.nancumsum(errors)
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def tp_error_curve(errors: Any, num_gt: int) -> float:
    """``"rsd"`` recall-averaged TP error of the (E,) errors of the matches in score order: the
    cumulative mean, interpolated linearly over recall, at each recall point in
    (0.1, highest recall], averaged; 1 if that range is empty; ``nan`` without ground truth."""
    errors = np.asarray(errors, float)
    if num_gt == 0:
        return float("nan")
    max_recall = len(errors) / num_gt
    points = RECALL_POINTS[_FIRST:]
    points = points[points <= max_recall + 1e-9]
    if len(points) == 0:
        return 1.0
    recall = np.arange(1, len(errors) + 1) / num_gt
    return float(np.mean(np.interp(points, recall, cumulative_mean(errors))))


def tp_error_nuscenes(is_tp: Any, scores: Any, errors: Any, num_gt: int) -> float:
    """The devkit's TP error (``accumulate`` + ``calc_tp``) of one class.

    ``is_tp`` (P,) and ``scores`` (P,) of all predictions in processing order
    (:func:`score_order`), ``errors`` (E,) of the matches in that order (E = ``is_tp.sum()``).
    The confidence at each recall point is ``np.interp`` of the scores over recall (0 past the
    highest recall); the cumulative mean of the errors is read at that confidence by ``np.interp``
    over the matches' scores; the result is the mean over the recall points after 0.1 up to the
    last with a non-zero confidence; 1 if there is no such point, no match or no ground truth."""
    is_tp = np.asarray(is_tp, bool)
    scores, errors = np.asarray(scores, float), np.asarray(errors, float)
    if num_gt == 0 or not is_tp.any():
        return 1.0
    recall = np.cumsum(is_tp) / float(num_gt)
    conf = np.interp(DEVKIT_RECALL_POINTS, recall, scores, right=0.0)
    cummean = cumulative_mean(errors)
    # np.interp wants increasing sample points: the matches' scores reversed are non-decreasing
    curve = np.interp(conf[::-1], scores[is_tp][::-1], cummean[::-1])[::-1]
    nonzero = np.nonzero(conf)[0]
    last = int(nonzero[-1]) if len(nonzero) else 0
    if last < _FIRST:
        return 1.0
    return float(np.mean(curve[_FIRST : last + 1]))


def _pick(d: Mapping[str, Any], key: str, cls: int) -> np.ndarray:
    """Rows of ``d[key]`` of class ``cls`` (and ``d["valid"]`` where given)."""
    classes = to_numpy(d["classes"]).astype(int).reshape(-1)
    keep = classes == cls
    if "valid" in d:
        keep &= to_numpy(d["valid"], bool).reshape(-1)
    return to_numpy(d[key], np.float64)[keep]


def _class_metrics(
    p_box: list[np.ndarray],
    p_score: list[np.ndarray],
    g_box: list[np.ndarray],
    thresholds: Sequence[float],
    convention: str,
) -> dict[str, float]:
    """``{"AP@<d>m", "AP", "ATE", "ASE", "AOE", "AVE"}`` of one class from per-sample (N_s, 8)
    predicted boxes, (N_s,) scores and (M_s, 8) ground-truth boxes."""
    num_gt = sum(len(g) for g in g_box)
    p_xy, g_xy = [b[:, :2] for b in p_box], [g[:, :2] for g in g_box]
    out: dict[str, float] = {}
    for d in thresholds:
        is_tp, _, _ = match_greedy(p_xy, p_score, g_xy, d, convention)
        out[f"AP@{d:g}m"] = average_precision(is_tp, num_gt, convention)
    out["AP"] = float(np.mean([out[f"AP@{d:g}m"] for d in thresholds]))
    is_tp, p_idx, g_idx = match_greedy(p_xy, p_score, g_xy, TP_THRESHOLD, convention)
    pairs = [(p_box[s][i], g_box[s][g_idx[n]]) for n, (s, i) in enumerate(p_idx) if is_tp[n]]
    matched_p = np.array([a for a, _ in pairs]).reshape(-1, 8)
    matched_g = np.array([b for _, b in pairs]).reshape(-1, 8)
    ordered_scores = np.array([p_score[s][i] for s, i in p_idx], float)
    for err, values in box_tp_errors(matched_p, matched_g).items():
        if convention == "nuscenes":
            out[err] = tp_error_nuscenes(is_tp, ordered_scores, values, num_gt)
        else:
            out[err] = tp_error_curve(values, num_gt)
    return out


def detection_metrics(
    preds: Sequence[Mapping[str, Any]],
    gts: Sequence[Mapping[str, Any]],
    class_names: Sequence[str] = CLASS_NAMES,
    thresholds: Sequence[float] = DIST_THRESHOLDS,
    convention: str = "nuscenes",
) -> dict[str, float]:
    """nuScenes-style detection metrics over a data set (definitions and the two conventions in
    the module doc; ``"nuscenes"`` gives nuscenes-devkit 1.2.0's numbers).

    ``preds[s]``: ``boxes`` (N, 8), ``scores`` (N,), ``classes`` (N,) (int in
    ``range(len(class_names))``); ``gts[s]``: ``boxes`` (M, 8), ``classes`` (M,); either may
    carry a bool ``valid`` mask (see :func:`gts_from_targets`). Returns per class ``"AP/<name>"``
    (mean over thresholds), ``"AP/<name>@<d>m"``, ``"<ERR>/<name>"``; and ``"mAP"``,
    ``"mAP@<d>m"``, ``"mATE"``, ``"mASE"``, ``"mAOE"``, ``"mAVE"``, ``"NDS"``.
    """
    _check_convention(convention)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction samples vs {len(gts)} ground-truth samples")
    out: dict[str, float] = {}
    present = []
    for c, name in enumerate(class_names):
        g_box = [_pick(g, "boxes", c).reshape(-1, 8) for g in gts]
        if convention == "rsd" and sum(len(g) for g in g_box) == 0:
            skipped = [*(f"@{d:g}m" for d in thresholds), ""]
            out.update({f"AP/{name}{t}": float("nan") for t in skipped})
            out.update({f"{err}/{name}": float("nan") for err in TP_ERRORS})
            continue
        present.append(name)
        p_box = [_pick(p, "boxes", c).reshape(-1, 8) for p in preds]
        p_score = [_pick(p, "scores", c).reshape(-1) for p in preds]
        per_class = _class_metrics(p_box, p_score, g_box, thresholds, convention)
        for key, value in per_class.items():
            out[f"AP/{name}{key[2:]}" if key.startswith("AP") else f"{key}/{name}"] = value

    def class_mean(key: str) -> float:
        return float(np.mean([out[key.format(n)] for n in present])) if present else float("nan")

    out["mAP"] = class_mean("AP/{}")
    for d in thresholds:
        out[f"mAP@{d:g}m"] = class_mean(f"AP/{{}}@{d:g}m")
    tp_scores = []
    for err in TP_ERRORS:
        out[f"m{err}"] = class_mean(f"{err}/{{}}")
        tp_scores.append(max(0.0, 1.0 - out[f"m{err}"]))
    nds = (NDS_MAP_WEIGHT * out["mAP"] + sum(tp_scores)) / (NDS_MAP_WEIGHT + len(TP_ERRORS))
    out["NDS"] = float(nds) if present else float("nan")
    return out


def gts_from_targets(targets: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
    """Per-sample ground truth from a batch's targets: ``agent_boxes`` / ``agent_cls`` rows with
    ``agent_mask & agent_in_grid`` (the agents the detection head is trained on) and class >= 0;
    a velocity not measured (``agent_vel_valid`` False) is NaN, so that AVE leaves it out."""
    boxes = to_numpy(targets["agent_boxes"], np.float64).copy()
    if "agent_vel_valid" in targets:
        unknown = ~to_numpy(targets["agent_vel_valid"], bool)
        boxes[..., 6:8][unknown] = np.nan
    cls = to_numpy(targets["agent_cls"]).astype(int)
    keep = to_numpy(targets["agent_mask"], bool) & (cls >= 0)
    if "agent_in_grid" in targets:
        keep &= to_numpy(targets["agent_in_grid"], bool)
    return [{"boxes": boxes[i][keep[i]], "classes": cls[i][keep[i]]} for i in range(len(boxes))]
