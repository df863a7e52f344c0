"""A navsim-style plan score (PDM score) of predicted plans against the logged scene.

Each frame's plan (6 waypoints at 0.5 s) is *tracked* for its horizon, the other agents follow
their logged futures (non-reactive), and five sub-scores combine as navsim's PDM score
(``docs/metrics.md`` of autonomousvision/navsim)::

    PDMS = NC x DAC x (5 TTC + 5 EP + 2 C) / 12

* **NC**, no at-fault collision (0/1): the ego box along the tracked plan overlaps no agent box
  at any 0.1 s step after the start. Not at fault (as navsim): the ego is standing still, or
  the agent's centre is behind the ego's centre (it drove into the ego's rear half).
* **DAC**, drivable-area compliance (0/1): every corner of the ego box lies on a drivable cell
  of the ground-truth map raster at every step.
* **TTC**, time to collision within bound (0/1): at no step would the ego, moving on at
  constant velocity for up to ``ttc_horizon_s``, overlap an agent moving on at its constant
  velocity (at-fault rule as NC; 0 where NC is 0).
* **EP**, ego progress in [0, 1]: the tracked plan's end point projected onto the expert's
  path (arc length), over the expert's own progress; 1 when the expert moves less than
  ``min_progress_m``.
* **C**, comfort (0/1): nuPlan's bounds on longitudinal / lateral acceleration, yaw rate and
  acceleration, longitudinal jerk and jerk magnitude hold at every step, after navsim's
  Savitzky-Golay smoothing of the 10 Hz signals (:func:`comfort`).

Where this differs from navsim (stated so that numbers are not compared across the two):

* tracking is a not-a-knot cubic spline through the ego's logged past positions, the origin
  and the 6 waypoints (perfect tracking of a smooth interpolant), not an LQR on a kinematic
  bicycle; comfort therefore reads the plan's own smoothness and its fit to the past, and the
  box's yaw is the direction of travel (the plan has no heading), not a bicycle's body heading;
* comfort smooths over a 3 s horizon (31 samples), navsim's over 4 s (41), so one excess
  weighs a little more here; bounds are inclusive (navsim: strict);
* horizon 3 s (the plan's) instead of 4 s; agents between keyframes are interpolated linearly;
* EP's reference is the expert's logged future, not the PDM-Closed planner's best proposal;
* DAC uses the BEV raster of the drivable area (the union of the lane polygons and junction
  connectors, cells whose centre is inside): navsim tests the four corners against the map's
  road-block, intersection and drivable-area polygons, which cover a road's whole paved
  surface; a lane union leaves out the paved inside of tight corners (roundabout entries and
  exits, intersection turns). A corner outside the grid counts as compliant (unknown), and
  there is no driving-direction or traffic-light term;
* every agent is a vehicle, so NC is 0 or 1 (navsim's 1/2 for static objects never occurs).

Pure numpy over ``N`` frames at once (no loop over frames). A frame is scored only where the
expert's future is valid over the whole horizon (``valid``); other frames are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from rsd.geometry import BEVGrid, box_corners, world_to_pixel
from rsd.metrics.plan_comfort import comfort, comfort_signals

__all__ = [
    "PlanScoreConfig",
    "comfort",
    "comfort_signals",
    "known_past",
    "plan_scores",
    "summarise_plan_scores",
    "track_plan",
]

SUB_SCORES = ("nc", "dac", "ttc", "ep", "comfort")
"""Sub-score identifiers, in the order of the formula."""


@dataclass(frozen=True)
class PlanScoreConfig:
    """Settings of :func:`plan_scores` (SI units). Defaults follow navsim / nuPlan."""

    dt: float = 0.5
    """Spacing of the plan's waypoints (s)."""
    sim_dt: float = 0.1
    """Step of the tracked trajectory (s)."""
    ttc_horizon_s: float = 1.0
    ttc_probe_s: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    """Look-ahead times (s) at which the constant-velocity projections are compared."""
    min_progress_m: float = 5.0
    stopped_mps: float = 0.05
    """Below this speed (m/s) the ego is standing still: a collision is not its fault."""
    lon_accel: tuple[float, float] = (-4.05, 2.40)
    lat_accel: float = 4.89
    yaw_rate: float = 0.95
    yaw_accel: float = 1.93
    lon_jerk: float = 4.13
    jerk: float = 8.37
    accel_window: int = 0
    """Savitzky-Golay window (steps, order 2) of the accelerations held to their bounds and of
    the jerks' derivative; 0: the whole horizon (navsim's ``window_length=n_time``)."""
    jerk_accel_window: int = 8
    """Window (steps, order 2) smoothing an acceleration before its jerk is taken (navsim's 8)."""
    yaw_window: int = 5
    """Window (steps) of the heading's derivatives: yaw rate order 2, yaw accel order 3."""
    weights: tuple[float, float, float] = (5.0, 5.0, 2.0)
    """Weights of TTC, EP and comfort in the weighted mean."""


