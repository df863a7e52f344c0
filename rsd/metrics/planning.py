"""Open-loop planning metrics: L2 (VAD/ST-P3 and UniAD conventions), ADE/FDE, plan collision
(an exact oriented-box test, and VAD's occupancy-grid test).

All functions are pure: numpy arrays (torch tensors are converted) with validity masks, any
number of leading batch dimensions ``...`` (flattened into samples), results as dicts of floats.
A metric with no valid sample is ``nan``. Waypoints are ``(x, y)`` in metres in the ego frame at
the current time (ego at the origin, heading +x), one every ``dt`` seconds.

Sources (definitions as published; see ``shared/facts.md``):

* VAD / ST-P3: ``L2@h = mean over the first n = h / dt waypoints of ||p_hat - p||`` per sample,
  then the mean over samples (an average of averages). The collision rate uses the same running
  average of a per-step indicator, ego box 4.084 m x 1.85 m, steps where the expert collides
  do not count as collisions. Two tests of the indicator, each under its own key:
  ``collision_box_*`` places the ego box (the car's own size by default) at each waypoint with
  the heading of travel and intersects it exactly with the agents' oriented boxes;
  ``collision_vad_grid_*`` is VAD's own test (:mod:`rsd.metrics.vad_grid`: an unrotated
  4.084 x 1.85 m box shifted 0.5 m forward against a 0.5 m occupancy grid of the agents), the
  number to put beside VAD's tables.
* UniAD: the error at waypoint ``n`` alone.
* ADE: mean over all valid waypoints; FDE: the last waypoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rsd.metrics.vad_grid import grid_collision_steps

EGO_SIZE_VAD: tuple[float, float] = (4.084, 1.85)
"""(length, width) of the ego box in VAD's collision metric, metres."""
COLLISION_METHODS: tuple[str, ...] = ("box", "vad_grid")
"""``plan_collision(method=...)``: exact oriented boxes, or VAD's occupancy grid."""
HORIZONS_S: tuple[float, ...] = (1.0, 2.0, 3.0)
"""Default reporting horizons, seconds."""


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and moved to the CPU first)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def horizon_name(h: float) -> str:
    """The identifier of a horizon in metric keys: ``1.0 -> "1s"``, ``0.5 -> "0p5s"``."""
    return f"{h:g}s".replace(".", "p")


def horizon_steps(horizons_s: Sequence[float], dt: float, num_steps: int) -> dict[str, int]:
    """``{"1s": 2, ...}`` (:func:`horizon_name`): number of waypoints covering each horizon
    (must be whole, <= T)."""
    out = {}
    for h in horizons_s:
        n = int(round(h / dt))
        if n < 1 or n > num_steps or abs(n * dt - h) > 1e-6:
            raise ValueError(f"horizon {h} s is not 1..{num_steps} whole steps of {dt} s")
        out[horizon_name(h)] = n
    return out


def _errors(pred: Any, gt: Any, valid: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) Euclidean errors and (N, T) bool validity from (..., T, >=2) waypoints."""
    p = to_numpy(pred, np.float64)[..., :2]
    g = to_numpy(gt, np.float64)[..., :2]
    if p.shape != g.shape or p.ndim < 2:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must both be (..., T, 2)")
    t = p.shape[-2]
    v = np.ones(p.shape[:-1], bool) if valid is None else to_numpy(valid, bool)
    v = np.broadcast_to(v, p.shape[:-1])
    err = np.linalg.norm(p - g, axis=-1)
    return err.reshape(-1, t), v.reshape(-1, t)


def _mean_of_rows(values: np.ndarray, mask: np.ndarray) -> float:
    """Average over rows (samples) of each row's masked mean; rows with no valid entry skipped."""
    count = mask.sum(axis=-1)
    per_row = np.where(mask, values, 0.0).sum(axis=-1) / np.maximum(count, 1)
    return float(per_row[count > 0].mean()) if (count > 0).any() else float("nan")


def l2_vad(
    pred: Any,
    gt: Any,
    valid: Any = None,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt: float = 0.5,
) -> dict[str, float]:
    """VAD / ST-P3 L2 (m): per sample, the mean error over the valid waypoints among the first
    ``n = h / dt``; then the mean over samples having at least one. ``pred``, ``gt``
    (..., T, 2) (extra trailing columns of ``gt``, e.g. yaw, are ignored), ``valid`` (..., T).
    Returns ``{"l2_vad_1s": ..., "l2_vad_2s": ..., ...}``."""
    err, v = _errors(pred, gt, valid)
    steps = horizon_steps(horizons_s, dt, err.shape[1])
    return {f"l2_vad_{k}": _mean_of_rows(err[:, :n], v[:, :n]) for k, n in steps.items()}


