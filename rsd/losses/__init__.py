"""Training losses: pure functions returning dicts of named terms (no state).

:func:`total_loss` is the one entry point for training: it reads a model's outputs and the
batch's targets (keys and shapes in :mod:`rsd.models.protocol`), computes every term that
applies (:func:`loss_terms`: detection, map, planning and distillation steps), weights it by
:class:`LossWeights` and adds ``"loss"``, their sum. Modules:

* :mod:`rsd.losses.perception`: CenterNet-style detection targets and losses, the BEV map BCE;
* :mod:`rsd.losses.planning`: winner-takes-all imitation, the Laplace-mixture NLL, VAD-style
  collision and boundary constraints;
* :mod:`rsd.losses.risk`: risk distillation (map L1, agent L1, pairwise ranking) and the
  trajectory likelihood constraint (risk-weighted NLL, risk-mass penalty).

``risk=False`` trains the driving model alone (its likelihood term is ``plan_nll``, the plain
mixture NLL); ``risk=True`` (the teacher's risk targets enter the loss) replaces ``plan_nll`` by
``traj_nll``, the same NLL weighted per sample by ``1 + risk_alpha * scene_risk``, adds the
risk-mass penalty ``traj_risk_mass`` and, for a model with a RiskHead, the distillation terms.
So the two differ only by what RSD adds. Which applies to a training run is its task's choice
(:mod:`rsd.tasks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from rsd.config import ConfigError
from rsd.geometry import BEVGrid, TargetChannel
from rsd.losses.perception import detection_losses, detection_targets, focal_loss, map_loss
from rsd.losses.planning import (
    boundary_loss,
    collision_loss,
    event_weights,
    imitation_losses,
    likely_mode,
    mixture_nll,
    winner_mode,
)
from rsd.losses.risk import (
    DISTILL_KINDS,
    agent_risk_readout,
    distill_agent_loss,
    distill_map_loss,
    pool_risk_target,
    rank_loss,
    risk_mass_loss,
    risk_weighted_nll,
    risk_weights,
    student_agent_risk,
    student_risk_map,
)

TERMS = (
    "det_heatmap",
    "det_offset",
    "det_size",
    "det_yaw",
    "det_vel",
    "map",
    "plan_l1",
    "plan_cls",
    "plan_nll",
    "plan_collision",
    "plan_boundary",
    "distill_map",
    "distill_agent",
    "distill_rank",
    "traj_nll",
    "traj_risk_mass",
)
"""Every term :func:`total_loss` can return (besides ``"loss"``); each has a weight."""


@dataclass(frozen=True)
class LossWeights:
    """Weight of every loss term (a weight of 0 skips the term) and the few parameters that
    shape the terms. Units of each term in :func:`loss_terms`."""

    det_heatmap: float = 1.0
    det_offset: float = 1.0
    det_size: float = 1.0
    det_yaw: float = 1.0
    det_vel: float = 0.5
    map: float = 1.0
    plan_l1: float = 1.0
    """Winner-takes-all L1 (m)."""
    plan_cls: float = 0.5
    """Mode classification toward the winner."""
    plan_nll: float = 0.1
    """Mixture NLL of the expert trajectory (baseline variant)."""
    plan_collision: float = 1.0
    plan_boundary: float = 1.0
    distill_map: float = 1.0
    distill_agent: float = 0.5
    distill_rank: float = 0.5
    traj_nll: float = 0.1
    """Risk-weighted mixture NLL (``risk=True``; replaces ``plan_nll``)."""
    traj_risk_mass: float = 1.0

    risk_alpha: float = 1.0
    """``traj_nll`` weighs a sample by ``1 + risk_alpha * scene_risk``."""
    risk_imitation_alpha: float = 0.0
    """``risk=True`` only: ``plan_l1`` and ``plan_cls`` weigh a sample by
    ``1 + risk_imitation_alpha * scene_risk`` too (0: unweighted). The NLL carries weight 0.1,
    so ``risk_alpha`` alone barely changes what the planner learns; this puts the teacher's
    risk on the main imitation terms."""
    plan_event_alpha: float = 0.0
    """``plan_l1`` and ``plan_cls`` weigh a sample by ``1 + plan_event_alpha * min(d /
    plan_event_scale, 1)``, ``d`` (m) how far the expert's plan departs from repeating its
    first step (:func:`~rsd.losses.planning.event_weights`: braking, yielding, turning frames
    count more; 0: unweighted). Any variant."""
    plan_event_scale: float = 5.0
    """Departure (m) at which ``plan_event_alpha``'s weight saturates."""
    distill_loss: str = "l1"
    """``distill_map`` / ``distill_agent`` as ``l1`` or ``bce`` (soft-label cross-entropy: the
    conditional mean, not L1's median; see :func:`~rsd.losses.risk._elementwise`)."""
    distill_balance: float = 0.0
    """With > 0, ``distill_map`` averages the cells whose teacher risk exceeds this and the
    other cells separately and adds the two means (see :func:`distill_map_loss`); 0: the
    plain mean over all cells."""
    rank_margin: float = 0.1
    """Largest margin of the ranking hinge, in the unit of ``agent_risk_pred`` (probability);
    a pair's margin is capped by the gap between the teacher's risks."""
    risk_mass_threshold: float = 0.0
    """Risk below this does not count in ``traj_risk_mass`` (0: the map as is)."""
    distill_full_grid: bool = False
    """Where the distillation terms read a RiskHead's map. False (the default): on its feature
    grid (``risk_logits_feat``), the teacher's map max-pooled to it
    (:func:`~rsd.losses.risk.pool_risk_target`), agents read out there too; True: upsampled to
    the full BEV grid first (the earlier recipe: ~4x the cells and an upsampling in the
    training step, for a map the planner reads on the feature grid anyway)."""
    collision_margin_lon: float = 1.0
    """Clearance (m) along x below which ``plan_collision`` penalises (both margins must be
    violated)."""
    collision_margin_lat: float = 0.5
    """Clearance (m) along y below which ``plan_collision`` penalises."""
    det_min_overlap: float = 0.1
    """IoU kept by a centre shift of one Gaussian radius (see ``gaussian_radius``)."""
    det_min_radius: int = 1
    """Smallest Gaussian radius (feature cells)."""
    focal_alpha: float = 2.0
    focal_beta: float = 4.0

    def __post_init__(self) -> None:
        if self.distill_loss not in DISTILL_KINDS:
            raise ConfigError(
                f"loss.distill_loss must be in {DISTILL_KINDS}: {self.distill_loss!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                continue
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"loss.{f.name} must be finite and >= 0, got {value!r}")
        if not 0 < self.det_min_overlap < 1:
            raise ConfigError("loss.det_min_overlap must be in (0, 1)")
        if not self.plan_event_scale > 0:
            raise ConfigError("loss.plan_event_scale must be > 0 (m)")
        if not self.risk_mass_threshold < 1:
            raise ConfigError("loss.risk_mass_threshold must be < 1")


