"""Risk metrics: agreement of the student's risk with the teacher's, and with outcomes.

Pure functions on arrays (torch tensors are converted) with validity masks; per-object arrays are
(..., K) with any leading batch dimensions, one frame per leading index. A metric with nothing
valid to average is ``nan``.

* Agreement with the teacher (the VLM annotation, ``agent_risk`` / ``risk_map`` of the batch,
  :mod:`rsd.models.protocol`): per-object risk MAE, Kendall's tau-b of the two rankings per
  frame, top-1 agreement, masked risk-map L1.
* Agreement with outcome: AUROC of the predicted per-object risk for the agents that later come
  within a near-miss distance of the ego (:func:`near_miss_labels`), by the rank-sum
  (Mann-Whitney U) formula with mid-ranks for ties: ``AUROC = (R_pos - n_pos (n_pos + 1) / 2) /
  (n_pos n_neg)`` = P(score_pos > score_neg) + P(tie) / 2.

Kendall's tau-b (Kendall 1945): ``(n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2))`` with ``n_0`` the
pairs, ``n_1``/``n_2`` the pairs tied in the first/second ranking. Teacher ranks (``agent_rank``,
1 = most risky) are turned into scores by negating them before calling these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsd.geometry import box_corners
from rsd.metrics.planning import EGO_SIZE_VAD, boxes_overlap, to_numpy


def _frames(pred: Any, target: Any, valid: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, K) float pred, target and bool valid from (..., K) arrays."""
    p, t = to_numpy(pred, np.float64), to_numpy(target, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and target {t.shape} differ")
    v = np.ones(p.shape, bool) if valid is None else np.broadcast_to(to_numpy(valid, bool), p.shape)
    k = p.shape[-1] if p.ndim else 1
    return p.reshape(-1, k), t.reshape(-1, k), v.reshape(-1, k)


def risk_mae(pred: Any, target: Any, valid: Any = None) -> float:
    """Mean absolute error over all valid objects (pooled). (..., K) arrays, risk in [0, 1]."""
    p, t, v = _frames(pred, target, valid)
    return float(np.abs(p - t)[v].mean()) if v.any() else float("nan")


RISKY = 0.3
"""Teacher risk above which an object counts as risky (the collapse check)."""
COLLAPSE_RATIO = 0.1
"""The student's map has collapsed when its mean risk on the teacher's risky objects is below
this fraction of the teacher's own mean there."""


def risk_collapse(pred: Any, target: Any, valid: Any = None) -> dict[str, float]:
    """Whether the student's risk has collapsed where the teacher sees risk: over the valid
    objects the teacher rates above :data:`RISKY`, the student's and the teacher's mean risk
    (``student_risk_on_risky``, ``teacher_risk_on_risky``) and ``risk_collapsed`` (1.0 when
    the student's is below :data:`COLLAPSE_RATIO` of the teacher's, 0.0 otherwise; NaN without
    risky objects). A near-empty student map still earns a small map L1 and a rank correlation
    among tiny values, so those alone do not reveal it. (..., K) arrays, risk in [0, 1]."""
    p, t, v = _frames(pred, target, valid)
    risky = v & (t > RISKY)
    if not risky.any():
        nan = float("nan")
        return {"student_risk_on_risky": nan, "teacher_risk_on_risky": nan, "risk_collapsed": nan}
    student, teacher = float(p[risky].mean()), float(t[risky].mean())
    return {
        "student_risk_on_risky": student,
        "teacher_risk_on_risky": teacher,
        "risk_collapsed": float(student < COLLAPSE_RATIO * teacher),
    }


def kendall_tau_b(x: Any, y: Any) -> float:
    """Kendall's tau-b of two (n,) score vectors (ties handled); ``nan`` if n < 2 or either is
    constant."""
    x, y = np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)
    iu = np.triu_indices(len(x), k=1)
    sx = np.sign(x[:, None] - x[None, :])[iu]
    sy = np.sign(y[:, None] - y[None, :])[iu]
    n0 = len(sx)
    denom = np.sqrt(float(np.sum(sx != 0)) * float(np.sum(sy != 0)))
    if n0 == 0 or denom == 0:
        return float("nan")
    return float(np.sum(sx * sy) / denom)


