"""VADLite: a small VAD-style BEV driving model, sized for CPU training.

Reading order: the building blocks (:class:`ConvBN`, :class:`ResBlock`, the trajectory
parameterisation :func:`waypoints_from_steps`), then :class:`VADLite`:

``bev (B, 7, 160, 64)`` -> encoder (stride-2 stem, residual stages) -> features
``(B, C, 40, 16)`` -> heads: detection (CenterNet-style centre heatmap + box regression), map
(drivable / boundary logits at full resolution) and planning: M ego queries (command + ego
status + a per-mode embedding) cross-attend to agent tokens (the top-k heatmap peaks) and to the
flattened BEV features, then an MLP gives each mode's T waypoints, Laplace scales and a logit.

Output keys and shapes are those of :mod:`rsd.models.protocol`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.data.raster import EgoStatusField
from rsd.models.config import BackboneConfig
from rsd.models.protocol import Batch, Outputs
from rsd.scene import KEYFRAME_DT, Command

EGO_STATUS_SCALE = (1 / 30.0, 1 / 3.0, 1 / 0.3, 1 / 2.0)
"""Rough inverse spreads of ``ego_status`` columns (speed, accel, yaw rate, lane offset)."""
_HEAT_PRIOR = 0.1
"""Initial centre-heatmap probability (CenterNet's bias trick: stable focal loss at start)."""


class ConvBN(nn.Sequential):
    """conv k x k -> BatchNorm -> ReLU (optional)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
    ) -> None:
        pad = dilation * (k // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip; ``stride`` 2 halves H and W (1x1 projection on the skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBN(c_in, c_out, stride=stride, dilation=1 if stride > 1 else dilation)
        self.conv2 = ConvBN(c_out, c_out, dilation=dilation, relu=False)
        self.skip = (
            ConvBN(c_in, c_out, k=1, stride=stride, relu=False)
            if stride > 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.skip(x))


def pos_encoding(rc: Tensor, dim: int) -> Tensor:
    """Sinusoidal encoding of normalised positions: (..., 2) (row, col) in [0, 1] -> (..., dim)."""
    freqs = 2.0 ** torch.arange(dim // 4, device=rc.device, dtype=rc.dtype) * math.pi
    angles = rc[..., :, None] * freqs  # (..., 2, dim/4)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def grid_positions(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """(h * w, 2) normalised (row, col) of the cell centres of an h x w grid, row-major."""
    r = (torch.arange(h, device=device) + 0.5) / h
    c = (torch.arange(w, device=device) + 0.5) / w
    return torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).reshape(-1, 2)


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

    def forward(self, query: Tensor, batch: Batch) -> Outputs:
        b, m, _ = query.shape
        out = self.mlp(query)
        t = self.cfg.horizon
        steps = out[..., : 2 * t].reshape(b, m, t, 2)
        scale = F.softplus(out[..., 2 * t : 4 * t].reshape(b, m, t, 2)) + self.cfg.scale_floor
        logits = out[..., -1]
        speed = batch["ego_status"][:, EgoStatusField.SPEED] if self.cfg.use_ego_status else None
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

    def forward(self, batch: Batch) -> Tensor:
        q = self.command(batch["command"])
        if self.status is not None:
            q = q + self.status(batch["ego_status"].float() * self.status_scale)
        return q[:, None, :] + self.modes


class _CrossBlock(nn.Module):
    """Pre-norm cross-attention of queries onto a token set, with a residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, q: Tensor, tokens: Tensor) -> Tensor:
        return q + self.attn(self.norm(q), tokens, tokens, need_weights=False)[0]


