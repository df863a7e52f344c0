"""VADLite: a small VAD-style BEV driving model, sized for CPU training.

Reading order: the position encoding, then :class:`VADLite` (its layers are in
:mod:`rsd.models.layers`, its planning head in :mod:`rsd.models.plan_head`):

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

from rsd.models.config import BackboneConfig
from rsd.models.layers import ConvBN, ResBlock
from rsd.models.plan_head import EgoQuery, PlanOutput
from rsd.models.protocol import Features, Outputs

_HEAT_PRIOR = 0.1
"""Initial centre-heatmap probability (CenterNet's bias trick: stable focal loss at start)."""


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


def encoder_layers(in_channels: int, cfg: BackboneConfig) -> list[nn.Module]:
    """The encoder, ``(B, C_in, H, W)`` -> ``(B, cfg.channels, H / s, W / s)``, s =
    ``cfg.feature_stride``, then ``cfg.depth`` dilated residual blocks that widen the receptive
    field cheaply (a 40 x 16 map needs ~10 cells of context).

    ``stem="conv"``: 3x3 stride-2 conv, a residual block at stride 2, a strided residual block.
    ``stem="patch"``: one s x s stride-s conv (a patchify stem, as ViT / ConvNeXt): the input is
    a sparse 0/1 raster, so nothing is lost by not convolving it at full resolution, and the
    stride-2 stage, most of the small recipe's FLOPs, goes away."""
    c1, c = cfg.stem_channels, cfg.channels
    if cfg.stem == "patch":
        s = cfg.feature_stride
        layers: list[nn.Module] = [ConvBN(in_channels, c, k=s, stride=s, padding=0)]
    else:
        layers = [ConvBN(in_channels, c1, stride=2), ResBlock(c1, c1)]
        layers.append(ResBlock(c1, c, stride=cfg.feature_stride // 2))
    layers += [ResBlock(c, c, dilation=2 ** (i % 3 + 1)) for i in range(cfg.depth)]
    return layers


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
        c = cfg.channels
        self.encoder = nn.Sequential(*encoder_layers(in_channels, cfg))

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
        if cfg.channels_last:
            self.to(memory_format=torch.channels_last)

    def encode(self, features: Features) -> Tensor:
        """``bev`` (B, C_in, H, W) -> features (B, C, H / stride, W / stride)."""
        bev = features["bev"]
        if self.cfg.channels_last:
            bev = bev.contiguous(memory_format=torch.channels_last)
        return self.encoder(bev)

    def decode(self, feats: Tensor, features: Features) -> Outputs:
        """All heads on ``feats`` (B, C, Hf, Wf); keys as in :mod:`rsd.models.protocol`."""
        out: Outputs = {}
        det = self.det_head(feats)
        heat, offset, size, yaw, vel = det.split(self.det_split, dim=1)
        out.update(det_heatmap=heat, det_offset=offset, det_size=size, det_yaw=yaw, det_vel=vel)
        h, w = features["bev"].shape[-2:]
        out["map_logits"] = F.interpolate(
            self.map_head(feats), size=(h, w), mode="bilinear", align_corners=False
        )
        out.update(self._plan(feats, det, features))
        return out

    def forward(self, features: Features) -> Outputs:
        return self.decode(self.encode(features), features)

    def _plan(self, feats: Tensor, det: Tensor, features: Features) -> Outputs:
        b, _, hf, wf = feats.shape
        pos = pos_encoding(grid_positions(hf, wf, feats.device), self.cfg.plan_dim)
        tokens = self.bev_proj(feats).flatten(2).transpose(1, 2)  # (B, Hf*Wf, D)
        bev_tokens = tokens + pos
        agents = self._agent_tokens(tokens, det.detach(), pos)
        q = self.ego_query(features)
        for agent_attn, bev_attn, ffn in zip(self.agent_attn, self.bev_attn, self.ffn, strict=True):
            q = agent_attn(q, agents)
            q = bev_attn(q, bev_tokens)
            q = q + ffn(q)
        return self.plan_out(q, features)

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
