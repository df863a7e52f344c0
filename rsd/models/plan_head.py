"""The planning head shared by the backbones: ego queries in, M modes of T waypoints out.

:class:`EgoQuery` builds M queries from the command and the ego status; a backbone refines them
with its own context; :class:`PlanOutput` turns them into waypoints on a constant-speed prior
(:func:`waypoints_from_steps`), Laplace scales and mode logits. With a RiskHead attached,
:func:`mode_risk_cost` and :func:`reselect_modes` let the student's (space-time) risk maps change
which mode is chosen, and :func:`sample_risk_along` gives the map's values around each waypoint
to the plan refinement (:class:`~rsd.models.risk_head.RiskDistilled`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.geometry import ROUTE_POINTS, BEVGrid, EgoStatusField, world_to_pixel
from rsd.models.config import BackboneConfig
from rsd.models.protocol import Features, Outputs
from rsd.scene import KEYFRAME_DT, Command

ROUTE_SCALE = 20.0
"""Metres per unit of the route's points as the ego queries read them."""
EGO_STATUS_SCALE = (1 / 30.0, 1 / 30.0, 1 / 0.3, 1 / 2.0)
"""Rough inverse spreads of ``ego_status`` columns (speed, target speed, yaw rate, lane
offset), in :class:`~rsd.geometry.EgoStatusField` order."""


def waypoints_from_steps(steps: Tensor, speed: Tensor | None, step_scale: float) -> Tensor:
    """Waypoints = constant-speed prior + cumulative predicted steps.

    Args:
        steps: (B, M, T, 2) raw network outputs, one (dx, dy) step per waypoint.
        speed: (B,) ego speed m/s, or None (no prior: the network predicts the motion itself).
        step_scale: metres per unit of ``steps``.

    Returns (B, M, T, 2) ``(x, y)`` in the ego frame (m). With ``steps == 0`` the plan drives
    straight on at the current speed, so an untrained planner is already a sensible baseline
    and the network learns only the deviation.
    """
    traj = torch.cumsum(steps * step_scale, dim=2)
    if speed is not None:
        t = torch.arange(1, steps.shape[2] + 1, device=steps.device, dtype=steps.dtype)
        traj = traj + F.pad((speed[:, None] * KEYFRAME_DT * t)[:, None, :, None], (0, 1))
    return traj


class PlanOutput(nn.Module):
    """Per-mode query (B, M, D) -> ``plan_traj``, ``plan_scale``, ``plan_logits``, ``plan``."""

    def __init__(self, dim: int, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        t = cfg.horizon
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 4 * t + 1)
        )
        nn.init.zeros_(self.mlp[-1].weight)  # start from the prior: straight on, equal modes
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, query: Tensor, features: Features) -> Outputs:
        b, m, _ = query.shape
        out = self.mlp(query)
        t = self.cfg.horizon
        steps = out[..., : 2 * t].reshape(b, m, t, 2)
        scale = F.softplus(out[..., 2 * t : 4 * t].reshape(b, m, t, 2)) + self.cfg.scale_floor
        logits = out[..., -1]
        prior = self.cfg.use_ego_status and self.cfg.speed_prior
        speed = features["ego_status"][:, EgoStatusField.SPEED] if prior else None
        traj = waypoints_from_steps(steps, speed, self.cfg.step_scale)
        best = logits.argmax(dim=1)
        plan = traj[torch.arange(b, device=traj.device), best]
        return {"plan_traj": traj, "plan_scale": scale, "plan_logits": logits, "plan": plan}


