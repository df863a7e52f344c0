"""The privileged teacher: causal risk of every object from ground truth, with physics.

Everything is in the ego frame of the keyframe (x forward, y left; m, s, m/s, m/s^2). Time is
sampled every ``dt`` (0.1 s) from 0 to ``horizon`` (4 s); agent futures are the recorded ones
(0.5 s keyframes, linearly interpolated, held at constant velocity past their last valid step).
By default (``use_plan=False``, prompt version ``intent-v2``) the expert's plan is never read:
the ego's motion is its **route** (its lane at the present lateral offset, continued along the
lane network, at constant speed ``v``: :func:`~rsd.teacher.physics.route_path`), which stands in
for *plan*, *no-brake* and *keep-lane* below; ``brake = swerve = 0`` (no ``c_react``), and
``c_prox`` counts near misses only (a contact under the route is the TTC's). Every agent moves
along its **logged** future (where it *will* be when the ego gets there), and

* ``c_intent = intent * max(c_nb, c_prox)``, ``intent = ramp(dev, intent_lo, intent_hi)``,
  ``dev`` the largest distance (m) between the logged future and the constant-velocity
  extrapolation from now (:func:`~rsd.teacher.physics.cv_departure`): a cut-in, a sudden brake
  or a merge that conflicts with the route counts twice (noisy-OR with the rest).

With ``use_plan=True`` (``intent-v2+plan``, kept for comparison: physics-v1 plus ``c_intent``),
three ego motions are compared with each agent's real future:

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
from typing import Any

import numpy as np

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame
from rsd.teacher.categories import SAME_DIRECTION_RAD, categorise
from rsd.teacher.physics import (
    AgentArrays,
    agent_arrays,
    along,
    box_gaps,
    continue_along_lane,
    cv_departure,
    fill_invalid,
    first_contact,
    interp_steps,
    project,
    ramp,
    route_path,
)
from rsd.teacher.rationale import rationale
from rsd.teacher.schema import ObjectRisk, RiskAssessment, RiskCategory

TEACHER_ID = "privileged"
PROMPT_VERSION = "intent-v2"
"""Cache key of the default teacher (intent, no expert plan); ``use_plan`` adds ``+plan``."""


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
    use_plan: bool = False
    """Judge against the expert's recorded plan (``physics-v1`` behaviour: ``c_prox`` and the
    path from the plan, ``c_react``). Off (default), the ego follows its route instead (its
    lane at the present offset, constant speed), so the teacher never hands the student its
    imitation label; on, for comparison only (prompt version ``intent-v2+plan``)."""
    intent_lo: float = 0.5
    intent_hi: float = 2.5
    """Departure (m) of an agent's logged future from its constant-velocity extrapolation over
    which ``intent`` goes from 0 to 1."""


# Named constants of the physics (SI units); the thresholds users tune are in PrivilegedConfig.
BRAKE_RAMP = (0.5, 4.0)
"""Planned deceleration (m/s^2) over which ``brake`` goes from 0 to 1."""
SWERVE_RAMP = (0.5, 3.5)
"""Planned lateral deviation from the lane (m) over which ``swerve`` goes from 0 to 1."""
STANDING_PATH_M = 1.0
"""A plan shorter than this (m) is a standing ego: its path looks straight ahead."""
DISCOUNT_S = 6.0
"""``disc = 1 - t_in / DISCOUNT_S``: a conflict entering the path later counts less."""
MIN_CLOSING = 0.1
"""Closing speed (m/s) below which an agent on the lane gives no TTC (and the TTC divisor)."""
SEVERITY_BASE, SEVERITY_SPEED = 0.4, 10.0
"""Impact severity ``clip(SEVERITY_BASE + |v_rel| / SEVERITY_SPEED, SEVERITY_BASE, 1)``."""
DRAC_LO = 1.0
"""Required deceleration (m/s^2) at which ``c_drac`` starts (it is 1 at ``a_max``)."""
LEAD_BRAKE_MIN = 0.5
"""Lead deceleration (m/s^2) below which it is not braking (no stopping distance)."""
LEAD_STOPPED = 0.5
"""Lead speed (m/s) below which it is stopped (stopping distance 0)."""
MIN_HEADWAY_SPEED = 1.0
"""Ego speed (m/s) floor of the time-headway divisor."""
MIN_GAP = 0.5
"""Floor of the bumper-to-bumper gap (m)."""
REACT_WEIGHT = 0.5
"""Weight of ``c_react`` (the agent forced the expert to brake or swerve)."""
INTENT_WEIGHT = 1.0
"""Weight of ``c_intent`` (the agent's logged future departs from constant velocity and
conflicts with the ego's route)."""


@dataclass
class _EgoMotion:
    """The three ego motions of one frame, sampled at the teacher's times (ego frame)."""

    v: float
    """Speed now (m/s, >= 0)."""
    size: tuple[float, float]
    """Length, width (m)."""
    keys: np.ndarray
    """(T+1, 3) planned poses at keyframes, 0 = origin."""
    plan: np.ndarray
    """(S_plan, 3) the plan sampled over its 3 s."""
    path: np.ndarray
    """(M, 2) the plan's path, continued along its lane."""
    nobrake: np.ndarray
    """(S, 3) constant speed along ``path``."""
    keeplane: np.ndarray | None
    """(S, 3) constant speed along the lane at the present offset (only when swerving)."""
    brake: float
    swerve: float


_CATS = list(RiskCategory)
_FEATURES = (
    *("ids", "cls", "rel", "x", "y", "gap", "closing", "accel", "speed", "ttc", "a_req"),
    *("d_min", "t_min", "headway", "t_enter", "risk", "cat", "swerve", "brake", "dev"),
    "c_intent",
)
"""The keys of :meth:`PrivilegedTeacher.features`, in order."""


class PrivilegedTeacher:
    """Physics on ground truth (see the module docstring); offline and deterministic."""

    teacher_id = TEACHER_ID
    prompt_version = PROMPT_VERSION

    def __init__(self, config: PrivilegedConfig | None = None) -> None:
        self.config = config or PrivilegedConfig()
        cfg = self.config
        self.prompt_version = PROMPT_VERSION + ("+plan" if cfg.use_plan else "")
        self._times = np.arange(0.0, cfg.horizon + 1e-9, cfg.dt)
        self._plan_n = int(np.searchsorted(self._times, FUTURE_STEPS * KEYFRAME_DT + 1e-9))

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        return [self.assess_frame(f) for f in frames]

    # ------------------------------------------------------------------ one frame
    def features(self, frame: Frame) -> dict[str, np.ndarray]:
        """Per-agent physics (agents sorted by id): every quantity of the module docstring,
        (K,) arrays, plus ``risk`` and the category code ``cat`` (index into RiskCategory)."""
        em = self._ego_motion(frame)
        ag = agent_arrays(frame)
        if len(ag.ids) == 0:
            return {"ids": ag.ids, "risk": np.zeros(0), "swerve": np.array(em.swerve)}
        f = self._conflicts(frame, em, ag)
        f["cat"] = categorise(frame, ag, f, em.v, em.swerve, self._plan_n, self.config.hard_brake)
        f["swerve"], f["brake"] = np.array(em.swerve), np.array(em.brake)
        return {k: f[k] for k in _FEATURES}

    def _ego_motion(self, frame: Frame) -> _EgoMotion:
        """The plan, the no-brake and keep-lane counterfactuals, and how hard the plan brakes
        and swerves."""
        times = self._times
        ego = frame.ego
        v = max(float(ego.speed), 0.0)
        size = (float(ego.length), float(ego.width))
        if not self.config.use_plan:  # the route, not the plan: no imitation label leaks
            path = route_path(frame)
            route = along(path, v * times)
            keys = interp_steps(route, np.arange(FUTURE_STEPS + 1) * KEYFRAME_DT)
            return _EgoMotion(v, size, keys, route[: self._plan_n], path, route, None, 0.0, 0.0)
        # plan: keyframes (0 = origin) -> samples over the 3 s of the plan.
        ekeys = np.concatenate([np.zeros((1, 3)), np.asarray(ego.future, np.float64)])
        evalid = np.concatenate([[True], np.asarray(ego.future_valid, bool)])
        ekeys[:, :2] = fill_invalid(ekeys[None, :, :2], evalid[None], np.array([[v, 0.0]]))[0]
        plan = interp_steps(ekeys, times[: self._plan_n])
        path = ekeys[:, :2]
        if np.hypot(*(path[-1] - path[0])) < STANDING_PATH_M:  # standing: look straight ahead
            path = np.array([[0.0, 0.0], [1.0, 0.0]])
        path = continue_along_lane(path, frame)
        nobrake = along(path, v * times)

        # Planned longitudinal response: speeds between keyframes, and now.
        step = np.hypot(*np.diff(ekeys[:, :2], axis=0).T) / KEYFRAME_DT
        speeds = np.concatenate([[v], step])
        dts = np.concatenate([[KEYFRAME_DT / 2], np.full(len(step) - 1, KEYFRAME_DT)])
        decel = max(-float(ego.accel), float(np.max(-np.diff(speeds) / dts)))
        brake = float(ramp(decel, *BRAKE_RAMP))
        keeplane, swerve = self._keep_lane(frame, ekeys, v)
        return _EgoMotion(v, size, ekeys, plan, path, nobrake, keeplane, brake, swerve)

    def _keep_lane(
        self, frame: Frame, ekeys: np.ndarray, v: float
    ) -> tuple[np.ndarray | None, float]:
        """(keep-lane motion or None, swerve): how far the plan leaves the ego's lane, and the
        ego at constant speed along that lane at its present offset when it does."""
        ego = frame.ego
        lane = next((ln for ln in frame.lanes if ln.lane_id == ego.lane_id), None)
        if lane is None or len(lane.centre) < 2:
            return None, 0.0
        centre = np.asarray(lane.centre, np.float64)
        s_lane, d_lane = project(centre, ekeys[:, :2])  # origin first
        s0, d0 = s_lane[:1], d_lane[:1]
        total = np.hypot(*np.diff(centre, axis=0).T).sum()
        dev = np.abs(d_lane[1:] - d0[0])[s_lane[1:] <= total]
        swerve = float(ramp(dev.max(), *SWERVE_RAMP)) if dev.size else 0.0
        if swerve <= 0:
            return None, swerve
        shifted = along(centre, s0[0] + v * self._times)
        nrm = np.column_stack([-np.sin(shifted[:, 2]), np.cos(shifted[:, 2])])
        keeplane = shifted.copy()
        keeplane[:, :2] += nrm * d0[0]
        return keeplane, swerve

    def _conflicts(self, frame: Frame, em: _EgoMotion, ag: AgentArrays) -> dict[str, Any]:
        """Per-agent conflict terms (``c_ttc``, ``c_drac``, ``c_prox``, ``c_hw``, ``c_react``)
        and the quantities behind them, combined by noisy-OR into ``risk``."""
        cfg, times, v, esize = self.config, self._times, em.v, em.size
        k = len(ag.ids)
        traj = interp_steps(ag.keys, times)  # (K, S, 3)
        d_plan, px, py = box_gaps(em.plan, esize, traj[:, : self._plan_n], ag.size)
        d_nb, _, _ = box_gaps(em.nobrake, esize, traj, ag.size)
        ttc_nb = first_contact(d_nb, times, cfg.contact_m)
        ttc_kl = np.full(k, np.inf)
        if em.keeplane is not None:
            d_kl, _, _ = box_gaps(em.keeplane, esize, traj, ag.size)
            ttc_kl = first_contact(d_kl, times, cfg.contact_m)

        # Now: relation to the ego's path and lane.
        x0, y0 = ag.now[:, 0], ag.now[:, 1]
        s_path, d_path = project(em.path, ag.now[:, :2])
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
        gap = np.maximum(gap, MIN_GAP)
        disc = 1.0 - times[t_in] / DISCOUNT_S  # a conflict that starts later counts less
        v_l = ag.vel[:, 0]  # along the ego's heading
        dyaw = np.abs(np.angle(np.exp(1j * ag.now[:, 2])))
        follow = on_path & (dyaw < SAME_DIRECTION_RAD)  # a lead: same direction, on the path
        closing = np.where(ahead, v - v_l, v_l - v)
        lane_ttc = np.where(
            (on_now | behind_lane) & (closing > MIN_CLOSING),
            gap / np.maximum(closing, MIN_CLOSING),
            np.inf,
        )
        ttc = np.minimum(np.minimum(ttc_nb, ttc_kl), lane_ttc)
        v_rel = np.hypot(ag.vel[:, 0] - v, ag.vel[:, 1])
        sev = np.clip(SEVERITY_BASE + v_rel / SEVERITY_SPEED, SEVERITY_BASE, 1.0)
        c_ttc = ramp(ttc, cfg.ttc_hi, cfg.ttc_lo) * sev

        b = np.maximum(-ag.accel, 0.0)
        v_l = np.maximum(v_l, 0.0)
        lead_stop = np.where(
            b > LEAD_BRAKE_MIN, v_l**2 / (2 * np.maximum(b, LEAD_BRAKE_MIN)), np.inf
        )
        lead_stop = np.where(v_l < LEAD_STOPPED, 0.0, lead_stop)
        a_req = np.maximum(np.maximum(v - v_l, 0) ** 2 / (2 * gap), v**2 / (2 * (gap + lead_stop)))
        a_req = np.where(follow, a_req, 0.0)
        c_drac = ramp(a_req, DRAC_LO, cfg.a_max) * disc

        d_min = d_plan.min(axis=1)
        t_min = times[np.argmin(d_plan, axis=1)]
        c_prox = ramp(d_min, cfg.prox_m, 0.0) ** 2
        if not cfg.use_plan:  # contact at constant speed is the TTC's; proximity is a near miss
            c_prox = np.where(d_min <= cfg.contact_m, 0.0, c_prox)
        headway = np.where(follow, gap / max(v, MIN_HEADWAY_SPEED), np.inf)
        c_hw = cfg.headway_weight * ramp(headway, cfg.headway_hi, cfg.headway_lo) * disc
        c_nb = ramp(np.minimum(ttc_nb, lane_ttc), cfg.ttc_hi, cfg.ttc_lo) * sev
        c_kl = ramp(np.minimum(ttc_kl, lane_ttc), cfg.ttc_hi, cfg.ttc_lo) * sev
        c_react = REACT_WEIGHT * np.maximum(
            em.brake * np.maximum(c_nb, c_drac), em.swerve * c_kl * on_path
        )
        dev = cv_departure(ag)
        c_intent = (
            INTENT_WEIGHT * ramp(dev, cfg.intent_lo, cfg.intent_hi) * np.maximum(c_nb, c_prox)
        )
        risk = 1 - (1 - c_ttc) * (1 - c_drac) * (1 - c_prox) * (1 - c_hw) * (1 - c_react)
        risk = 1 - (1 - risk) * (1 - c_intent)
        return {
            **{"ids": ag.ids, "cls": ag.cls, "rel": ag.rel, "x": x0, "y": y0, "gap": gap},
            **{"closing": closing, "accel": ag.accel, "ttc": ttc, "a_req": a_req},
            **{"d_min": d_min, "t_min": t_min, "headway": headway, "c_ttc": c_ttc},
            **{"speed": np.hypot(ag.vel[:, 0], ag.vel[:, 1]), "c_drac": c_drac},
            **{"t_enter": np.where(on_path, times[t_in], np.inf), "risk": np.clip(risk, 0.0, 1.0)},
            **{"traj": traj, "half": half, "ahead": ahead, "enters": enters, "follow": follow},
            **{"behind_lane": behind_lane, "dyaw": dyaw, "dev": dev, "c_intent": c_intent},
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
                rationale=rationale(f, i, _CATS[f["cat"][i]]),
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
