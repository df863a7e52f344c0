"""CNNPlanner: the second ``BEVBackbone``, structurally unlike :class:`~rsd.models.VADLite`.

Two plain CNN branches, TransFuser-style late fusion: a *map* branch over the map channels
(drivable area, lane lines) and a *sensor* branch over free space and sensor hits; at the
feature stride they are concatenated and fused by a 1x1 conv into the BEV features
``(B, C, Hf, Wf)``. The planner has no attention and no detection: global average + max
pooling of the features, concatenated with a command embedding (and the ego status), through
an MLP to M modes x T waypoints. An auxiliary map head predicts ``map_logits``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.geometry import InputChannel
from rsd.models.config import BackboneConfig
from rsd.models.plan_head import EgoQuery, PlanOutput
from rsd.models.protocol import Features, Outputs

_MAP_CHANNELS = (InputChannel.DRIVABLE, InputChannel.LANE_LINES)


def _branch(c_in: int, c1: int, c_out: int, stride: int) -> nn.Sequential:
    """Plain strided conv stack (no skips): stride 2, then to ``stride``, then one more conv."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c1, 3, 2, 1), nn.ReLU(inplace=True)]
    layers += [
        nn.Conv2d(c1, c_out, 3, stride // 2, 1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    layers += [nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class CNNPlanner(nn.Module):
    """Late-fusion CNN + pooled MLP planner (a ``BEVBackbone``); see the module docstring.

    Args:
        in_channels: C of the ``bev`` input (>= 3: the two map channels come first).
        cfg: sizes; ``channels`` (C), ``stem_channels``, ``feature_stride``, ``n_modes``,
            ``horizon``, ``use_ego_status``, ``plan_dim``, ``depth`` (extra fused convs) are
            used, the detection and attention fields are not.
    """

    def __init__(self, in_channels: int, cfg: BackboneConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or BackboneConfig()
        if in_channels <= len(_MAP_CHANNELS):
            raise ValueError(f"CNNPlanner needs map + sensor channels, got {in_channels}")
        self.cfg = cfg
        self.bev_channels = cfg.channels
        self.feature_stride = cfg.feature_stride
        c1, c = cfg.stem_channels, cfg.channels
        self.map_branch = _branch(len(_MAP_CHANNELS), c1 // 2, c // 2, cfg.feature_stride)
        self.sensor_branch = _branch(in_channels - len(_MAP_CHANNELS), c1, c, cfg.feature_stride)
        fuse: list[nn.Module] = [
            nn.Conv2d(c + c // 2, c, 1),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        ]
        for _ in range(cfg.depth):
            fuse += [nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.fuse = nn.Sequential(*fuse)

        self.map_head = nn.Conv2d(c, 2, 3, 1, 1)
        d = cfg.plan_dim
        self.pool_proj = nn.Sequential(nn.Linear(2 * c, d), nn.ReLU(inplace=True))
        self.ego_query = EgoQuery(d, cfg)
        self.mlp = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        self.plan_out = PlanOutput(d, cfg)

    def encode(self, features: Features) -> Tensor:
        """``bev`` (B, C_in, H, W) -> features (B, C, H / stride, W / stride)."""
        bev = features["bev"]
        n_map = len(_MAP_CHANNELS)
        fused = torch.cat([self.sensor_branch(bev[:, n_map:]), self.map_branch(bev[:, :n_map])], 1)
        return self.fuse(fused)

    def decode(self, feats: Tensor, features: Features) -> Outputs:
        """Map head + pooled planner on ``feats`` (B, C, Hf, Wf); no detection keys."""
        h, w = features["bev"].shape[-2:]
        map_logits = F.interpolate(
            self.map_head(feats), size=(h, w), mode="bilinear", align_corners=False
        )
        pooled = torch.cat([feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3))], dim=1)
        scene = self.pool_proj(pooled)  # (B, D)
        q = self.ego_query(features)  # (B, M, D)
        q = q + self.mlp(torch.cat([q, scene[:, None].expand_as(q)], dim=-1))
        return {"map_logits": map_logits, **self.plan_out(q, features)}

    def forward(self, features: Features) -> Outputs:
        return self.decode(self.encode(features), features)
