"""Planning losses: winner-takes-all imitation, the Laplace-mixture likelihood of the expert
trajectory, and VAD-style ego-agent collision and ego-boundary constraints.

Shapes: ``traj`` (B, M, T, 2) waypoints ``(x, y)`` (m, ego frame) for M modes; ``scale``
(B, M, T, 2) Laplace scales (m, > 0); ``logits`` (B, M) mode scores; ``expert`` (B, T, 2) the
expert's future ``(x, y)``; ``valid`` (B, T) bool, the expert's valid steps.

The collision and boundary constraints treat the ego box as aligned with the ego frame's
x axis (heading ~ 0 over the 3 s horizon on highways), as VAD's do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rsd.geometry import BEVGrid, BoxField, inside_grid
from rsd.losses._bev import sample_bev


def _clean(xy: Tensor, valid: Tensor) -> Tensor:
    """``xy`` (..., T, D) with invalid steps (``valid`` (..., T)) set to 0: padding may hold any
    value (even NaN), and a NaN that is masked after use still poisons gradients."""
    return torch.where(valid[..., None], xy, torch.zeros_like(xy))


def winner_mode(traj: Tensor, expert: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """The mode closest to the expert: ``argmin_m ADE_m``, ``ADE_m = mean over valid steps of
    ||traj_m,t - expert_t||`` (m). Returns ``winner`` (B,) long and ``has_target`` (B,) bool
    (at least one valid step; the winner of other samples is meaningless)."""
    v = valid.to(traj.dtype)
    dist = (traj.detach() - _clean(expert, valid)[:, None]).norm(dim=-1)  # (B, M, T)
    dist = torch.where(valid[:, None], dist, torch.zeros_like(dist))
    ade = dist.sum(-1) / v.sum(-1, keepdim=True).clamp_min(1.0)
    return ade.argmin(dim=1), valid.any(dim=1)


def event_weights(expert: Tensor, valid: Tensor, alpha: float, scale: float) -> Tensor:
    """Per-sample imitation weights (B,) that favour the frames where the expert *changes*
    what it does: ``1 + alpha * min(d / scale, 1)``, with ``d`` (m) how far the expert's last
    valid waypoint lies from where its first step, repeated, would have taken it
    (``||p_t - t * p_1||``, t the last valid step): braking, accelerating and turning frames
    score high, steady cruising ~0. The copycat remedy of keyframe-focused imitation (Wen et
    al., 2021): frames where "keep doing what you did" is wrong are rare in expert data, yet they
    are the ones that decide a closed-loop drive. Samples with no valid step get weight 1."""
    t = torch.arange(1, expert.shape[1] + 1, device=expert.device, dtype=expert.dtype)
    last = (valid * t).argmax(dim=1)  # index of the last valid step (0 if none)
    b = torch.arange(expert.shape[0], device=expert.device)
    first = _clean(expert, valid)[:, 0]
    end = _clean(expert, valid)[b, last]
    d = (end - (last + 1).to(expert.dtype)[:, None] * first).norm(dim=-1)
    ok = valid.all(dim=1) | (valid[:, 0] & valid.any(dim=1))
    return 1.0 + alpha * torch.where(ok, (d / scale).clamp(max=1.0), torch.zeros_like(d))


def imitation_losses(
    traj: Tensor,
    logits: Tensor | None,
    expert: Tensor,
    valid: Tensor,
    weights: Tensor | None = None,
) -> dict[str, Tensor]:
    """Winner-takes-all terms:

    * ``plan_l1`` (m): ``|x - x*| + |y - y*|`` of the winner mode, mean over valid steps, then
      over samples with a target;
    * ``plan_cls`` (nats): cross-entropy of ``logits`` toward the winner (when given).

    ``weights`` (B,) multiply each sample's terms (the mean still divides by the number of
    samples with a target, so weights above 1 make those samples count more in absolute terms).
    """
    winner, has = winner_mode(traj, expert, valid)
    b = traj.shape[0]
    best = traj[torch.arange(b, device=traj.device), winner]  # (B, T, 2)
    expert = _clean(expert, valid)
    err = torch.where(valid[..., None], (best - expert).abs(), torch.zeros_like(best)).sum(-1)
    per_sample = err.sum(-1) / valid.sum(-1).clamp_min(1).to(traj.dtype)
    n = has.sum().clamp_min(1).to(traj.dtype)
    w = has.to(traj.dtype) if weights is None else has * weights.to(traj.dtype)
    out = {"plan_l1": (per_sample * w).sum() / n}
    if logits is not None:
        ce = F.cross_entropy(logits, winner, reduction="none")
        out["plan_cls"] = (ce * w).sum() / n
    return out


def mixture_nll(
    traj: Tensor, scale: Tensor, logits: Tensor | None, expert: Tensor, valid: Tensor
) -> Tensor:
    """Per-sample negative log-likelihood (nats) of the expert trajectory under the Laplace
    mixture, (B,):

    ``NLL = -log sum_m pi_m prod_{t valid, d in (x, y)} Laplace(y_td | mu_mtd, b_mtd)``
    ``    = -logsumexp_m [ log pi_m - sum_{t, d} ( log(2 b_mtd) + |y_td - mu_mtd| / b_mtd ) ]``

    with ``pi = softmax(logits)`` (uniform without logits) and ``b`` in metres (the density is
    per m^2 per step). A sample with no valid step gets 0.
    """
    b_ = scale.clamp_min(1e-6)
    expert = _clean(expert, valid)
    step = torch.log(2 * b_) + (expert[:, None] - traj).abs() / b_  # (B, M, T, 2)
    step = torch.where(valid[:, None, :, None], step, torch.zeros_like(step))
    log_lik = -step.sum(dim=(-1, -2))  # (B, M)
    if logits is None:
        log_pi = torch.full_like(log_lik, -math.log(traj.shape[1]))
    else:
        log_pi = F.log_softmax(logits, dim=-1)
    nll = -torch.logsumexp(log_pi + log_lik, dim=-1)
    return torch.where(valid.any(dim=-1), nll, torch.zeros_like(nll))


def _penetration(
    ego_xy: Tensor,
    ego_half: Tensor,
    agent_xy: Tensor,
    agent_yaw: Tensor,
    agent_lw: Tensor,
    margin_lon: float,
    margin_lat: float,
) -> Tensor:
    """Margin violation (m) of the ego box vs agent boxes, (B, K, T).

    ``gap_x = |x_e - x_a| - (l_e / 2 + ex_a / 2)`` and ``gap_y = |y_e - y_a| - (w_e / 2 +
    ey_a / 2)`` are the clearances along x and y between the ego box and the agent's
    axis-aligned extent ``ex_a = l |cos yaw| + w |sin yaw|``, ``ey_a = l |sin yaw| + w |cos yaw|``.
    The boxes grown by the margins overlap when both ``gap_x < margin_lon`` and ``gap_y <
    margin_lat``; the violation is ``min(relu(margin_lon - gap_x), relu(margin_lat - gap_y))``,
    the shortest move (m) that restores the margin.

    ``ego_xy`` (B, T, 2), ``ego_half`` (B, 2) half length / width; ``agent_xy`` (B, K, T, 2),
    ``agent_yaw`` (B, K, T), ``agent_lw`` (B, K, 2).
    """
    cos, sin = agent_yaw.cos().abs(), agent_yaw.sin().abs()
    length, width = agent_lw[..., 0, None], agent_lw[..., 1, None]
    half_x = (length * cos + width * sin) / 2 + ego_half[:, None, None, 0]
    half_y = (length * sin + width * cos) / 2 + ego_half[:, None, None, 1]
    gap_x = (ego_xy[:, None, :, 0] - agent_xy[..., 0]).abs() - half_x
    gap_y = (ego_xy[:, None, :, 1] - agent_xy[..., 1]).abs() - half_y
    return torch.minimum(F.relu(margin_lon - gap_x), F.relu(margin_lat - gap_y))


def collision_loss(
    plan: Tensor,
    ego_size: Tensor,
    agent_future: Tensor,
    agent_boxes: Tensor,
    agent_valid: Tensor,
    expert: Tensor,
    expert_valid: Tensor,
    margin_lon: float = 1.0,
    margin_lat: float = 0.5,
) -> Tensor:
    """Ego-agent collision constraint (m): the margin violation (see :func:`_penetration`) of
    the ego box placed at each planned waypoint vs every valid agent box at the same future
    step, summed over agents, averaged over the B * T steps.

    ``plan`` (B, T, 2); ``ego_size`` (B, 3) l, w, h; ``agent_future`` (B, K, T, 3) x, y, yaw;
    ``agent_boxes`` (B, K, 8) (sizes); ``agent_valid`` (B, K, T) bool. Pairs (agent, step) where
    the expert itself (``expert`` (B, T, 2) at a valid step) violates the margin are left out:
    the plan cannot be asked to do better than the demonstration (as VAD's metric does).
    """
    ego_half = ego_size[:, :2] / 2
    expert = _clean(expert, expert_valid)
    agent_future = _clean(agent_future, agent_valid)
    lw = agent_boxes[..., BoxField.LENGTH : BoxField.WIDTH + 1]
    args = (agent_future[..., :2], agent_future[..., 2], lw, margin_lon, margin_lat)
    violation = _penetration(plan, ego_half, *args)
    with torch.no_grad():
        expert_hits = (_penetration(expert, ego_half, *args) > 0) & expert_valid[:, None, :]
    keep = agent_valid & ~expert_hits
    violation = torch.where(keep, violation, torch.zeros_like(violation))
    return violation.sum() / max(plan.shape[0] * plan.shape[1], 1)


def boundary_loss(
    plan: Tensor, drivable: Tensor, grid: BEVGrid, expert: Tensor, expert_valid: Tensor
) -> Tensor:
    """Ego-boundary constraint (dimensionless, in [0, 1]): ``1 - drivable(p_t)`` read
    bilinearly from the ground-truth drivable map ``drivable`` (B, H, W) at each planned
    waypoint ``plan`` (B, T, 2), averaged over the B * T steps.

    Waypoints outside the grid (no map there) and steps where the expert's own waypoint is off
    the drivable area (``< 0.5``) are left out.
    """
    off = 1.0 - sample_bev(drivable, plan, grid)
    expert = _clean(expert, expert_valid)
    with torch.no_grad():
        expert_off = (sample_bev(drivable, expert, grid) < 0.5) & expert_valid
    keep = inside_grid(plan.detach(), grid) & ~expert_off
    off = torch.where(keep, off, torch.zeros_like(off))
    return off.sum() / max(plan.shape[0] * plan.shape[1], 1)


def likely_mode(traj: Tensor, logits: Tensor | None) -> Tensor:
    """(B, T, 2) waypoints of the most likely mode (mode 0 without logits)."""
    if logits is None:
        return traj[:, 0]
    idx = logits.argmax(dim=-1)
    return traj[torch.arange(traj.shape[0], device=traj.device), idx]


__all__ = [
    "boundary_loss",
    "collision_loss",
    "imitation_losses",
    "likely_mode",
    "mixture_nll",
    "winner_mode",
]