def kendall_tau(pred: Any, target: Any, valid: Any = None) -> float:
    """Mean over frames with >= 2 valid objects (and a non-constant ranking on both sides) of
    :func:`kendall_tau_b` between the student's and the teacher's per-object risks. (..., K)."""
    p, t, v = _frames(pred, target, valid)
    taus = [kendall_tau_b(p[f][v[f]], t[f][v[f]]) for f in range(len(p)) if v[f].sum() >= 2]
    taus = [x for x in taus if not np.isnan(x)]
    return float(np.mean(taus)) if taus else float("nan")


def top1_agreement(pred: Any, target: Any, valid: Any = None) -> float:
    """Share of frames (>= 2 valid objects) where the student's most risky object is one of the
    teacher's most risky. With ties in the student's maximum, a frame scores the fraction of its
    tied objects that are among the teacher's maxima (the agreement under a random tie-break)."""
    p, t, v = _frames(pred, target, valid)
    scores = []
    for f in range(len(p)):
        if v[f].sum() < 2:
            continue
        pf, tf = p[f][v[f]], t[f][v[f]]
        student_top, teacher_top = pf == pf.max(), tf == tf.max()
        scores.append(np.sum(student_top & teacher_top) / np.sum(student_top))
    return float(np.mean(scores)) if scores else float("nan")


def risk_map_l1(pred: Any, target: Any, mask: Any = None, sample_valid: Any = None) -> float:
    """Mean absolute error between risk maps over the masked pixels.

    ``pred``, ``target`` (B, ..., H, W) (e.g. (B, 1, H, W)); ``mask`` broadcastable to them
    (pixels to score); ``sample_valid`` (B,) bool (e.g. ``risk_valid``: frames with a teacher)."""
    p, t = to_numpy(pred, np.float64), to_numpy(target, np.float64)
    m = np.ones(p.shape, bool) if mask is None else np.broadcast_to(to_numpy(mask, bool), p.shape)
    if sample_valid is not None:
        sv = to_numpy(sample_valid, bool).reshape(-1, *([1] * (p.ndim - 1)))
        m = m & sv
    return float(np.abs(p - t)[m].mean()) if m.any() else float("nan")