class EgoQuery(nn.Module):
    """M ego queries (B, M, D): command embedding + ego-status MLP + a learned mode embedding."""

    def __init__(self, dim: int, cfg: BackboneConfig) -> None:
        super().__init__()
        self.command = nn.Embedding(len(Command), dim)
        # as large as the command embedding: with tiny mode embeddings the M queries are near
        # copies, the logits move in unison and the mode classifier cannot learn (plan_cls
        # stuck at log M)
        self.modes = nn.Parameter(torch.randn(cfg.n_modes, dim))
        self.status = (
            nn.Sequential(
                nn.Linear(len(EgoStatusField), dim), nn.ReLU(inplace=True), nn.Linear(dim, dim)
            )
            if cfg.use_ego_status
            else None
        )
        self.register_buffer("status_scale", torch.tensor(EGO_STATUS_SCALE), persistent=False)
        # the route's points (x, y per point, over ROUTE_SCALE m) and whether there is one
        self.route = (
            nn.Sequential(
                nn.Linear(2 * ROUTE_POINTS + 1, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim)
            )
            if cfg.use_route
            else None
        )

    def forward(self, features: Features) -> Tensor:
        q = self.command(features["command"])
        if self.status is not None:
            q = q + self.status(features["ego_status"].float() * self.status_scale)
        if self.route is not None:  # features without a route: none (as real data)
            if "route" in features:
                pts = features["route"].float().flatten(1) / ROUTE_SCALE
                valid = features["route_valid"].float()[:, None]
            else:
                pts = q.new_zeros(len(q), 2 * ROUTE_POINTS)
                valid = q.new_zeros(len(q), 1)
            q = q + self.route(torch.cat([pts, valid], 1))
        return q[:, None, :] + self.modes


def sample_risk_along(
    risk: Tensor, traj: Tensor, grid: BEVGrid, offsets: Tensor | None = None
) -> Tensor:
    """The risk at each waypoint (and at offsets from it): (B, M, T, K) probabilities.

    ``risk`` (B, C, h, w) probabilities covering ``grid``'s extent at any resolution (the
    feature grid or the full one); ``traj`` (B, M, T, 2) waypoints (m, ego frame);
    ``offsets`` (K, 2) ego-frame ``(dx, dy)`` (m) added to every waypoint (None: K = 1, the
    waypoint itself). With ``C == T`` (space-time maps) waypoint ``t`` reads channel ``t``
    (where the risk *will* be when the ego gets there); otherwise every waypoint reads
    channel 0. Bilinear, 0 outside the grid; differentiable in both the map and the waypoints.
    """
    b, c, h, w = risk.shape
    m, t = traj.shape[1:3]
    pts = traj[..., None, :]
    if offsets is not None:
        pts = pts + offsets.to(traj)
    k = pts.shape[3]
    rc = world_to_pixel(pts, grid)  # (B, M, T, K, 2)
    # normalised grid_sample coordinates do not depend on the map's resolution
    norm = torch.stack([2 * rc[..., 1] / grid.width - 1, 2 * rc[..., 0] / grid.height - 1], -1)
    norm = norm.to(risk.dtype)
    if c == t:
        pts = norm.permute(0, 2, 1, 3, 4).reshape(b * t, m * k, 1, 2)
        val = F.grid_sample(risk.reshape(b * t, 1, h, w), pts, align_corners=False)
        return val.reshape(b, t, m, k).permute(0, 2, 1, 3)
    val = F.grid_sample(risk[:, :1], norm.reshape(b, m * t * k, 1, 2), align_corners=False)
    return val.reshape(b, m, t, k)


def mode_risk_cost(risk: Tensor, traj: Tensor, grid: BEVGrid) -> Tensor:
    """Mean risk along each mode's waypoints: (B, M) in [0, 1].

    Arguments as :func:`sample_risk_along` (waypoint ``t`` reads channel ``t`` of space-time
    maps); differentiable in both the map and the waypoints.
    """
    return sample_risk_along(risk, traj, grid)[..., 0].mean(dim=-1)


def reselect_modes(outputs: Outputs, cost: Tensor, weight: Tensor) -> Outputs:
    """``outputs`` with ``plan_logits - weight * cost`` (the risk cost (B, M) the mode
    selection sees) and ``plan`` re-chosen as the most likely mode under them; the unchanged
    logits are kept as ``plan_logits_raw``."""
    out = dict(outputs)
    traj = outputs["plan_traj"]
    out["plan_logits_raw"] = outputs["plan_logits"]
    out["plan_logits"] = outputs["plan_logits"] - weight * cost
    best = out["plan_logits"].argmax(dim=1)
    out["plan"] = traj[torch.arange(traj.shape[0], device=traj.device), best]
    out["plan_risk_cost"] = cost
    return out
