"""The privileged teacher: causal risk of every object from ground truth, with physics.

Everything is in the ego frame of the keyframe (x forward, y left; m, s, m/s, m/s^2). Time is
sampled every ``dt`` (0.1 s) from 0 to ``horizon`` (4 s); agent futures are the recorded ones
(0.5 s keyframes, linearly interpolated, held at constant velocity past their last valid step).
Three ego motions are compared with each agent's real future:

* **plan**: the expert's recorded future (what happened), to ``FUTURE_STEPS`` x 0.5 = 3 s;
* **no-brake**: the ego keeps its current speed ``v`` along the plan's path (continued along the
  lane the plan ends in, then straight);
* **keep-lane**: the ego keeps ``v`` along its lane centreline at its present lateral offset
  (``lane_offset``), only when the plan leaves the lane (a lane change or a swerve).

Box distance ``d(t)`` is the gap between the ego box and the agent box expanded to its
axis-aligned extent in the ego's heading at ``t`` (exact for parallel boxes, conservative
otherwise). Per agent ``i``, with ``ramp(x, a, b) = clip((x - a) / (b - a), 0, 1)``:

* ``ttc`` (s): first time ``d <= contact_m`` under *no-brake* / *keep-lane*, or, for an agent on
  the ego's path now, ``gap / closing`` (constant speeds);
  ``c_ttc = ramp(ttc, ttc_hi, ttc_lo) * clip(0.4 + |v_rel| / 10, 0.4, 1)`` (impact severity);
* ``c_drac``: deceleration the ego needs to stay behind a lead (same direction, on the path)
  that brakes at ``b`` to a stop, ``a_req = max((v - v_l)+^2 / 2 gap, v^2 / 2 (gap + v_l^2 / 2b))``
  (m/s^2), ``c_drac = ramp(a_req, 1, a_max) * disc``;
* ``c_prox = ramp(d_min, prox_m, 0)^2``, ``d_min`` the closest approach under *plan* (0-3 s);
* ``c_hw = 0.7 ramp(gap / v, headway_hi, headway_lo) * disc`` (time headway to a lead);
* ``c_react = 0.5 max(brake * max(c_ttc_nobrake, c_drac), swerve * c_ttc_keeplane)``: the agent
  forced the expert to brake (``brake = ramp(max planned decel, 0.5, 4)``) or to leave its lane
  (``swerve = ramp(max lateral deviation, 0.5, 3.5)``, on-path agents only);

``risk = 1 - prod_j (1 - c_j)`` (noisy-OR), ``scene_risk = max_i risk_i``; rank 1 is the highest
risk (ties: shorter ``ttc``, then nearer, then lower id). An agent is *on the path* when it is
ahead and overlaps the plan's path laterally (projected, path continued along its lane) or is in
the ego lane (``lane_relation == 0``), or when its future enters the planned path within 3 s:
then ``gap`` is taken at entry ``t_in`` and ``disc = 1 - t_in / 6 s`` discounts the later conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, AgentClass, Command, Frame
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory

TEACHER_ID = "privileged"
PROMPT_VERSION = "physics-v1"


@dataclass(frozen=True)
class PrivilegedConfig:
    """Thresholds of the physics teacher (SI units)."""

    horizon: float = 4.0
    """Counterfactual horizon (s); agent futures past 3 s continue at constant velocity."""
    dt: float = 0.1
    """Time step of the collision check (s)."""
    contact_m: float = 0.3
    """Box gap counted as a collision (m)."""
    ttc_lo: float = 1.5
    """TTC at or below which ``c_ttc`` is 1 (s)."""
    ttc_hi: float = 6.0
    """TTC at or above which ``c_ttc`` is 0 (s)."""
    a_max: float = 5.0
    """Required deceleration that counts as an emergency (m/s^2)."""
    prox_m: float = 2.5
    """Closest predicted gap below which proximity adds risk (m)."""
    headway_lo: float = 0.4
    headway_hi: float = 2.0
    """Time headway (s) range over which ``c_hw`` goes from ``headway_weight`` to 0."""
    headway_weight: float = 0.7
    path_margin: float = 0.3
    """Extra lateral margin of the ego's path corridor (m)."""
    hard_brake: float = 2.0
    """Agent deceleration (m/s^2) that counts as braking in categories and rationales."""