class VADLite(nn.Module):
    """VAD-style driving model (a ``BEVBackbone``); see the module docstring.

    Args:
        in_channels: C of the ``bev`` input (7 with the default raster).
        cfg: sizes and options.
    """

    def __init__(self, in_channels: int, cfg: BackboneConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or BackboneConfig()
        self.cfg = cfg
        self.bev_channels = cfg.channels
        self.feature_stride = cfg.feature_stride
        c1, c = cfg.stem_channels, cfg.channels
        # Encoder: stride 2 stem, one block at stride 2, then (stride 4) dilated blocks that
        # widen the receptive field cheaply (a 40 x 16 map needs ~10 cells of context).
        layers: list[nn.Module] = [ConvBN(in_channels, c1, stride=2), ResBlock(c1, c1)]
        layers.append(ResBlock(c1, c, stride=cfg.feature_stride // 2))
        layers += [ResBlock(c, c, dilation=2 ** (i % 3 + 1)) for i in range(cfg.depth)]
        self.encoder = nn.Sequential(*layers)

        # Detection: heatmap (n_cls) + offset 2 + log size 3 + sin/cos 2 + velocity 2.
        self.det_split = (cfg.n_classes, 2, 3, 2, 2)
        self.det_head = nn.Sequential(ConvBN(c, c), nn.Conv2d(c, sum(self.det_split), 1))
        nn.init.constant_(self.det_head[-1].bias[: cfg.n_classes], -math.log(1 / _HEAT_PRIOR - 1))
        self.map_head = nn.Sequential(ConvBN(c, c // 2), nn.Conv2d(c // 2, 2, 1))

        d = cfg.plan_dim
        self.bev_proj = nn.Conv2d(c, d, 1)
        self.agent_proj = nn.Linear(d + sum(self.det_split) + 1, d)
        self.ego_query = EgoQuery(d, cfg)
        self.agent_attn = nn.ModuleList(
            _CrossBlock(d, cfg.plan_heads) for _ in range(cfg.plan_layers)
        )
        self.bev_attn = nn.ModuleList(
            _CrossBlock(d, cfg.plan_heads) for _ in range(cfg.plan_layers)
        )
        self.ffn = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.ReLU(inplace=True), nn.Linear(2 * d, d)
            )
            for _ in range(cfg.plan_layers)
        )
        self.plan_out = PlanOutput(d, cfg)

    def encode(self, batch: Batch) -> Tensor:
        """``bev`` (B, C_in, H, W) -> features (B, C, H / stride, W / stride)."""
        return self.encoder(batch["bev"])

    def decode(self, features: Tensor, batch: Batch) -> Outputs:
        """All heads on ``features`` (B, C, Hf, Wf); keys as in :mod:`rsd.models.protocol`."""
        out: Outputs = {}
        det = self.det_head(features)
        heat, offset, size, yaw, vel = det.split(self.det_split, dim=1)
        out.update(det_heatmap=heat, det_offset=offset, det_size=size, det_yaw=yaw, det_vel=vel)
        h, w = batch["bev"].shape[-2:]
        out["map_logits"] = F.interpolate(
            self.map_head(features), size=(h, w), mode="bilinear", align_corners=False
        )
        out.update(self._plan(features, det, batch))
        return out

    def forward(self, batch: Batch) -> Outputs:
        return self.decode(self.encode(batch), batch)

    def _plan(self, features: Tensor, det: Tensor, batch: Batch) -> Outputs:
        b, _, hf, wf = features.shape
        pos = pos_encoding(grid_positions(hf, wf, features.device), self.cfg.plan_dim)
        tokens = self.bev_proj(features).flatten(2).transpose(1, 2)  # (B, Hf*Wf, D)
        bev_tokens = tokens + pos
        agents = self._agent_tokens(tokens, det.detach(), pos)
        q = self.ego_query(batch)
        for agent_attn, bev_attn, ffn in zip(self.agent_attn, self.bev_attn, self.ffn, strict=True):
            q = agent_attn(q, agents)
            q = bev_attn(q, bev_tokens)
            q = q + ffn(q)
        return self.plan_out(q, batch)

    def _agent_tokens(self, tokens: Tensor, det: Tensor, pos: Tensor) -> Tensor:
        """Top-k heatmap peaks as tokens (B, k, D): the feature there, its decoded box
        channels, its score, plus the position encoding. Detached from the detection head so
        that planning does not pull the heatmap."""
        heat = det[:, : self.cfg.n_classes].sigmoid().amax(dim=1, keepdim=True)
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        k = min(self.cfg.agent_tokens, peaks[0].numel())
        score, idx = peaks.flatten(1).topk(k, dim=1)  # (B, k)
        d_tok = tokens.shape[-1]
        feat = tokens.gather(1, idx[..., None].expand(-1, -1, d_tok))
        box = det.flatten(2).transpose(1, 2).gather(1, idx[..., None].expand(-1, -1, det.shape[1]))
        x = self.agent_proj(torch.cat([feat, box, score[..., None]], dim=-1))
        return x + pos[idx]
