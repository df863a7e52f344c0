"""The planning head shared by the backbones: ego queries in, M modes of T waypoints out.

:class:`EgoQuery` builds M queries from the command and the ego status; a backbone refines them
with its own context; :class:`PlanOutput` turns them into waypoints on a constant-speed prior
(:func:`waypoints_from_steps`), Laplace scales and mode logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.geometry import EgoStatusField
from rsd.models.config import BackboneConfig
from rsd.models.protocol import Features, Outputs
from rsd.scene import KEYFRAME_DT, Command

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
        speed = features["ego_status"][:, EgoStatusField.SPEED] if self.cfg.use_ego_status else None
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

    def forward(self, features: Features) -> Tensor:
        q = self.command(features["command"])
        if self.status is not None:
            q = q + self.status(features["ego_status"].float() * self.status_scale)
        return q[:, None, :] + self.modes