def l2_uniad(
    pred: Any,
    gt: Any,
    valid: Any = None,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt: float = 0.5,
) -> dict[str, float]:
    """UniAD L2 (m): the error at waypoint ``n = h / dt`` alone, averaged over the samples where
    that waypoint is valid. Shapes as :func:`l2_vad`. Returns ``{"l2_uniad_1s": ..., ...}``."""
    err, v = _errors(pred, gt, valid)
    steps = horizon_steps(horizons_s, dt, err.shape[1])
    return {
        f"l2_uniad_{k}": _mean_of_rows(err[:, n - 1 : n], v[:, n - 1 : n]) for k, n in steps.items()
    }


def ade(pred: Any, gt: Any, valid: Any = None) -> float:
    """Average displacement error (m): per sample the mean error over its valid waypoints, then
    the mean over samples with any. ``pred``, ``gt`` (..., T, 2), ``valid`` (..., T)."""
    err, v = _errors(pred, gt, valid)
    return _mean_of_rows(err, v)


def fde(pred: Any, gt: Any, valid: Any = None) -> float:
    """Final displacement error (m): the error at the last waypoint T, averaged over the samples
    where it is valid (a sample whose future ends early is left out rather than scored at an
    earlier step, so every FDE is at the same horizon). Shapes as :func:`ade`."""
    err, v = _errors(pred, gt, valid)
    return _mean_of_rows(err[:, -1:], v[:, -1:])


# --- oriented boxes ---------------------------------------------------------------------------