def loss_terms(
    outputs: dict[str, Tensor],
    targets: dict[str, Any],
    weights: LossWeights,
    grid: BEVGrid,
    stride: int,
    *,
    risk: bool,
) -> dict[str, Tensor]:
    """Unweighted terms (scalars) that apply to ``outputs`` and ``targets``; names in
    :data:`TERMS`. Which terms appear depends only on the keys present, ``risk`` and the
    nonzero weights, never on the batch's content: a term with nothing to score (no agents, no
    frame with a teacher answer) is a 0 that still backpropagates.

    * ``det_*``: with ``det_heatmap``; focal loss (dimensionless) and L1 at the centres of
      offset (feature cells), log size, yaw sin/cos, velocity (m/s), per object;
    * ``map``: BCE (nats) of ``map_logits`` vs ``target_maps``;
    * ``plan_l1`` (m), ``plan_cls`` (nats): winner-takes-all on ``plan_traj`` / ``plan_logits``
      (a model with only ``plan`` (B, T, 2) counts as one mode);
    * ``plan_nll`` (``risk=False``) or ``traj_nll`` (``risk=True``, risk-weighted): mixture
      NLL (nats), with ``plan_scale``;
    * ``plan_collision`` (m), ``plan_boundary`` (in [0, 1]): on the most likely mode;
    * ``risk=True`` only, frames with ``risk_valid``: ``distill_map`` (L1 of ``risk_map``),
      ``distill_agent`` (L1 of the student's agent risk over agents the teacher judged, real and
      in the grid), ``distill_rank`` (ranking hinge on it, same agents), ``traj_risk_mass``
      (probability mass on risky cells, in [0, 1]). The student's agent risk is
      ``outputs["agent_risk_pred"]`` when given, else read out of ``risk_logits`` at the
      target ``agent_boxes`` (:func:`~rsd.losses.risk.agent_risk_readout`).
    """
    if not isinstance(risk, bool):
        raise ValueError(f"risk must be True or False, got {risk!r}")
    rsd = risk
    terms = detection_terms(outputs, targets, weights, grid, stride)
    if "map_logits" in outputs and "target_maps" in targets and _on(weights, "map"):
        terms["map"] = map_loss(outputs["map_logits"], targets["target_maps"])
    terms.update(planning_terms(outputs, targets, weights, grid, rsd))
    if rsd:
        terms.update(distillation_terms(outputs, targets, weights, grid))
    return terms