def _np(x: Any, dtype: Any) -> np.ndarray:
    """``x`` as a numpy array of ``dtype`` (a torch tensor is detached and moved first)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def known_past(
    ego_past: np.ndarray | None, ego_past_valid: np.ndarray | None, ego_speed: np.ndarray, dt: float
) -> np.ndarray:
    """(N, P, 2) the ego's past positions (oldest first, one every ``dt`` s before now) where
    logged (``ego_past`` (N, P, >=2) with ``ego_past_valid`` (N, P)), else driven straight at
    ``ego_speed`` (N,) m/s; P = 2 without a logged past."""
    n = len(ego_speed)
    p = 2 if ego_past is None else ego_past.shape[1]
    back = -dt * np.arange(p, 0, -1)  # (P,) times before now, oldest first
    straight = np.zeros((n, p, 2))
    straight[..., 0] = ego_speed[:, None] * back
    if ego_past is None:
        return straight
    valid = np.ones((n, p), bool) if ego_past_valid is None else ego_past_valid
    return np.where(valid[..., None], ego_past[..., :2], straight)


def track_plan(plan: np.ndarray, past: np.ndarray, cfg: PlanScoreConfig) -> dict[str, np.ndarray]:
    """The tracked trajectory of ``plan`` (N, T, 2) waypoints at ``cfg.dt``: a not-a-knot
    cubic spline through the ego's ``past`` (N, P, 2) positions (:func:`known_past`), the
    origin (now) and the plan, so that the start of the plan is judged against the motion the
    ego actually has.

    Returns ``t`` (S,) s from 0 to the horizon and, at those times, ``xy`` (N, S, 2) m,
    ``vel`` (N, S, 2) m/s, ``acc`` (N, S, 2) m/s^2 and ``yaw`` (N, S) rad (direction of travel;
    kept from the last moving step, 0 at the start, while standing still)."""
    n, t_steps = plan.shape[:2]
    p = past.shape[1]
    knots = np.arange(-p, t_steps + 1) * cfg.dt
    pts = np.concatenate([past, np.zeros((n, 1, 2)), plan[..., :2]], axis=1)
    spline = CubicSpline(knots, pts, axis=1)
    t = np.arange(round(knots[-1] / cfg.sim_dt) + 1) * cfg.sim_dt
    vel = spline(t, 1)
    moving = np.linalg.norm(vel, axis=-1) > 0.5  # headings at walking pace are noise
    idx = np.where(moving, np.arange(len(t)), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    raw = np.arctan2(vel[..., 1], vel[..., 0])
    yaw = np.where(moving | (idx > 0), np.take_along_axis(raw, idx, axis=1), 0.0)
    return {"t": t, "xy": spline(t), "vel": vel, "acc": spline(t, 2), "yaw": yaw}


def interpolate_agents(
    agent_boxes: np.ndarray,
    agent_future: np.ndarray,
    agent_future_valid: np.ndarray,
    agent_mask: np.ndarray,
    t: np.ndarray,
    dt: float,
) -> dict[str, np.ndarray]:
    """Agents at the times ``t`` (S,) s, linear between the current box and the logged
    keyframes (yaw along the shorter arc). ``agent_boxes`` (N, K, 8) (BoxField: x, y, l, w, h,
    yaw, vx, vy), ``agent_future`` (N, K, T, 3), ``agent_future_valid`` (N, K, T),
    ``agent_mask`` (N, K). Returns ``xy`` (N, K, S, 2), ``yaw`` (N, K, S), ``vel`` (N, K, S, 2)
    m/s (of the segment), ``valid`` (N, K, S) (both ends of the segment valid)."""
    now = np.concatenate([agent_boxes[..., None, :2], agent_boxes[..., None, 5:6]], axis=-1)
    knots = np.concatenate([now, agent_future[..., :3]], axis=-2)  # (N, K, T+1, 3)
    knots[..., 2] = np.unwrap(knots[..., 2], axis=-1)  # yaw along the shorter arc
    kvalid = np.concatenate([agent_mask[..., None], agent_future_valid], axis=-1)
    pos = t / dt
    i0 = np.minimum(np.floor(pos).astype(int), knots.shape[-2] - 2)
    weights = np.zeros((knots.shape[-2], len(t)))  # linear interpolation as one matmul
    weights[i0, np.arange(len(t))] = 1 - (pos - i0)
    weights[i0 + 1, np.arange(len(t))] += pos - i0
    at_t = np.swapaxes(np.swapaxes(knots, -1, -2) @ weights, -1, -2)  # (N, K, S, 3)
    seg_vel = np.diff(knots[..., :2], axis=-2) / dt  # (N, K, T, 2)
    return {
        "xy": at_t[..., :2],
        "yaw": at_t[..., 2],
        "vel": seg_vel[..., i0, :],
        "valid": kvalid[..., i0] & kvalid[..., i0 + 1],
    }


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) whether oriented rectangles overlap (separating-axis test, touching is apart).
    ``a``, ``b`` (M, 5): x, y, length, width, yaw."""
    axes = []
    for box in (a, b):
        c, s = np.cos(box[:, 4]), np.sin(box[:, 4])
        axes.append((np.stack([c, s], -1), np.stack([-s, c], -1)))
    d = b[:, :2] - a[:, :2]
    apart = np.zeros(len(a), bool)
    for u in (*axes[0], *axes[1]):
        r = np.zeros(len(a))
        for box, (ax_l, ax_w) in zip((a, b), axes, strict=True):
            r += box[:, 2] / 2 * np.abs((ax_l * u).sum(-1)) + box[:, 3] / 2 * np.abs(
                (ax_w * u).sum(-1)
            )
        apart |= np.abs((d * u).sum(-1)) >= r
    return ~apart