def box_axes(yaw: np.ndarray) -> np.ndarray:
    """(..., 2, 2): unit vectors along the length (row 0) and the width (row 1) of a box."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)


def boxes_overlap(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """Whether oriented rectangles overlap (separating axis test; touching is not overlapping).

    ``box_a``, ``box_b`` (..., 5) = x, y, length, width, yaw (m, rad), broadcastable.
    Returns (...) bool. Two convex rectangles are disjoint iff their projections are disjoint on
    one of the four edge normals; on axis ``u`` the half-extent of a box is
    ``l/2 |a_l . u| + w/2 |a_w . u|``.
    """
    box_a, box_b = np.broadcast_arrays(np.asarray(box_a, float), np.asarray(box_b, float))
    ax_a, ax_b = box_axes(box_a[..., 4]), box_axes(box_b[..., 4])
    half_a, half_b = box_a[..., 2:4] / 2, box_b[..., 2:4] / 2
    d = box_b[..., :2] - box_a[..., :2]
    separated = np.zeros(box_a.shape[:-1], bool)
    for u in (ax_a[..., 0, :], ax_a[..., 1, :], ax_b[..., 0, :], ax_b[..., 1, :]):
        r_a = (half_a * np.abs((ax_a * u[..., None, :]).sum(-1))).sum(-1)
        r_b = (half_b * np.abs((ax_b * u[..., None, :]).sum(-1))).sum(-1)
        separated |= np.abs((d * u).sum(-1)) >= r_a + r_b
    return ~separated


def travel_yaw(xy: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """(N, T) heading (rad) of each waypoint from the direction of travel (N, T, 2).

    The step into waypoint t comes from waypoint t-1 (the origin for t = 0). Where the step is
    shorter than ``eps`` m (standing still) the previous heading is kept, starting from 0 (the
    ego frame's heading)."""
    prev = np.concatenate([np.zeros_like(xy[:, :1]), xy[:, :-1]], axis=1)
    d = xy - prev
    yaw = np.arctan2(d[..., 1], d[..., 0])
    moving = np.linalg.norm(d, axis=-1) > eps
    out = np.zeros(xy.shape[:2])
    cur = np.zeros(xy.shape[0])
    for t in range(xy.shape[1]):
        cur = np.where(moving[:, t], yaw[:, t], cur)
        out[:, t] = cur
    return out


def _ego_lw(ego_size: Any, lead: tuple[int, ...]) -> np.ndarray:
    """(N, 2) ego length, width from None (VAD's box), (2|3,) or (..., 2|3)."""
    size = np.asarray(EGO_SIZE_VAD) if ego_size is None else to_numpy(ego_size, np.float64)
    return np.broadcast_to(size[..., :2], (*lead, 2)).reshape(-1, 2)


def plan_collision_steps(
    pred: Any,
    ego_size: Any,
    agent_boxes: Any,
    agent_future: Any,
    agent_future_valid: Any,
    agent_mask: Any,
) -> np.ndarray:
    """(N, T) bool: whether the ego box placed at each waypoint overlaps a ground-truth agent box
    at the same future step.

    ``pred`` (..., T, 2) waypoints (x, y) or (..., T, 3) with yaw (used if given, else the
    direction of travel, :func:`travel_yaw`); ``ego_size`` see :func:`plan_collision`;
    ``agent_boxes`` (..., K, 8) (only l, w are read: columns 2, 3); ``agent_future``
    (..., K, T, 3) x, y, yaw; ``agent_future_valid`` (..., K, T); ``agent_mask`` (..., K).
    """
    p = to_numpy(pred, np.float64)
    lead, t = p.shape[:-2], p.shape[-2]
    p = p.reshape(-1, t, p.shape[-1])
    yaw = p[..., 2] if p.shape[-1] >= 3 else travel_yaw(p[..., :2])
    lw = _ego_lw(ego_size, lead)
    ego = np.concatenate(
        [p[..., :2], np.broadcast_to(lw[:, None], (len(p), t, 2)), yaw[..., None]], -1
    )
    agents, valid = agent_poses(agent_boxes, agent_future, agent_future_valid, agent_mask, t)
    hit = boxes_overlap(ego[:, None], agents) & valid  # (N, K, T)
    return hit.any(axis=1)


def agent_poses(
    agent_boxes: Any, agent_future: Any, agent_future_valid: Any, agent_mask: Any, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """Agents at each future step: (N, K, T, 5) x, y, length, width, yaw and (N, K, T) bool
    validity, from the arrays of :func:`plan_collision_steps` (leading dims flattened)."""
    fut = to_numpy(agent_future, np.float64)
    k = fut.shape[-3]
    fut = fut.reshape(-1, k, t, fut.shape[-1])
    size = to_numpy(agent_boxes, np.float64).reshape(-1, k, 8)[..., 2:4]
    agents = np.concatenate(
        [fut[..., :2], np.broadcast_to(size[:, :, None], (len(fut), k, t, 2)), fut[..., 2:3]], -1
    )
    valid = to_numpy(agent_future_valid, bool).reshape(-1, k, t)
    valid = valid & to_numpy(agent_mask, bool).reshape(-1, k)[:, :, None]
    return agents, valid


def _collision_steps(
    method: str, pred: Any, gt_plan: Any, ego_size: Any, agents_args: tuple
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, T) per-step collisions of ``pred`` and of ``gt_plan`` (None if not given)."""
    if method == "box":
        hit = plan_collision_steps(pred, ego_size, *agents_args)
        expert = None if gt_plan is None else plan_collision_steps(gt_plan, ego_size, *agents_args)
        return hit, expert
    if method != "vad_grid":
        raise ValueError(f"collision method {method!r}: expected one of {COLLISION_METHODS}")
    p = to_numpy(pred, np.float64)
    t = p.shape[-2]
    plans = [p[..., :2].reshape(-1, t, 2)]
    if gt_plan is not None:
        plans.append(to_numpy(gt_plan, np.float64)[..., :2].reshape(-1, t, 2))
    lw = EGO_SIZE_VAD
    if ego_size is not None:
        size = to_numpy(ego_size, np.float64).reshape(-1)
        if size.size not in (2, 3):
            raise ValueError("the VAD grid test takes one ego size (length, width[, height])")
        lw = (float(size[0]), float(size[1]))
    steps = grid_collision_steps(plans, *agent_poses(*agents_args, t), lw)
    return steps[0], (steps[1] if gt_plan is not None else None)


def plan_collision(
    pred: Any,
    ego_size: Any,
    agent_boxes: Any,
    agent_future: Any,
    agent_future_valid: Any,
    agent_mask: Any,
    gt_plan: Any = None,
    gt_valid: Any = None,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt: float = 0.5,
    drop_expert_steps: bool = False,
    method: str = "box",
) -> dict[str, float]:
    """Plan collision rate (fraction of steps; x100 for VAD's %): ``{"collision_<method>_1s":
    ...}``.

    ``method="box"``: the ego box (``ego_size`` (..., 2|3) = l, w[, h] m, or None for VAD's
    4.084 x 1.85) is placed at each waypoint of ``pred`` (..., T, 2) with the yaw of its
    direction of travel and tested against the ground-truth agent boxes at that step
    (:func:`plan_collision_steps`). ``method="vad_grid"``: VAD's test
    (:mod:`rsd.metrics.vad_grid`; ``ego_size`` one (2|3,) size or None for VAD's box). Per
    sample, the indicator is averaged over the counted steps among the first ``n = h / dt``,
    then over samples. Steps where the expert ``gt_plan`` (..., T, 2|3; its yaw column is used
    when present) collides are not counted as collisions (VAD/ST-P3: the indicator is zeroed, the
    step stays in the denominator); ``drop_expert_steps=True`` removes them from the denominator
    too. Steps with ``gt_valid`` (..., T) False are not counted (the scene's future is unknown).
    """
    agents_args = (agent_boxes, agent_future, agent_future_valid, agent_mask)
    hit, expert = _collision_steps(method, pred, gt_plan, ego_size, agents_args)
    counted = np.ones_like(hit) if gt_valid is None else to_numpy(gt_valid, bool).reshape(hit.shape)
    if expert is not None:
        hit = hit & ~expert
        if drop_expert_steps:
            counted = counted & ~expert
    steps = horizon_steps(horizons_s, dt, hit.shape[1])
    return {
        f"collision_{method}_{k}": _mean_of_rows(hit[:, :n].astype(float), counted[:, :n])
        for k, n in steps.items()
    }


def planning_metrics(
    pred: Any,
    gt: Any,
    valid: Any = None,
    *,
    agent_boxes: Any = None,
    agent_future: Any = None,
    agent_future_valid: Any = None,
    agent_mask: Any = None,
    ego_size: Any = None,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt: float = 0.5,
) -> dict[str, float]:
    """All open-loop planning metrics, keyed by identifiers naming their convention.

    ``pred`` (..., T, 2); ``gt`` (..., T, 2|3) the expert future (e.g. ``ego_future``);
    ``valid`` (..., T). Keys: ``l2_vad_1s``... (VAD running average), ``l2_uniad_1s``...
    (UniAD single step), each with an ``_avg`` over horizons (as VAD's tables), ``ade``,
    ``fde`` (m), and when the agent arrays are given ``collision_box_1s``...,
    ``collision_box_avg`` (exact boxes, the ego box ``ego_size``) and ``collision_vad_grid_1s``...,
    ``collision_vad_grid_avg`` (VAD's grid test with VAD's ego box): fractions of steps,
    expert-collision steps excluded (:func:`plan_collision`). Display labels live in
    :mod:`rsd.report.labels`.
    """
    out: dict[str, float] = {}
    groups = [("l2_vad", l2_vad(pred, gt, valid, horizons_s, dt))]
    groups.append(("l2_uniad", l2_uniad(pred, gt, valid, horizons_s, dt)))
    if agent_boxes is not None:
        if agent_future is None or agent_future_valid is None:
            raise ValueError("collision needs agent_future and agent_future_valid")
        mask = agent_mask
        if mask is None:
            mask = np.ones(to_numpy(agent_boxes).shape[:-1], bool)
        agents = (agent_boxes, agent_future, agent_future_valid, mask)
        box = plan_collision(pred, ego_size, *agents, gt, valid, horizons_s, dt, method="box")
        groups.append(("collision_box", box))
        grid = plan_collision(pred, None, *agents, gt, valid, horizons_s, dt, method="vad_grid")
        groups.append(("collision_vad_grid", grid))
    for prefix, values in groups:
        out.update(values)
        out[f"{prefix}_avg"] = float(np.mean(list(values.values())))
    out["ade"] = ade(pred, gt, valid)
    out["fde"] = fde(pred, gt, valid)
    return out


def planning_metrics_from_batch(plan: Any, batch: dict[str, Any], **kwargs: Any) -> dict:
    """:func:`planning_metrics` of ``plan`` (B, T, 2) against a protocol batch (``ego_future``,
    ``ego_future_valid``, ``agent_*``; see :mod:`rsd.models.protocol`). The ego box is the
    batch's own ``ego_size`` unless ``ego_size`` is passed (None for VAD's 4.084 x 1.85 m)."""
    ego_size = kwargs.pop("ego_size", batch.get("ego_size"))
    return planning_metrics(
        plan,
        batch["ego_future"],
        batch.get("ego_future_valid"),
        agent_boxes=batch.get("agent_boxes"),
        agent_future=batch.get("agent_future"),
        agent_future_valid=batch.get("agent_future_valid"),
        agent_mask=batch.get("agent_mask"),
        ego_size=ego_size,
        **kwargs,
    )
