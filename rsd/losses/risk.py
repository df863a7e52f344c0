"""Risk Semantic Distillation losses: the student's risk attention vs the teacher's targets, and
the trajectory likelihood constraint (risk-weighted mixture NLL + risk-mass penalty).

Teacher targets (``rsd.teacher.risk_map.RiskTargetDataset``): ``risk_map`` (B, 1, H, W) in
[0, 1], ``agent_risk`` (B, K) in [0, 1], ``agent_rank`` (B, K) (1 = most risky, 0 = unknown),
``agent_risk_valid`` (B, K), ``risk_valid`` (B,) (False: the teacher has no usable answer for the
frame, whose targets are zeros and must teach nothing), ``scene_risk`` (B,) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rsd.geometry import BEVGrid, BoxField, world_to_pixel
from rsd.losses._bev import sample_bev


def _sample_points(maps: Tensor, xy: Tensor, grid: BEVGrid) -> Tensor:
    """``maps`` (N, 1, h, w) covering ``grid`` read bilinearly at ``xy`` (N, P, 2) (m), the
    border cell outside -> (N, P)."""
    rc = world_to_pixel(xy, grid)
    # grid_sample, align_corners=False: -1 and +1 are the outer edges of the border cells.
    loc = torch.stack([rc[..., 1] / grid.width * 2 - 1, rc[..., 0] / grid.height * 2 - 1], -1)
    out = F.grid_sample(
        maps, loc[:, :, None].to(maps.dtype), padding_mode="border", align_corners=False
    )
    return out[:, 0, :, 0]


def agent_risk_readout(
    risk_logits: Tensor,
    agent_boxes: Tensor,
    grid: BEVGrid,
    agent_future: Tensor | None = None,
    future_valid: Tensor | None = None,
) -> Tensor:
    """The student's risk logit at each agent -> (B, K).

    ``risk_logits`` (B, R, h, w) covering ``grid``'s extent at any resolution (the feature
    grid or the full one; read in normalised coordinates). With one channel (or no
    ``agent_future``) it is read out bilinearly at the centres of ``agent_boxes`` (B, K, >=2)
    (ego frame, m). With space-time channels (R > 1) channel ``r`` is read at the agent's
    logged future position ``agent_future[:, :, r]`` (B, K, T, >=2) where ``future_valid``
    (B, K, T) holds, and the logits averaged over those steps (channel 0 at the current
    centre when none is valid).

    Points outside the grid read the nearest border cell: score only agents with
    ``agent_mask & agent_in_grid``. Ground truth (the boxes) enters here, on the loss side; the
    model itself never sees it. Its sigmoid is ``agent_risk_pred``, in [0, 1].
    """
    b, r = risk_logits.shape[:2]
    now = _sample_points(risk_logits[:, :1], agent_boxes[..., : BoxField.Y + 1], grid)
    if r == 1 or agent_future is None:
        return now
    k = agent_boxes.shape[1]
    steps = min(r, agent_future.shape[2])
    xy = agent_future[:, :, :steps, :2].transpose(1, 2).reshape(b * steps, k, 2)
    maps = risk_logits[:, :steps].reshape(b * steps, 1, *risk_logits.shape[-2:])
    vals = _sample_points(maps, xy, grid).reshape(b, steps, k).transpose(1, 2)  # (B, K, S)
    ok = (
        torch.ones_like(vals, dtype=torch.bool)
        if future_valid is None
        else future_valid[:, :, :steps].bool()
    )
    n = ok.sum(dim=-1)
    mean = torch.where(ok, vals, torch.zeros_like(vals)).sum(dim=-1) / n.clamp_min(1)
    return torch.where(n > 0, mean, now)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` (same shape) holds; 0 (in the graph) where none does."""
    kept = torch.where(mask, values, torch.zeros_like(values))
    return kept.sum() / mask.sum().clamp_min(1).to(values.dtype)


def pool_risk_target(target: Tensor, size: tuple[int, int]) -> Tensor:
    """The teacher's maps (B, R, H, W) on a coarser grid (B, R, *size) of the same extent: each
    coarse cell takes the max of the fine cells it covers (adaptive max-pool), so a footprint
    smaller than a feature cell keeps its full value instead of fading in an average. The map
    L1 of the feature-grid distillation compares the student's map with this."""
    return F.adaptive_max_pool2d(target, size)


DISTILL_KINDS = ("l1", "bce")
"""How a distillation term compares the student's risk with the teacher's (``kind``)."""