def _ramp(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """0 at ``lo``, 1 at ``hi`` (works for ``hi < lo`` too), clipped."""
    return np.minimum(np.maximum((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0), 1.0)


def _fill_invalid(traj: np.ndarray, valid: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """(K, T+1, 2) positions (step 0 = now, always valid); invalid steps continue from the last
    valid one at the velocity ``vel`` (K, 2)."""
    steps = np.arange(traj.shape[1])
    last = np.maximum.accumulate(np.where(valid, steps, 0), axis=1)  # (K, T+1)
    base = np.take_along_axis(traj, last[..., None], axis=1)
    held = base + vel[:, None, :] * ((steps - last) * KEYFRAME_DT)[..., None]
    return np.where(valid[..., None], traj, held)


def _interp_steps(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(..., T+1, D) values at keyframes 0, 0.5, ... -> (..., S, D) at ``times`` (linear,
    extrapolated from the last segment)."""
    f = times / KEYFRAME_DT
    i0 = np.minimum(np.floor(f).astype(np.int64), keys.shape[-2] - 2)
    w = (f - i0)[:, None]
    return keys[..., i0, :] * (1 - w) + keys[..., i0 + 1, :] * w


def _along(path: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Poses (S, 3) at arc lengths ``s`` (S,) along polyline ``path`` (M, 2), extended straight
    past its end."""
    seg = np.diff(path, axis=0)
    length = np.hypot(seg[:, 0], seg[:, 1])
    keep = length > 1e-6
    if not keep.any():
        return np.zeros((len(s), 3))
    seg, length = seg[keep], length[keep]
    pts = np.concatenate([path[:1], path[1:][keep]])
    cum = np.concatenate([[0.0], np.cumsum(length)])
    j = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    u = (s - cum[j]) / length[j]
    xy = pts[j] + seg[j] * u[:, None]
    return np.column_stack([xy, np.arctan2(seg[j, 1], seg[j, 0])])


def _project(path: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length ``s`` and signed lateral offset ``d`` (left +) of points (N, 2) on a polyline
    (M, 2); the last segment is extended to infinity."""
    a, seg = path[:-1], path[1:] - path[:-1]
    l2 = np.maximum(seg[:, 0] ** 2 + seg[:, 1] ** 2, 1e-18)
    rx, ry = pts[:, None, 0] - a[:, 0], pts[:, None, 1] - a[:, 1]  # (N, M-1)
    u = np.maximum((rx * seg[:, 0] + ry * seg[:, 1]) / l2, 0.0)
    u[:, :-1] = np.minimum(u[:, :-1], 1.0)
    d2 = (rx - u * seg[:, 0]) ** 2 + (ry - u * seg[:, 1]) ** 2
    j = np.argmin(d2, axis=1)
    n = np.arange(len(pts))
    cross = seg[j, 0] * ry[n, j] - seg[j, 1] * rx[n, j]
    length = np.sqrt(l2)
    cum = np.concatenate([[0.0], np.cumsum(length)])
    return cum[j] + u[n, j] * length[j], np.copysign(np.sqrt(d2[n, j]), cross)


@dataclass
class _Agents:
    """Per-agent arrays of one frame, sorted by id (K agents)."""

    ids: np.ndarray
    cls: np.ndarray
    rel: np.ndarray  # lane_relation, nan for None
    now: np.ndarray  # (K, 3) x, y, yaw
    vel: np.ndarray  # (K, 2)
    size: np.ndarray  # (K, 2) length, width
    accel: np.ndarray
    keys: np.ndarray  # (K, T+1, 3) poses at keyframes, step 0 = now
    y_past: np.ndarray  # (K,) lateral position 1 s ago (current ego frame), nan if unknown


def _agents(frame: Frame) -> _Agents:
    ags = sorted(frame.agents, key=lambda a: a.id)
    k, t = len(ags), FUTURE_STEPS
    now = np.array([(a.x, a.y, a.yaw) for a in ags], dtype=np.float64).reshape(k, 3)
    vel = np.array([(a.vx, a.vy) for a in ags], dtype=np.float64).reshape(k, 2)
    fut = np.array([a.future for a in ags], dtype=np.float64).reshape(k, t, 3)
    fv = np.array([a.future_valid for a in ags], dtype=bool).reshape(k, t)
    keys = np.concatenate([now[:, None], fut], axis=1)
    valid = np.concatenate([np.ones((k, 1), bool), fv], axis=1)
    keys[..., :2] = _fill_invalid(keys[..., :2], valid, vel)
    steps = np.arange(t + 1)
    last = np.maximum.accumulate(np.where(valid, steps, 0), axis=1)
    yaw = np.take_along_axis(keys[..., 2], last, axis=1)
    turn = (np.diff(yaw, axis=1) + np.pi) % (2 * np.pi) - np.pi  # unwrapped yaw
    keys[..., 2] = np.concatenate([yaw[:, :1], yaw[:, :1] + np.cumsum(turn, axis=1)], axis=1)
    return _Agents(
        ids=np.array([a.id for a in ags], dtype=np.int64),
        cls=np.array([int(a.cls) for a in ags], dtype=np.int64),
        rel=np.array([np.nan if a.lane_relation is None else a.lane_relation for a in ags]),
        now=now,
        vel=vel,
        size=np.array([(a.length, a.width) for a in ags], dtype=np.float64).reshape(k, 2),
        accel=np.array([a.accel for a in ags], dtype=np.float64),
        keys=keys,
        y_past=np.array([a.past[-2, 1] if a.past_valid[-2] else np.nan for a in ags]),
    )


def _gaps(ego: np.ndarray, ego_size: tuple[float, float], ag: np.ndarray, size: np.ndarray):
    """Box gaps between the ego (S, 3) and agents (K, S, 3) over time.

    Returns ``(dist, dx, dy)`` (K, S): box gap (m, 0 when overlapping) and the agent's centre in
    the ego's body frame at each time."""
    c, s = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    rx, ry = ag[..., 0] - ego[:, 0], ag[..., 1] - ego[:, 1]
    dx, dy = c * rx + s * ry, -s * rx + c * ry
    dyaw = ag[..., 2] - ego[:, 2]
    ac, as_ = np.abs(np.cos(dyaw)), np.abs(np.sin(dyaw))
    hl, hw = size[:, 0:1] / 2, size[:, 1:2] / 2
    gx = np.abs(dx) - ego_size[0] / 2 - (ac * hl + as_ * hw)
    gy = np.abs(dy) - ego_size[1] / 2 - (as_ * hl + ac * hw)
    return np.hypot(np.maximum(gx, 0), np.maximum(gy, 0)), dx, dy


def _first_contact(dist: np.ndarray, times: np.ndarray, contact: float) -> np.ndarray:
    """(K,) first time (s) the gap (K, S) falls to ``contact``, linearly interpolated; inf if
    never."""
    hit = dist <= contact
    first = np.argmax(hit, axis=1)
    any_hit = hit.any(axis=1)
    k = np.arange(len(dist))
    prev = np.maximum(first - 1, 0)
    d0, d1 = dist[k, prev], dist[k, first]
    frac = np.where(d0 > d1, (d0 - contact) / np.maximum(d0 - d1, 1e-9), 0.0)
    t = times[prev] + np.clip(frac, 0, 1) * (times[first] - times[prev])
    return np.where(any_hit, np.where(first == 0, 0.0, t), np.inf)


def _continue_along_lane(path: np.ndarray, frame: Frame, length: float = 80.0) -> np.ndarray:
    """Extend a path (M, 2) by up to ``length`` m along the lane its end lies in (the lane
    whose centreline is nearest and runs the same way), shifted to pass through the end."""
    lanes = [ln.centre for ln in frame.lanes if len(ln.centre) >= 2]
    if not lanes:
        return path
    end, heading = path[-1], path[-1] - path[-2]
    counts = np.array([len(c) for c in lanes])
    starts = np.cumsum(counts) - counts
    pts = np.concatenate(lanes).astype(np.float64)
    owner = np.repeat(np.arange(len(lanes)), counts)
    d2 = (pts[:, 0] - end[0]) ** 2 + (pts[:, 1] - end[1]) ** 2
    near = np.argpartition(d2, 3)[:4] if len(d2) > 4 else np.arange(len(d2))
    for j in near[np.argsort(d2[near])]:
        centre = np.asarray(lanes[owner[j]], np.float64)
        i = min(int(j - starts[owner[j]]), len(centre) - 2)
        if float((centre[i + 1] - centre[i]) @ heading) <= 0:
            continue
        run = np.cumsum(np.hypot(*np.diff(centre[i:], axis=0).T))
        ahead = centre[i + 1 :][run <= length] + (end - centre[i])
        ahead = ahead[(ahead - end) @ heading > 1e-6]
        return np.concatenate([path, ahead]) if len(ahead) else path
    return path


_CATS = list(RiskCategory)
_CLASS = {AgentClass.CAR: "Car", AgentClass.VAN: "Van", AgentClass.TRUCK: "Truck"}


def _where(rel: float, dx: float) -> str:
    side = "ahead" if dx >= 0 else "behind"
    if np.isnan(rel):
        return f"{abs(dx):.0f} m {side} on another road"
    if rel == 0:
        return f"{abs(dx):.0f} m {side} in the ego lane"
    direction = "left" if rel > 0 else "right"
    if abs(rel) == 1:
        return f"{abs(dx):.0f} m {side} in the {direction} lane"
    return f"{abs(dx):.0f} m {side}, {abs(rel):.0f} lanes to the {direction}"


class PrivilegedTeacher:
    """Physics on ground truth (see the module docstring); offline and deterministic."""

    teacher_id = TEACHER_ID
    prompt_version = PROMPT_VERSION

    def __init__(self, config: PrivilegedConfig | None = None) -> None:
        self.config = config or PrivilegedConfig()
        cfg = self.config
        self._times = np.arange(0.0, cfg.horizon + 1e-9, cfg.dt)
        self._plan_n = int(np.searchsorted(self._times, FUTURE_STEPS * KEYFRAME_DT + 1e-9))

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        return [self.assess_frame(f) for f in frames]

    # ------------------------------------------------------------------ one frame
    def features(self, frame: Frame) -> dict[str, np.ndarray]:
        """Per-agent physics (agents sorted by id): every quantity of the module docstring,
        (K,) arrays, plus ``risk`` and the category code ``cat`` (index into RiskCategory)."""
        cfg, times = self.config, self._times
        ego = frame.ego
        v = max(float(ego.speed), 0.0)
        esize = (float(ego.length), float(ego.width))
        ag = _agents(frame)
        k = len(ag.ids)

        # Ego motions. plan: keyframes (0 = origin) -> samples over the 3 s of the plan.
        ekeys = np.concatenate([np.zeros((1, 3)), np.asarray(ego.future, np.float64)])
        evalid = np.concatenate([[True], np.asarray(ego.future_valid, bool)])
        ekeys[:, :2] = _fill_invalid(ekeys[None, :, :2], evalid[None], np.array([[v, 0.0]]))[0]
        plan = _interp_steps(ekeys, times[: self._plan_n])
        path = ekeys[:, :2]
        if np.hypot(*(path[-1] - path[0])) < 1.0:  # (nearly) standing: look straight ahead
            path = np.array([[0.0, 0.0], [1.0, 0.0]])
        path = _continue_along_lane(path, frame)
        nobrake = _along(path, v * times)

        # Planned longitudinal response: speeds between keyframes, and now.
        step = np.hypot(*np.diff(ekeys[:, :2], axis=0).T) / KEYFRAME_DT
        speeds = np.concatenate([[v], step])
        dts = np.concatenate([[KEYFRAME_DT / 2], np.full(len(step) - 1, KEYFRAME_DT)])
        decel = max(-float(ego.accel), float(np.max(-np.diff(speeds) / dts)))
        brake = float(_ramp(decel, 0.5, 4.0))

        keeplane, swerve = None, 0.0
        lane = next((ln for ln in frame.lanes if ln.lane_id == ego.lane_id), None)
        if lane is not None and len(lane.centre) >= 2:
            centre = np.asarray(lane.centre, np.float64)
            s_lane, d_lane = _project(centre, ekeys[:, :2])  # origin first
            s0, d0 = s_lane[:1], d_lane[:1]
            total = np.hypot(*np.diff(centre, axis=0).T).sum()
            dev = np.abs(d_lane[1:] - d0[0])[s_lane[1:] <= total]
            swerve = float(_ramp(dev.max(), 0.5, 3.5)) if dev.size else 0.0
            if swerve > 0:
                shifted = _along(centre, s0[0] + v * times)
                nrm = np.column_stack([-np.sin(shifted[:, 2]), np.cos(shifted[:, 2])])
                keeplane = shifted.copy()
                keeplane[:, :2] += nrm * d0[0]

        if k == 0:
            return {"ids": ag.ids, "risk": np.zeros(0), "swerve": np.array(swerve)}

        traj = _interp_steps(ag.keys, times)  # (K, S, 3)
        d_plan, px, py = _gaps(plan, esize, traj[:, : self._plan_n], ag.size)
        d_nb, _, _ = _gaps(nobrake, esize, traj, ag.size)
        ttc_nb = _first_contact(d_nb, times, cfg.contact_m)
        ttc_kl = np.full(k, np.inf)
        if keeplane is not None:
            d_kl, _, _ = _gaps(keeplane, esize, traj, ag.size)
            ttc_kl = _first_contact(d_kl, times, cfg.contact_m)

        # Now: relation to the ego's path and lane.
        x0, y0 = ag.now[:, 0], ag.now[:, 1]
        s_path, d_path = _project(path, ag.now[:, :2])
        half = (esize[1] + ag.size[:, 1]) / 2 + cfg.path_margin
        ahead = x0 > 0
        on_now = ahead & ((np.abs(d_path) < half) | (ag.rel == 0))
        inside = (np.abs(py) < half[:, None]) & (px > 0)  # (K, S) in the planned path
        enters = inside.any(axis=1) & ~on_now
        t_in = np.where(on_now, 0, np.argmax(inside, axis=1))
        on_path = on_now | (ahead & enters)
        behind_lane = (~ahead) & (np.abs(y0) < half)
        gap = np.where(ahead, s_path, -x0)
        gap = np.where(enters, px[np.arange(k), t_in], gap) - (esize[0] + ag.size[:, 0]) / 2
        gap = np.maximum(gap, 0.5)
        disc = 1.0 - times[t_in] / 6.0  # a conflict that starts later counts less
        v_l = ag.vel[:, 0]  # along the ego's heading
        dyaw = np.abs(np.angle(np.exp(1j * ag.now[:, 2])))
        follow = on_path & (dyaw < 0.6)  # a lead: same direction, on the path
        closing = np.where(ahead, v - v_l, v_l - v)
        lane_ttc = np.where(
            (on_now | behind_lane) & (closing > 0.1), gap / np.maximum(closing, 0.1), np.inf
        )
        ttc = np.minimum(np.minimum(ttc_nb, ttc_kl), lane_ttc)
        v_rel = np.hypot(ag.vel[:, 0] - v, ag.vel[:, 1])
        sev = np.clip(0.4 + v_rel / 10.0, 0.4, 1.0)
        c_ttc = _ramp(ttc, cfg.ttc_hi, cfg.ttc_lo) * sev

        b = np.maximum(-ag.accel, 0.0)
        v_l = np.maximum(v_l, 0.0)
        lead_stop = np.where(b > 0.5, v_l**2 / (2 * np.maximum(b, 0.5)), np.inf)
        lead_stop = np.where(v_l < 0.5, 0.0, lead_stop)
        a_req = np.maximum(np.maximum(v - v_l, 0) ** 2 / (2 * gap), v**2 / (2 * (gap + lead_stop)))
        a_req = np.where(follow, a_req, 0.0)
        c_drac = _ramp(a_req, 1.0, cfg.a_max) * disc

        d_min = d_plan.min(axis=1)
        t_min = times[np.argmin(d_plan, axis=1)]
        c_prox = _ramp(d_min, cfg.prox_m, 0.0) ** 2
        headway = np.where(follow, gap / max(v, 1.0), np.inf)
        c_hw = cfg.headway_weight * _ramp(headway, cfg.headway_hi, cfg.headway_lo) * disc
        c_nb = _ramp(np.minimum(ttc_nb, lane_ttc), cfg.ttc_hi, cfg.ttc_lo) * sev
        c_kl = _ramp(np.minimum(ttc_kl, lane_ttc), cfg.ttc_hi, cfg.ttc_lo) * sev
        c_react = 0.5 * np.maximum(brake * np.maximum(c_nb, c_drac), swerve * c_kl * on_path)
        risk = 1 - (1 - c_ttc) * (1 - c_drac) * (1 - c_prox) * (1 - c_hw) * (1 - c_react)
        risk = np.clip(risk, 0.0, 1.0)

        # Categories.
        crossing = dyaw > 0.6
        outside = (np.abs(y0) >= half) & (ag.rel != 0)
        moves_in = np.abs(traj[:, : self._plan_n, 1]).min(axis=1) < np.abs(y0) - 1.0
        came_in = (np.abs(ag.y_past) >= half) & (np.abs(y0) < half) & (ag.rel == 0)
        cut_in = ahead & ((enters & outside & moves_in) | came_in)
        t_enter = np.where(on_path, times[t_in], np.inf)
        ego_moves = swerve > 0 or frame.command in (Command.CHANGE_LEFT, Command.CHANGE_RIGHT)
        braking = (ag.accel <= -cfg.hard_brake) | (closing > 3.0) | (c_drac > 0.2) | (c_ttc > 0.3)
        interacting = risk >= 0.1
        rules = [  # later rules win
            (RiskCategory.MERGING_CONFLICT, np.isnan(ag.rel) | ego_moves | (np.abs(x0) < 10)),
            (RiskCategory.REAR, (behind_lane | (ag.rel == 0)) & ~ahead & (closing > 0.5)),
            (RiskCategory.FOLLOWING, follow & (gap < np.maximum(3.0 * v, 30.0))),
            (RiskCategory.LEAD_BRAKING, follow & braking),
            (RiskCategory.CUT_IN, cut_in),
            (RiskCategory.CROSSING_CONFLICT, crossing & (np.isnan(ag.rel) | (d_min < 2.0))),
        ]
        cat = np.full(k, _CATS.index(RiskCategory.NONE))
        for category, mask in rules:
            lead = category in (RiskCategory.FOLLOWING, RiskCategory.LEAD_BRAKING)
            cat[mask & (interacting | lead)] = _CATS.index(category)
        return {
            "ids": ag.ids,
            "cls": ag.cls,
            "rel": ag.rel,
            "x": x0,
            "y": y0,
            "gap": gap,
            "closing": closing,
            "accel": ag.accel,
            "speed": np.hypot(ag.vel[:, 0], ag.vel[:, 1]),
            "ttc": ttc,
            "a_req": a_req,
            "d_min": d_min,
            "t_min": t_min,
            "headway": headway,
            "t_enter": t_enter,
            "risk": risk,
            "cat": cat,
            "swerve": np.array(swerve),
            "brake": np.array(brake),
        }

    def assess_frame(self, frame: Frame) -> RiskAssessment:
        f = self.features(frame)
        risk = f["risk"]
        if len(risk) == 0:
            return RiskAssessment(
                frame_id=frame.frame_id, teacher_id=self.teacher_id,
                prompt_version=self.prompt_version, scene_risk=0.0,
            )  # fmt: skip
        dist = np.hypot(f["x"], f["y"])
        order = np.lexsort((f["ids"], dist, f["ttc"], -np.round(risk, 6)))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        rounded = np.round(risk, 4).tolist()
        objects = [
            ObjectRisk(
                object_id=int(f["ids"][i]),
                risk=rounded[i],
                rank=int(rank[i]),
                category=_CATS[f["cat"][i]],
                rationale=self._rationale(f, i, _CATS[f["cat"][i]]),
            )
            for i in order
        ]
        return RiskAssessment(
            frame_id=frame.frame_id,
            teacher_id=self.teacher_id,
            prompt_version=self.prompt_version,
            scene_risk=max(rounded),
            objects=objects,
        )

    @staticmethod
    def _rationale(f: dict[str, np.ndarray], i: int, cat: RiskCategory) -> str:
        """One sentence with the numbers behind the judgement of agent ``i``."""
        name = f"{_CLASS[AgentClass(int(f['cls'][i]))]} {int(f['ids'][i])}"
        rel, x = float(f["rel"][i]), float(f["x"][i])
        where = _where(rel, x)
        lane = where.split(" m ", 1)[1]  # "ahead in the ego lane"
        ttc = float(f["ttc"][i])
        ttc_s = f"TTC {ttc:.1f} s" if np.isfinite(ttc) else "no collision course"
        near = f"closest gap {f['d_min'][i]:.1f} m at {f['t_min'][i]:.1f} s"
        acc, close, gap = float(f["accel"][i]), float(f["closing"][i]), float(f["gap"][i])
        rate = f"closing at {close:.1f} m/s" if close >= 0 else f"opening at {-close:.1f} m/s"
        if cat is RiskCategory.LEAD_BRAKING:
            if acc <= -0.5:
                what = f"brakes at {-acc:.1f} m/s^2"
            elif close > 0 and f["speed"][i] < 0.5:
                what = "is stopped"
            else:
                what = f"is {close:.1f} m/s slower"
            return f"{name} {what} {gap:.0f} m {lane}; {ttc_s}."
        if cat is RiskCategory.FOLLOWING:
            return f"{name} is {gap:.0f} m {lane}, headway {f['headway'][i]:.1f} s, {rate}."
        if cat is RiskCategory.CUT_IN:
            return (
                f"{name} cuts in from the {'left' if f['y'][i] > 0 else 'right'} to {gap:.0f} m"
                f" ahead within"
                f" {f['t_enter'][i]:.1f} s (headway {f['headway'][i]:.1f} s); {ttc_s}."
            )
        if cat is RiskCategory.MERGING_CONFLICT:
            return f"{name} and the ego merge into one path, {where}; {ttc_s}, {near}."
        if cat is RiskCategory.CROSSING_CONFLICT:
            return f"{name} crosses the ego's path, {where}; {ttc_s}, {near}."
        if cat is RiskCategory.REAR:
            return f"{name} approaches {where}, {rate}; {ttc_s}."
        return f"{name} is {where}, {rate}; no conflict ({near})."