def at_fault_contacts(
    ego_xy: np.ndarray,
    ego_yaw: np.ndarray,
    ego_speed: np.ndarray,
    ego_size: np.ndarray,
    agent_xy: np.ndarray,
    agent_yaw: np.ndarray,
    agent_size: np.ndarray,
    valid: np.ndarray,
    stopped_mps: float,
) -> np.ndarray:
    """(N,) whether the ego's box overlaps an agent's box at some step where the ego is to
    blame. Ego ``xy`` (N, S, 2), ``yaw`` / ``speed`` (N, S), ``size`` (N, 2) length, width;
    agents ``xy`` (N, K, S, 2), ``yaw`` (N, K, S), ``size`` (N, K, 2); ``valid`` (N, K, S).
    Only pairs whose centres are closer than the sum of the half diagonals are tested."""
    n, k, s = valid.shape
    rel = agent_xy - ego_xy[:, None]
    reach = (np.hypot(*ego_size.T)[:, None] + np.hypot(agent_size[..., 0], agent_size[..., 1])) / 2
    near = valid & ((rel**2).sum(-1) < reach[..., None] ** 2)
    fi, ki, si = np.nonzero(near)
    hit = np.zeros(n, bool)
    if not len(fi):
        return hit
    ego_box = np.column_stack([ego_xy[fi, si], ego_size[fi], ego_yaw[fi, si]])
    ag_box = np.column_stack([agent_xy[fi, ki, si], agent_size[fi, ki], agent_yaw[fi, ki, si]])
    heading = np.stack([np.cos(ego_yaw[fi, si]), np.sin(ego_yaw[fi, si])], -1)
    behind = (rel[fi, ki, si] * heading).sum(-1) < 0.0
    blame = _overlap(ego_box, ag_box) & ~behind & (ego_speed[fi, si] >= stopped_mps)
    hit[fi[blame]] = True
    return hit