def _on(weights: LossWeights, name: str) -> bool:
    return getattr(weights, name) > 0


def detection_terms(
    outputs: dict[str, Tensor],
    targets: dict[str, Any],
    weights: LossWeights,
    grid: BEVGrid,
    stride: int,
) -> dict[str, Tensor]:
    """The ``det_*`` terms of :func:`loss_terms` (none without ``det_heatmap`` or agents)."""
    w = weights
    det_names = [n for n in TERMS if n.startswith("det_") and n in outputs and _on(w, n)]
    if "det_heatmap" not in outputs or not det_names or "agent_boxes" not in targets:
        return {}
    heat = outputs["det_heatmap"]
    encoded = detection_targets(
        targets,
        grid,
        stride,
        heat.shape[1],
        min_overlap=w.det_min_overlap,
        min_radius=w.det_min_radius,
    )
    if encoded["heatmap"].shape[-2:] != heat.shape[-2:]:
        raise ValueError(
            f"det_heatmap is {tuple(heat.shape[-2:])}, but the grid {grid.shape} at stride"
            f" {stride} gives {tuple(encoded['heatmap'].shape[-2:])}"
        )
    return detection_losses(
        {n: outputs[n] for n in det_names}, encoded, alpha=w.focal_alpha, beta=w.focal_beta
    )