def auroc(scores: Any, labels: Any, valid: Any = None) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (same shapes, any), by the
    rank-sum formula with mid-ranks; ``nan`` unless both classes are present."""
    s = to_numpy(scores, np.float64).reshape(-1)
    y = to_numpy(labels, bool).reshape(-1)
    if valid is not None:
        keep = np.broadcast_to(to_numpy(valid, bool), to_numpy(scores).shape).reshape(-1)
        s, y = s[keep], y[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    ranks = np.empty(len(s))
    # mid-ranks: every member of a group of equal scores gets the group's mean rank
    _, start, count = np.unique(sorted_s, return_index=True, return_counts=True)
    mid = start + (count + 1) / 2.0
    ranks[order] = np.repeat(mid, count)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _point_segment_distance(pt: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((pt - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(pt - (a + t[..., None] * ab), axis=-1)


def box_gap(box_a: Any, box_b: Any) -> np.ndarray:
    """(...) smallest distance (m) between two oriented rectangles, 0 where they overlap.

    ``box_a``, ``box_b`` (..., 5) = x, y, length, width, yaw, broadcastable. For disjoint convex
    polygons the distance is reached at a corner of one against an edge of the other."""
    box_a, box_b = np.broadcast_arrays(np.asarray(box_a, float), np.asarray(box_b, float))
    ca, cb = (
        box_corners(b[..., 0], b[..., 1], b[..., 4], b[..., 2], b[..., 3]) for b in (box_a, box_b)
    )
    gap = np.full(box_a.shape[:-1], np.inf)
    for pts, poly in ((ca, cb), (cb, ca)):
        a, b = poly, np.roll(poly, -1, axis=-2)  # (..., 4, 2) edges
        d = _point_segment_distance(pts[..., :, None, :], a[..., None, :, :], b[..., None, :, :])
        gap = np.minimum(gap, d.min(axis=(-2, -1)))
    return np.where(boxes_overlap(box_a, box_b), 0.0, gap)


def near_miss_labels(
    agent_future: Any,
    agent_future_valid: Any,
    agent_sizes: Any,
    ego_future: Any,
    ego_size: Any = None,
    distance: float = 2.0,
    agent_mask: Any = None,
    ego_future_valid: Any = None,
) -> np.ndarray:
    """(..., K) bool: agents whose box comes within ``distance`` m (box gap, :func:`box_gap`,
    ``<=``) of the ego's box at some future step where both are valid.

    ``agent_future`` (..., K, T, 3) x, y, yaw; ``agent_future_valid`` (..., K, T);
    ``agent_sizes`` (..., K, >=2) length, width first (``agent_boxes[..., 2:4]`` or the whole
    ``agent_boxes``); ``ego_future`` (..., T, 3) x, y, yaw (the expert's actual future);
    ``ego_size`` (..., >=2) or None for VAD's 4.084 x 1.85 m; ``agent_mask`` (..., K);
    ``ego_future_valid`` (..., T).
    """
    fut = to_numpy(agent_future, np.float64)
    lead, k, t = fut.shape[:-3], fut.shape[-3], fut.shape[-2]
    sizes = to_numpy(agent_sizes, np.float64)
    sizes = sizes[..., 2:4] if sizes.shape[-1] == 8 else sizes[..., :2]
    agents = np.concatenate(
        [fut[..., :2], np.broadcast_to(sizes[..., None, :], (*lead, k, t, 2)), fut[..., 2:3]], -1
    )
    ego_xy = to_numpy(ego_future, np.float64)
    size = np.asarray(EGO_SIZE_VAD) if ego_size is None else to_numpy(ego_size, np.float64)
    lw = np.broadcast_to(size[..., :2], (*lead, 2))
    ego = np.concatenate(
        [ego_xy[..., :2], np.broadcast_to(lw[..., None, :], (*lead, t, 2)), ego_xy[..., 2:3]], -1
    )
    valid = to_numpy(agent_future_valid, bool)
    if ego_future_valid is not None:
        valid = valid & to_numpy(ego_future_valid, bool)[..., None, :]
    close = (box_gap(ego[..., None, :, :], agents) <= distance) & valid
    labels = close.any(axis=-1)
    if agent_mask is not None:
        labels &= to_numpy(agent_mask, bool)
    return labels


def risk_metrics(
    pred_risk: Any,
    teacher_risk: Any,
    valid: Any = None,
    *,
    pred_map: Any = None,
    teacher_map: Any = None,
    map_mask: Any = None,
    map_valid: Any = None,
    near_miss: Any = None,
    near_miss_valid: Any = None,
) -> dict[str, float]:
    """Student/teacher risk agreement and the near-miss AUROC as one dict.

    ``pred_risk`` (e.g. ``agent_risk_pred``), ``teacher_risk`` (``agent_risk``), ``valid``
    (``agent_risk_valid & agent_mask & agent_in_grid``): (..., K). Optional ``pred_map`` /
    ``teacher_map`` (B, 1, H, W) with ``map_mask`` / ``map_valid`` (see :func:`risk_map_l1`);
    ``near_miss`` (..., K) labels (:func:`near_miss_labels`) scored against ``pred_risk`` on
    ``near_miss_valid`` (default: all objects of ``valid``)."""
    out = {
        "risk_mae": risk_mae(pred_risk, teacher_risk, valid),
        "risk_kendall_tau": kendall_tau(pred_risk, teacher_risk, valid),
        "risk_top1_agreement": top1_agreement(pred_risk, teacher_risk, valid),
        **risk_collapse(pred_risk, teacher_risk, valid),
    }
    if pred_map is not None and teacher_map is not None:
        out["risk_map_l1"] = risk_map_l1(pred_map, teacher_map, map_mask, map_valid)
    if near_miss is not None:
        keep = valid if near_miss_valid is None else near_miss_valid
        out["near_miss_auroc"] = auroc(pred_risk, near_miss, keep)
    return out