def drivable_compliance(
    xy: np.ndarray, yaw: np.ndarray, ego_size: np.ndarray, drivable: np.ndarray, grid: BEVGrid
) -> np.ndarray:
    """(N,) 1.0 where every corner of the ego box (``xy`` (N, S, 2), ``yaw`` (N, S), ``ego_size``
    (N, 2)) lies on a drivable cell of ``drivable`` (N, H, W) (> 0.5) or outside the grid."""
    l, w = ego_size[:, None, 0], ego_size[:, None, 1]
    corners = box_corners(xy[..., 0], xy[..., 1], yaw, l, w)  # (N, S, 4, 2)
    rc = np.floor(world_to_pixel(corners, grid)).astype(int)
    h, wd = drivable.shape[-2:]
    inside = (rc[..., 0] >= 0) & (rc[..., 0] < h) & (rc[..., 1] >= 0) & (rc[..., 1] < wd)
    r, c = np.clip(rc[..., 0], 0, h - 1), np.clip(rc[..., 1], 0, wd - 1)
    frame = np.arange(len(xy))[:, None, None]
    on = drivable[frame, r, c] > 0.5
    return (on | ~inside).all(axis=(1, 2)).astype(float)


def ego_progress(end_xy: np.ndarray, expert_xy: np.ndarray, min_progress_m: float) -> np.ndarray:
    """(N,) EP in [0, 1]: ``end_xy`` (N, 2) projected onto the expert's path (the origin, then
    ``expert_xy`` (N, T, 2)) as arc length, over the path's length; 1 where that is below
    ``min_progress_m``."""
    path = np.concatenate([np.zeros_like(expert_xy[:, :1]), expert_xy], axis=1)
    a, b = path[:, :-1], path[:, 1:]
    seg = b - a
    seg_len = np.linalg.norm(seg, axis=-1)
    rel = end_xy[:, None] - a
    u = np.clip((rel * seg).sum(-1) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(rel - u[..., None] * seg, axis=-1)
    j = np.argmin(dist, axis=1)[:, None]
    start = np.concatenate([np.zeros_like(seg_len[:, :1]), np.cumsum(seg_len, 1)[:, :-1]], 1)
    along = (np.take_along_axis(start, j, 1) + np.take_along_axis(u * seg_len, j, 1))[:, 0]
    total = seg_len.sum(1)
    ep = np.clip(along / np.maximum(total, 1e-12), 0.0, 1.0)
    return np.where(total < min_progress_m, 1.0, ep)


def _contacts(
    track: dict[str, np.ndarray],
    agents: dict[str, np.ndarray],
    ego_size: np.ndarray,
    agent_size: np.ndarray,
    cfg: PlanScoreConfig,
    probe_s: float,
) -> np.ndarray:
    """(N,) at-fault contacts after step 0 with ego and agents moved on at constant velocity for
    ``probe_s`` seconds (0: the tracked positions themselves)."""
    speed = np.linalg.norm(track["vel"], axis=-1)[:, 1:]
    ego_xy = track["xy"][:, 1:] + probe_s * track["vel"][:, 1:]
    ag_xy = agents["xy"][:, :, 1:] + probe_s * agents["vel"][:, :, 1:]
    return at_fault_contacts(
        ego_xy,
        track["yaw"][:, 1:],
        speed,
        ego_size,
        ag_xy,
        agents["yaw"][:, :, 1:],
        agent_size,
        agents["valid"][:, :, 1:],
        cfg.stopped_mps,
    )


def plan_scores(
    plan: Any,
    ego_future: Any,
    ego_future_valid: Any,
    agent_boxes: Any,
    agent_future: Any,
    agent_future_valid: Any,
    agent_mask: Any,
    drivable: Any,
    grid: BEVGrid,
    ego_size: Any = None,
    ego_speed: Any = None,
    ego_past: Any = None,
    ego_past_valid: Any = None,
    cfg: PlanScoreConfig = PlanScoreConfig(),
) -> dict[str, np.ndarray]:
    """Per-frame PDM-style scores of ``plan`` (N, T, 2) (module doc).

    ``ego_future`` (N, T, >=2) the expert's logged future, ``ego_future_valid`` (N, T);
    agents as :func:`interpolate_agents`; ``drivable`` (N, H, W) the drivable-area raster on
    ``grid``; ``ego_size`` (N, >=2) length, width (m; default 4.084 x 1.85); ``ego_speed``
    (N,) m/s (default: the expert's first step); ``ego_past`` (N, P, >=2), ``ego_past_valid``
    (N, P) the logged past (:func:`known_past`). Returns ``{"pdm_score", "nc",
    "dac", "ttc", "ep", "comfort"}`` each (N,) float (NaN where not ``valid``) and ``valid``
    (N,) bool: the expert's future is valid over the whole horizon."""
    plan_xy, expert = _np(plan, float)[..., :2], _np(ego_future, float)[..., :2]
    n = len(plan_xy)
    valid = _np(ego_future_valid, bool).reshape(n, -1).all(axis=1)
    size = np.tile([4.084, 1.85], (n, 1)) if ego_size is None else _np(ego_size, float)
    size = size[:, :2]
    boxes = _np(agent_boxes, float)
    if ego_speed is None:
        speed = np.linalg.norm(expert[:, 0], axis=-1) / cfg.dt
    else:
        speed = _np(ego_speed, float).reshape(n)
    past = known_past(
        None if ego_past is None else _np(ego_past, float),
        None if ego_past_valid is None else _np(ego_past_valid, bool),
        speed,
        cfg.dt,
    )
    track = track_plan(plan_xy, past, cfg)
    agents = interpolate_agents(
        boxes,
        _np(agent_future, float),
        _np(agent_future_valid, bool),
        _np(agent_mask, bool),
        track["t"],
        cfg.dt,
    )
    agent_size = boxes[..., 2:4]
    nc = 1.0 - _contacts(track, agents, size, agent_size, cfg, 0.0)
    ttc = nc.copy()
    for probe in cfg.ttc_probe_s:
        if probe <= cfg.ttc_horizon_s:
            ttc *= 1.0 - _contacts(track, agents, size, agent_size, cfg, probe)
    out = {
        "nc": nc,
        "dac": drivable_compliance(
            track["xy"][:, 1:], track["yaw"][:, 1:], size, _np(drivable, None), grid
        ),
        "ttc": ttc,
        "ep": ego_progress(track["xy"][:, -1], expert, cfg.min_progress_m),
        "comfort": comfort(track, cfg),
    }
    w_ttc, w_ep, w_c = cfg.weights
    weighted = (w_ttc * out["ttc"] + w_ep * out["ep"] + w_c * out["comfort"]) / sum(cfg.weights)
    out = {"pdm_score": out["nc"] * out["dac"] * weighted, **out}
    out = {k: np.where(valid, v, np.nan) for k, v in out.items()}
    return out | {"valid": valid}


def summarise_plan_scores(
    scores: dict[str, np.ndarray], mask: Any = None, suffix: str = ""
) -> dict[str, float]:
    """Means over the valid frames (and ``mask`` (N,) where given) of :func:`plan_scores`:
    ``{"pdm_score" + suffix, "pdm_nc" + suffix, ..., "pdm_frames" + suffix}``; NaN means
    with no frame."""
    keep = scores["valid"] if mask is None else scores["valid"] & np.asarray(mask, bool)
    out: dict[str, float] = {}
    for key in ("pdm_score", *SUB_SCORES):
        name = key if key == "pdm_score" else f"pdm_{key}"
        out[name + suffix] = float(scores[key][keep].mean()) if keep.any() else float("nan")
    out["pdm_frames" + suffix] = int(keep.sum())
    return out