def _elementwise(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-element distance of probabilities ``pred`` and ``target`` (same shape): ``l1``
    ``|pred - target|``, or ``bce`` the binary cross-entropy with the teacher's risk as a soft
    label, ``-(t log p + (1 - t) log(1 - p))`` (p clamped to [1e-6, 1 - 1e-6]).

    L1 is minimised by the conditional *median* of the target: where the features leave it
    open whether a cell is risky and it is risky less than half the time, the best L1 answer is
    0, and its gradient through the sigmoid (``sign * p (1 - p)``) vanishes as the map empties
    (the collapse of the student's map). BCE is minimised by the conditional *mean* and its
    gradient on the logit is ``p - t``, which does not vanish on a risky cell."""
    t = target.to(pred.dtype)
    if kind == "l1":
        return (pred - t).abs()
    if kind == "bce":
        return F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), t, reduction="none")
    raise ValueError(f"distillation loss kind {kind!r}: must be one of {DISTILL_KINDS}")


def distill_map_loss(
    pred: Tensor,
    target: Tensor,
    risk_valid: Tensor,
    balance_threshold: float = 0.0,
    kind: str = "l1",
) -> Tensor:
    """L1 between the student's ``risk_map`` (B, 1, H, W) (sigmoid, in [0, 1]) and the
    teacher's: ``mean |pred - target|`` over the cells of frames with ``risk_valid`` (B,).
    Dimensionless; equals the fraction of cells that differ by 1 when maps are binary.
    ``kind="bce"``: the binary cross-entropy per cell instead (see :func:`_elementwise`).

    With ``balance_threshold`` > 0 the cells above it (the risky ones) and the others are
    averaged separately and the two means added: a teacher's map is mostly empty (in the
    default dataset the riskiest cell averages 0.08), so the plain mean is nearly minimised
    by an empty prediction, while the balanced one pays as much for the few risky cells as
    for the whole background. A frame without risky cells pays its background mean only."""
    err = _elementwise(pred, target, kind).flatten(1)
    if balance_threshold <= 0:
        return _masked_mean(err.mean(dim=1), risk_valid.bool())
    pos = target.flatten(1) > balance_threshold
    n_pos = pos.sum(dim=1).clamp_min(1).to(err.dtype)
    n_neg = (~pos).sum(dim=1).clamp_min(1).to(err.dtype)
    per_frame = (err * pos).sum(dim=1) / n_pos + (err * ~pos).sum(dim=1) / n_neg
    return _masked_mean(per_frame, risk_valid.bool())


def distill_agent_loss(pred: Tensor, target: Tensor, valid: Tensor, kind: str = "l1") -> Tensor:
    """L1 between the student's per-agent risk ``pred`` (B, K) (probabilities read out of its
    risk map) and the teacher's ``agent_risk`` (B, K), mean over ``valid`` (B, K) agents;
    ``kind="bce"``: the binary cross-entropy with the teacher's risk as a soft label."""
    return _masked_mean(_elementwise(pred, target, kind), valid)


def rank_loss(
    scores: Tensor,
    rank: Tensor,
    valid: Tensor,
    margin: float = 0.1,
    target_risk: Tensor | None = None,
) -> Tensor:
    """Pairwise ranking hinge over the teacher's per-object ranking.

    For every pair ``(i, j)`` of the same frame with both ``valid`` (B, K), ranks known
    (``rank > 0``) and ``rank_i < rank_j`` (``i`` judged riskier), the student's ``scores``
    (B, K) pay ``max(0, m_ij - (s_i - s_j))``: zero once ``i`` outscores ``j`` by ``m_ij``.
    ``m_ij = margin``, or with the teacher's ``target_risk`` (B, K) ``clip(r_i - r_j, 0,
    margin)``: the margin never asks for more separation than the teacher's own risks show, so
    the ranking cannot fight the L1 term (equal risks, e.g. two harmless cars ordered by
    distance, only ask for ``s_i >= s_j``). Mean over such pairs (0 when there is none); in
    the scores' unit.
    """
    ok = valid & (rank > 0)
    pairs = ok[:, :, None] & ok[:, None, :] & (rank[:, :, None] < rank[:, None, :])
    if target_risk is None:
        m: Tensor | float = margin
    else:
        r = target_risk.to(scores.dtype)
        m = (r[:, :, None] - r[:, None, :]).clamp(0.0, margin)
    hinge = F.relu(m - (scores[:, :, None] - scores[:, None, :]))
    return _masked_mean(hinge, pairs)


def risk_weights(scene_risk: Tensor, risk_valid: Tensor, alpha: float) -> Tensor:
    """Per-sample NLL weights (B,): ``1 + alpha * scene_risk`` where the teacher answered, 1
    elsewhere."""
    return 1.0 + alpha * torch.where(risk_valid.bool(), scene_risk, torch.zeros_like(scene_risk))