def _plan_modes(outputs: dict[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
    """(B, M, T, 2) trajectories and (B, M) logits (None for a single-mode planner: M = 1)."""
    traj = outputs.get("plan_traj")
    if traj is None and "plan" in outputs:
        traj = outputs["plan"][:, None]
    logits = outputs.get("plan_logits") if "plan_traj" in outputs else None
    return traj, logits


def planning_terms(
    outputs: dict[str, Tensor],
    targets: dict[str, Any],
    weights: LossWeights,
    grid: BEVGrid,
    rsd: bool,
) -> dict[str, Tensor]:
    """``plan_l1``, ``plan_cls``, ``plan_nll`` / ``traj_nll``, ``plan_collision``,
    ``plan_boundary`` and (``rsd``: ``risk=True``) ``traj_risk_mass`` of :func:`loss_terms`."""
    traj, logits = _plan_modes(outputs)
    if traj is None or "ego_future" not in targets:
        return {}
    w, terms = weights, {}
    risk_valid = targets.get("risk_valid")
    risk_known = rsd and risk_valid is not None and "scene_risk" in targets
    expert = targets["ego_future"][..., :2].to(traj.dtype)
    if "ego_future_valid" in targets:
        valid = targets["ego_future_valid"].bool()
    else:
        valid = torch.ones(expert.shape[:2], dtype=torch.bool, device=expert.device)
    imit_w = None
    if risk_known and w.risk_imitation_alpha > 0:
        imit_w = risk_weights(
            targets["scene_risk"].to(traj.dtype), risk_valid, w.risk_imitation_alpha
        )
    if w.plan_event_alpha > 0:
        ev = event_weights(expert, valid, w.plan_event_alpha, w.plan_event_scale)
        imit_w = ev if imit_w is None else imit_w * ev
    imitation = imitation_losses(traj, logits, expert, valid, imit_w)
    terms.update({n: v for n, v in imitation.items() if _on(w, n)})

    nll_name = "traj_nll" if rsd else "plan_nll"
    if "plan_traj" in outputs and "plan_scale" in outputs and _on(w, nll_name):
        nll = mixture_nll(traj, outputs["plan_scale"], logits, expert, valid)
        sample_w = torch.ones_like(nll)
        if risk_known:
            sample_w = risk_weights(targets["scene_risk"].to(nll.dtype), risk_valid, w.risk_alpha)
        terms[nll_name] = risk_weighted_nll(nll, valid.any(dim=-1), sample_w)

    plan = likely_mode(traj, logits)
    agent_keys = ("agent_future", "agent_future_valid", "agent_boxes", "agent_mask")
    if _on(w, "plan_collision") and "ego_size" in targets and all(k in targets for k in agent_keys):
        terms["plan_collision"] = collision_loss(
            plan,
            targets["ego_size"].to(traj.dtype),
            targets["agent_future"].to(traj.dtype),
            targets["agent_boxes"].to(traj.dtype),
            targets["agent_future_valid"] & targets["agent_mask"][..., None],
            expert,
            valid,
            w.collision_margin_lon,
            w.collision_margin_lat,
        )
    if _on(w, "plan_boundary") and "target_maps" in targets:
        drivable = targets["target_maps"][:, TargetChannel.DRIVABLE]
        terms["plan_boundary"] = boundary_loss(plan, drivable, grid, expert, valid)

    if rsd and risk_valid is not None and "risk_map" in targets and _on(w, "traj_risk_mass"):
        terms["traj_risk_mass"] = risk_mass_loss(
            traj, logits, targets["risk_map"], risk_valid, grid, w.risk_mass_threshold
        )
    return terms


def distillation_terms(
    outputs: dict[str, Tensor], targets: dict[str, Any], weights: LossWeights, grid: BEVGrid
) -> dict[str, Tensor]:
    """``distill_map``, ``distill_agent``, ``distill_rank`` of :func:`loss_terms`
    (``risk=True``)."""
    w, terms = weights, {}
    if targets.get("risk_valid") is None:
        return terms
    risk_valid = targets["risk_valid"].bool()
    full = bool(w.distill_full_grid)
    pair = student_risk_map(outputs, targets["risk_map"], full) if "risk_map" in targets else None
    if pair is not None and _on(w, "distill_map"):
        terms["distill_map"] = distill_map_loss(
            *pair, risk_valid, w.distill_balance, w.distill_loss
        )
    if "agent_risk_valid" not in targets or "agent_mask" not in targets:
        return terms
    pred = student_agent_risk(outputs, targets, grid, full)
    if pred is None:
        return terms
    # the student reads agents out of its map: those outside the grid have no score
    agent_ok = targets["agent_risk_valid"] & targets["agent_mask"] & risk_valid[:, None]
    if "agent_in_grid" in targets:
        agent_ok = agent_ok & targets["agent_in_grid"]
    target = targets.get("agent_risk")
    if target is not None and _on(w, "distill_agent"):
        terms["distill_agent"] = distill_agent_loss(pred, target, agent_ok, w.distill_loss)
    if "agent_rank" in targets and _on(w, "distill_rank"):
        terms["distill_rank"] = rank_loss(
            pred, targets["agent_rank"], agent_ok, w.rank_margin, target
        )
    return terms


def total_loss(
    outputs: dict[str, Tensor],
    targets: dict[str, Any],
    weights: LossWeights,
    grid: BEVGrid,
    stride: int,
    *,
    risk: bool,
) -> dict[str, Tensor]:
    """Every term of :func:`loss_terms` multiplied by its weight, plus ``"loss"``, their sum
    (what training backpropagates). ``stride``: BEV cells per detection feature cell
    (the model's ``feature_stride``)."""
    terms = loss_terms(outputs, targets, weights, grid, stride, risk=risk)
    out = {name: getattr(weights, name) * value for name, value in terms.items()}
    if not out:
        raise ValueError("no loss term applies: outputs and targets share no known keys")
    total = torch.stack(list(out.values())).sum()
    out["loss"] = total
    return out


__all__ = [
    "TERMS",
    "agent_risk_readout",
    "detection_terms",
    "distillation_terms",
    "planning_terms",
    "student_agent_risk",
    "student_risk_map",
    "LossWeights",
    "boundary_loss",
    "collision_loss",
    "detection_losses",
    "detection_targets",
    "distill_agent_loss",
    "distill_map_loss",
    "pool_risk_target",
    "focal_loss",
    "imitation_losses",
    "likely_mode",
    "loss_terms",
    "map_loss",
    "mixture_nll",
    "rank_loss",
    "risk_mass_loss",
    "risk_weighted_nll",
    "risk_weights",
    "total_loss",
    "winner_mode",
]
