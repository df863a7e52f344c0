"""The RiskHead plug-in and the wrapper that attaches it to any ``BEVBackbone``.

:class:`RiskHead` is a light encoder-decoder over BEV features ``(B, C, Hf, Wf)``: a 1x1
projection, one stride-2 level and back (with a skip), an optional deformable-attention-style
block (each location predicts sampling offsets and weights, samples with ``grid_sample``), and
a 1x1 conv to one risk logit per feature cell.

:class:`RiskDistilled` wraps a model without editing it::

    feats = model.encode(features)                       # (B, C, Hf, Wf)
    A = sigmoid(head(feats))                             # (B, 1, Hf, Wf)
    outputs = model.decode(feats * (1 + gate * A), features)
    outputs += risk_logits / risk_map (B, 1, H, W)

``detach(attach_risk_head(model))`` is ``model`` itself, untouched, so the baseline's outputs
are exactly what they were.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsd.geometry import BEVGrid
from rsd.models.config import RiskHeadConfig
from rsd.models.layers import ConvBN
from rsd.models.protocol import BEVBackbone, Features, Outputs


def _reference_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(h, w, 2) ``grid_sample`` coordinates (x = col, y = row, in [-1, 1]) of cell centres."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


class DeformableSampling(nn.Module):
    """Deformable-attention-style aggregation in plain PyTorch, with a residual.

    Per location and head: ``points`` offsets (in feature cells) and softmax weights are
    predicted from the feature there; the head's value channels are sampled bilinearly at
    ``location + offset`` and summed with the weights. Offsets start on a star (head ``g``
    looks along direction ``2 pi g / heads`` at radii 1..points), as in Deformable DETR.
    """

    def __init__(self, dim: int, heads: int, points: int) -> None:
        super().__init__()
        self.heads, self.points = heads, points
        self.value = nn.Conv2d(dim, dim, 1)
        self.offsets = nn.Conv2d(dim, heads * points * 2, 1)
        self.weights = nn.Conv2d(dim, heads * points, 1)
        self.out = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.offsets.weight)
        angle = torch.arange(heads) * (2 * math.pi / heads)
        radius = torch.arange(1, points + 1, dtype=torch.float32)
        star = torch.stack([angle.sin()[:, None] * radius, angle.cos()[:, None] * radius], -1)
        with torch.no_grad():
            self.offsets.bias.copy_(star.reshape(-1))  # (heads, points, (d_row, d_col))
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, D, h, w) -> (B, D, h, w)."""
        b, d, h, w = x.shape
        g, p = self.heads, self.points
        value = self.value(x).reshape(b * g, d // g, h, w)
        off = self.offsets(x).reshape(b, g, p, 2, h, w).permute(0, 1, 2, 4, 5, 3)
        # offsets in cells (row, col) -> grid_sample units (x = col, y = row)
        step = torch.tensor([2.0 / w, 2.0 / h], device=x.device, dtype=x.dtype)
        loc = _reference_grid(h, w, x.device, x.dtype) + off.flip(-1) * step  # (b,g,p,h,w,2)
        sampled = F.grid_sample(
            value, loc.reshape(b * g, p * h, w, 2), mode="bilinear", align_corners=False
        ).reshape(b, g, d // g, p, h, w)
        weight = self.weights(x).reshape(b, g, 1, p, h, w).softmax(dim=3)
        return x + self.out((sampled * weight).sum(dim=3).reshape(b, d, h, w))


class RiskHead(nn.Module):
    """BEV features (B, C, Hf, Wf) -> risk logits (B, 1, Hf, Wf) on the same grid.

    Also owns ``gate`` (C,), the per-channel strength of the modulation
    ``F * (1 + gate * A)`` applied by :class:`RiskDistilled`.
    """

    def __init__(self, in_channels: int, cfg: RiskHeadConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or RiskHeadConfig()
        self.cfg = cfg
        h = cfg.hidden
        self.inp = ConvBN(in_channels, h, k=1)
        self.down = nn.Sequential(ConvBN(h, h, stride=2), ConvBN(h, h, dilation=2))
        self.fuse = ConvBN(h, h)
        self.deform = (
            DeformableSampling(h, cfg.deform_heads, cfg.deform_points)
            if cfg.use_deformable
            else nn.Identity()
        )
        self.out = nn.Conv2d(h, 1, 1)
        nn.init.constant_(self.out.bias, math.log(cfg.prior / (1 - cfg.prior)))
        self.gate = nn.Parameter(torch.full((in_channels,), cfg.gate_init))

    def forward(self, features: Tensor) -> Tensor:
        x = self.inp(features)
        coarse = self.down(x)
        up = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.deform(self.fuse(x + up))
        return self.out(x)

    def modulate(self, features: Tensor, logits: Tensor) -> Tensor:
        """``features * (1 + gate * sigmoid(logits))``: (B, C, Hf, Wf), (B, 1, Hf, Wf)."""
        return features * (1 + self.gate[:, None, None] * logits.sigmoid())


class RiskDistilled(nn.Module):
    """A ``BEVBackbone`` with a :class:`RiskHead` between its encoder and its heads.

    Adds to the model's outputs: ``risk_logits`` and ``risk_map`` (B, 1, H, W) on the full BEV
    grid (bilinear upsampling of the head's feature-grid logits). It sees features only: the
    read-out at ground-truth agents is :func:`rsd.losses.risk.agent_risk_readout`.
    """

    def __init__(self, model: BEVBackbone, head: RiskHead, grid: BEVGrid | None = None) -> None:
        super().__init__()
        grid = grid or BEVGrid()
        if not isinstance(model, nn.Module) or not isinstance(model, BEVBackbone):
            raise TypeError(f"{type(model).__name__} is not a BEVBackbone nn.Module")
        self.model = model
        self.head = head
        self.grid = grid
        self.bev_channels = model.bev_channels
        self.feature_stride = model.feature_stride

    def encode(self, features: Features) -> Tensor:
        return self.model.encode(features)

    def decode(self, feats: Tensor, features: Features) -> Outputs:
        size = features["bev"].shape[-2:]
        if tuple(size) != self.grid.shape:
            raise ValueError(f"bev is {tuple(size)} but the RiskHead's grid is {self.grid.shape}")
        logits = self.head(feats)
        out = dict(self.model.decode(self.head.modulate(feats, logits), features))
        risk_logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        out["risk_logits"] = risk_logits
        out["risk_map"] = risk_logits.sigmoid()
        return out

    def forward(self, features: Features) -> Outputs:
        return self.decode(self.encode(features), features)


def attach_risk_head(
    model: BEVBackbone, cfg: RiskHeadConfig | None = None, grid: BEVGrid | None = None
) -> RiskDistilled:
    """Wrap ``model`` (not copied, not edited) with a fresh :class:`RiskHead` sized to its
    ``bev_channels``; ``grid`` is the BEV grid of the ``bev`` input (checked in ``decode``)."""
    return RiskDistilled(model, RiskHead(model.bev_channels, cfg), grid)


def detach(rsd_model: RiskDistilled) -> BEVBackbone:
    """The wrapped model itself (same object): its outputs are the baseline's, bit for bit."""
    return rsd_model.model