def risk_weighted_nll(nll: Tensor, has_target: Tensor, weights: Tensor) -> Tensor:
    """Trajectory likelihood term (nats): ``mean_b w_b * NLL_b`` over samples with a target
    (``has_target`` (B,)), with ``nll`` (B,) from :func:`rsd.losses.planning.mixture_nll` and
    ``weights`` (B,) from :func:`risk_weights` (all ones: the plain mixture NLL). Dividing by
    the sample count, not by the weights, makes risky scenes count more in absolute terms."""
    return _masked_mean(weights.to(nll.dtype) * nll, has_target)


def risk_mass_loss(
    traj: Tensor,
    logits: Tensor | None,
    risk_map: Tensor,
    risk_valid: Tensor,
    grid: BEVGrid,
    threshold: float = 0.0,
) -> Tensor:
    """Predicted probability mass on high-risk cells:
    ``mean_b sum_m pi_m * mean_t r(mu_mt)`` over frames with ``risk_valid``.

    ``traj`` (B, M, T, 2) waypoints (m), ``pi = softmax(logits)`` (B, M) (uniform without),
    ``r`` the teacher's ``risk_map`` (B, R, H, W) read bilinearly at the waypoints (0 outside
    the grid; with space-time maps, R = T, waypoint ``t`` reads channel ``t``) and, with
    ``threshold`` > 0, rescaled as ``relu(r - threshold) / (1 - threshold)``
    so only cells above it count. In [0, 1]. Its gradient moves probability from modes through
    risky cells to the others, and those modes' waypoints out of the risky cells.
    """
    t = traj.shape[2]
    if risk_map.shape[1] == t:  # space-time: waypoint t meets the risk at time t
        r = torch.stack([sample_bev(risk_map[:, i], traj[:, :, i], grid) for i in range(t)], -1)
    else:
        r = sample_bev(risk_map[:, 0], traj, grid)  # (B, M, T)
    if threshold > 0:
        r = F.relu(r - threshold) / (1.0 - threshold)
    if logits is None:
        pi = torch.full(traj.shape[:2], 1.0 / traj.shape[1], dtype=r.dtype, device=r.device)
    else:
        pi = torch.softmax(logits, dim=-1)
    per_frame = (pi * r.mean(dim=-1)).sum(dim=-1)
    return _masked_mean(per_frame, risk_valid.bool())


FEATURE_LOGITS = "risk_logits_feat"
"""A RiskHead's logits on the feature grid (``rsd.models.FEATURE_LOGITS``)."""


def _upsample(logits: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _student_logits(outputs: dict[str, Tensor], grid: BEVGrid, full_grid: bool) -> Tensor | None:
    """The student's risk logits the agent read-out uses (see ``distill_full_grid``)."""
    feat = outputs.get(FEATURE_LOGITS)
    if feat is not None and not full_grid:
        return feat
    if "risk_logits" in outputs:
        return outputs["risk_logits"]
    return None if feat is None else _upsample(feat, grid.shape)


def student_risk_map(
    outputs: dict[str, Tensor], target: Tensor, full_grid: bool = False
) -> tuple[Tensor, Tensor] | None:
    """(the student's risk map, the teacher's ``target`` (B, R, H, W) on the same grid) that
    ``distill_map`` compares: on the feature grid, the sigmoid of ``risk_logits_feat`` and the
    target max-pooled to it; else (``full_grid``, or a model with full-grid outputs only) the
    full-grid ``risk_map`` (or ``risk_logits_feat`` upsampled) and the target. None: no map."""
    feat = outputs.get(FEATURE_LOGITS)
    if feat is not None and not full_grid:
        return feat.sigmoid(), pool_risk_target(target, feat.shape[-2:])
    if "risk_map" in outputs:
        return outputs["risk_map"], target
    return None if feat is None else (_upsample(feat, target.shape[-2:]).sigmoid(), target)


def student_agent_risk(
    outputs: dict[str, Tensor], targets: Mapping[str, Any], grid: BEVGrid, full_grid: bool = False
) -> Tensor | None:
    """(B, K) the student's risk in [0, 1] at the target agents: ``agent_risk_pred`` when the
    outputs carry it, else the sigmoid of :func:`agent_risk_readout` of the student's risk
    logits (on the feature grid, or the full one with ``full_grid``) at ``agent_boxes``;
    None when neither is possible."""
    if "agent_risk_pred" in outputs:
        return outputs["agent_risk_pred"]
    logits = _student_logits(outputs, grid, full_grid)
    if logits is None or "agent_boxes" not in targets:
        return None
    return agent_risk_readout(
        logits,
        targets["agent_boxes"],
        grid,
        targets.get("agent_future"),
        targets.get("agent_future_valid"),
    ).sigmoid()


__all__ = [
    "distill_agent_loss",
    "distill_map_loss",
    "pool_risk_target",
    "DISTILL_KINDS",
    "rank_loss",
    "risk_mass_loss",
    "risk_weighted_nll",
    "risk_weights",
    "student_agent_risk",
    "student_risk_map",
]
