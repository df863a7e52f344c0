"""The RiskHead plug-in and the wrapper that attaches it to any ``BEVBackbone``.

:class:`RiskHead` is a light encoder-decoder over BEV features ``(B, C, Hf, Wf)``: a 1x1
projection, one stride-2 level and back (with a skip; ``coarse=False``: one dilated 3x3 at
the feature grid's resolution instead), an optional deformable-attention-style
block (each location predicts sampling offsets and weights, samples with ``grid_sample``), and
a 1x1 conv to ``R`` risk logits per feature cell: one per future keyframe (space-time maps,
``R = 6``) or one (the single map).

:class:`RiskDistilled` wraps a model without editing it::

    feats = model.encode(features)                       # (B, C, Hf, Wf)
    P = sigmoid(head(feats))                             # (B, R, Hf, Wf)
    outputs = model.decode(feats * (1 + gate * max_r P), features)
    plan_traj += refiner(P, plan_traj)                    # zero-initialised residual
    plan_logits -= softplus(w) * mode_risk_cost(P, plan_traj)   # the planner's choice
    outputs += risk_logits_feat (B, R, Hf, Wf)           # the head's logits, feature grid
    full = with_full_risk_map(outputs, (H, W))           # + risk_logits / risk_map (B, R, H, W)

The full-grid maps are a product for evaluation and pictures, made only when a caller asks
(:func:`with_full_risk_map`): the planner reads the feature grid, and the distillation loss is
computed there (``rsd.losses``: the teacher's map max-pooled to it), so neither training nor
driving pays for upsampling ``R`` channels to the full grid. The risk reaches the planner
three times: as a gain on the features it reads, as a residual on its waypoints from the map
around them (:class:`PlanRefiner`: what can change a one-mode plan), and as a cost its mode
selection sees (waypoint ``t`` reads channel ``t``: where the risk will be then;
:func:`~rsd.models.plan_head.mode_risk_cost`). The ``oracle`` control replaces ``P`` by the
teacher's own maps, handed in as a feature (``oracle_key``).

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
from rsd.models.plan_head import mode_risk_cost, reselect_modes, sample_risk_along
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


class PlanRefiner(nn.Module):
    """Risk-aware plan refinement: waypoints (B, M, T, 2) -> the same plus a residual (m).

    Per waypoint ``t``, the risk map's channel ``t`` (space-time maps; channel 0 otherwise) is
    sampled at the waypoint and at ``reach`` ahead, ``2 reach`` ahead, ``reach`` left and right
    of it (ego-frame axes: over a 3 s horizon the plan's heading stays near the ego's); these
    samples, the waypoint normalised by the grid's extent and ``t / T`` go through a shared
    two-layer MLP to a ``(dx, dy)`` residual. The last layer is zero-initialised, so an
    untrained refinement returns the waypoints bit for bit. Its inputs are detached from the
    waypoints: the backbone's plan keeps its own gradient path (the identity), the MLP learns
    from the planning losses on the refined plan.
    """

    def __init__(self, cfg: RiskHeadConfig) -> None:
        super().__init__()
        r = cfg.refine_reach
        offsets = torch.tensor([[0.0, 0.0], [r, 0.0], [2 * r, 0.0], [0.0, r], [0.0, -r]])
        self.register_buffer("offsets", offsets, persistent=False)  # (K, 2) (dx, dy) m
        self.scale = cfg.refine_scale
        self.mlp = nn.Sequential(
            nn.Linear(len(offsets) + 3, cfg.refine_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.refine_hidden, 2),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # type: ignore[override]
        # a checkpoint from before the refinement existed has none of its keys: load it as the
        # zero-initialised (identity) refinement, so that model's plans come back unchanged
        if not any(k.startswith(prefix) for k in state_dict):
            for name, p in self.named_parameters():
                last = name.startswith(f"mlp.{len(self.mlp) - 1}.")
                state_dict[prefix + name] = torch.zeros_like(p) if last else p.detach().clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, risk: Tensor, traj: Tensor, grid: BEVGrid) -> Tensor:
        """``risk`` (B, R, h, w) probabilities over ``grid``; ``traj`` (B, M, T, 2) (m)."""
        pts = traj.detach()
        samples = sample_risk_along(risk, pts, grid, self.offsets)  # (B, M, T, K)
        centre = pts.new_tensor([grid.x_max + grid.x_min, grid.y_max + grid.y_min]) / 2
        half = pts.new_tensor([grid.x_max - grid.x_min, grid.y_max - grid.y_min]) / 2
        t = traj.shape[2]
        time = torch.arange(1, t + 1, device=traj.device, dtype=traj.dtype) / t
        x = torch.cat(
            [
                samples.to(traj.dtype),
                (pts - centre) / half,
                time[:, None].expand(*pts.shape[:-1], 1),
            ],
            dim=-1,
        )
        return traj + self.scale * self.mlp(x)


class RiskHead(nn.Module):
    """BEV features (B, C, Hf, Wf) -> risk logits (B, R, Hf, Wf) on the same grid.

    Also owns ``gate`` (C,), the per-channel strength of the modulation
    ``F * (1 + gate * A)`` applied by :class:`RiskDistilled`, and ``cost_weight`` (a scalar,
    ``softplus`` of it weighs the risk cost of the planner's modes).
    """

    def __init__(
        self, in_channels: int, cfg: RiskHeadConfig | None = None, out_channels: int = 1
    ) -> None:
        super().__init__()
        cfg = cfg or RiskHeadConfig()
        self.cfg = cfg
        h = cfg.hidden
        self.inp = ConvBN(in_channels, h, k=1)
        if cfg.coarse:
            self.down = nn.Sequential(ConvBN(h, h, stride=2), ConvBN(h, h, dilation=2))
            self.fuse = ConvBN(h, h)
        else:
            self.down = None
            self.fuse = ConvBN(h, h, dilation=2)
        self.deform = (
            DeformableSampling(h, cfg.deform_heads, cfg.deform_points)
            if cfg.use_deformable
            else nn.Identity()
        )
        self.out_channels = out_channels
        self.out = nn.Conv2d(h, out_channels, 1)
        nn.init.constant_(self.out.bias, math.log(cfg.prior / (1 - cfg.prior)))
        self.gate = nn.Parameter(torch.full((in_channels,), cfg.gate_init))
        # softplus^-1(mode_cost): the cost starts at the configured weight
        raw = math.log(math.expm1(cfg.mode_cost)) if cfg.mode_cost > 0 else 0.0
        self.cost_weight = nn.Parameter(torch.tensor(raw))
        self.refiner = PlanRefiner(cfg) if cfg.refine else None

    def forward(self, features: Tensor) -> Tensor:
        x = self.inp(features)
        if self.down is not None:
            coarse = self.down(x)
            x = x + F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.deform(self.fuse(x)))

    def modulate(self, features: Tensor, prob: Tensor) -> Tensor:
        """``features * (1 + gate * A)``, ``A = max_r prob``: (B, C, Hf, Wf), (B, R, Hf, Wf)
        risk probabilities (the peak over time: a cell that will be risky at any step)."""
        a = prob.amax(dim=1, keepdim=True)
        if features.is_contiguous(memory_format=torch.channels_last):
            # on the NHWC view both broadcasts run over the last (contiguous) axis: one fused
            # pass, ~2x faster than the broadcast over C in NCHW order on a channels_last tensor
            f_hwc = features.permute(0, 2, 3, 1)
            out = torch.addcmul(f_hwc, f_hwc, a.permute(0, 2, 3, 1) * self.gate)
            return out.permute(0, 3, 1, 2)
        return torch.addcmul(features, features, a * self.gate[:, None, None])


FEATURE_LOGITS = "risk_logits_feat"
"""Output key of the head's risk logits on the feature grid (B, R, Hf, Wf)."""


def with_full_risk_map(outputs: Outputs, size: tuple[int, int]) -> Outputs:
    """``outputs`` with ``risk_logits`` and ``risk_map`` (B, R, H, W) on the full BEV grid of
    ``size`` (H, W): bilinear upsampling of :data:`FEATURE_LOGITS` (``align_corners=False``:
    the feature grid covers the same extent), then the sigmoid. What evaluation and pictures
    read; outputs that already carry them (the oracle, :class:`~rsd.models.hook.RiskHooked`),
    or carry no risk, come back as they are. A new dict; ``outputs`` is not changed."""
    if "risk_logits" in outputs or FEATURE_LOGITS not in outputs:
        return outputs
    full = F.interpolate(outputs[FEATURE_LOGITS], size=size, mode="bilinear", align_corners=False)
    return {**outputs, "risk_logits": full, "risk_map": full.sigmoid()}


class RiskDistilled(nn.Module):
    """A ``BEVBackbone`` with a :class:`RiskHead` between its encoder and its heads.

    Adds to the model's outputs: ``risk_logits_feat`` (B, R, Hf, Wf), the head's logits on the
    feature grid (the full-grid ``risk_logits`` / ``risk_map`` (B, R, H, W) on request:
    :func:`with_full_risk_map`) and, when the model plans with modes and ``mode_cost`` > 0,
    re-weighs its ``plan_logits`` by the risk cost (``plan_logits_raw``, ``plan_risk_cost``
    (B, M) kept); with ``refine`` its ``plan_traj`` and ``plan`` carry the head's
    :class:`PlanRefiner` residual. It sees features only: the read-out at ground-truth agents is
    :func:`rsd.losses.risk.agent_risk_readout`.

    With ``oracle_key`` the head's prediction is replaced by ``features[oracle_key]`` (B, R,
    H, W), the teacher's maps (the ``oracle`` control: an upper bound, not a deployable
    model); its outputs carry the full-grid maps too (they cost nothing there). With
    ``forcing_key`` and ``RiskHeadConfig.teacher_forcing`` > 0, training reads the teacher's
    maps there for the planner only (teacher forcing; evaluation never does).
    """

    def __init__(
        self,
        model: BEVBackbone,
        head: RiskHead,
        grid: BEVGrid | None = None,
        oracle_key: str | None = None,
        forcing_key: str | None = None,
    ) -> None:
        super().__init__()
        grid = grid or BEVGrid()
        if not isinstance(model, nn.Module) or not isinstance(model, BEVBackbone):
            raise TypeError(f"{type(model).__name__} is not a BEVBackbone nn.Module")
        self.model = model
        self.head = head
        self.grid = grid
        self.oracle_key = oracle_key
        self.forcing_key = forcing_key
        self.frozen = False
        self.bev_channels = model.bev_channels
        self.feature_stride = model.feature_stride

    def freeze_backbone(self) -> None:
        """Freeze the wrapped model (a probe: only what the head adds trains): no gradients for
        its parameters, and it stays in eval mode (BatchNorm keeps its running statistics)
        whatever ``train()`` is called with."""
        self.frozen = True
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> RiskDistilled:
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def encode(self, features: Features) -> Tensor:
        return self.model.encode(features)

    def _risk(self, feats: Tensor, features: Features) -> tuple[Tensor, Outputs]:
        """(feature-grid probabilities (B, R, Hf, Wf), the risk outputs): the head's, or the
        oracle's maps."""
        if self.oracle_key is None:
            logits = self.head(feats)
            return logits.sigmoid(), {FEATURE_LOGITS: logits}
        if self.oracle_key not in features:
            raise KeyError(
                f"the oracle model needs the teacher's maps as features[{self.oracle_key!r}]"
            )
        maps = features[self.oracle_key].to(feats.dtype)
        # max-pool: a footprint smaller than a feature cell must not fade
        coarse = F.adaptive_max_pool2d(maps, feats.shape[-2:])
        out = {
            FEATURE_LOGITS: torch.logit(coarse.clamp(1e-4, 1 - 1e-4)),
            "risk_logits": torch.logit(maps.clamp(1e-4, 1 - 1e-4)),
            "risk_map": maps,
        }
        return coarse, out

    def decode(self, feats: Tensor, features: Features) -> Outputs:
        size = features["bev"].shape[-2:]
        if tuple(size) != self.grid.shape:
            raise ValueError(f"bev is {tuple(size)} but the RiskHead's grid is {self.grid.shape}")
        prob, risk_out = self._risk(feats, features)
        if not self.head.cfg.planner_grad:
            prob = prob.detach()  # the head learns from the teacher only (see RiskHeadConfig)
        prob = self._forced(prob, features)
        out = dict(self.model.decode(self.head.modulate(feats, prob), features))
        if self.head.refiner is not None and "plan" in out:
            out = self._refine(out, prob)
        if self.head.cfg.mode_cost > 0 and "plan_traj" in out and "plan_logits" in out:
            cost = mode_risk_cost(prob, out["plan_traj"], self.grid)
            out = reselect_modes(out, cost, F.softplus(self.head.cost_weight))
        out.update(risk_out)
        return out

    def _forced(self, prob: Tensor, features: Features) -> Tensor:
        """The map the planner reads: ``prob``, or in training with ``teacher_forcing`` > 0,
        per sample with that probability the teacher's map ``features[forcing_key]``
        max-pooled to the feature grid."""
        rate = self.head.cfg.teacher_forcing
        if not self.training or rate <= 0 or self.oracle_key is not None:
            return prob
        if self.forcing_key is None or self.forcing_key not in features:
            raise KeyError(
                f"risk_head.teacher_forcing={rate} needs the teacher's maps in training as "
                f"features[{self.forcing_key!r}]"
            )
        teacher = F.adaptive_max_pool2d(features[self.forcing_key].to(prob.dtype), prob.shape[-2:])
        pick = torch.rand(prob.shape[0], 1, 1, 1, device=prob.device) < rate
        return torch.where(pick, teacher, prob)

    def _refine(self, out: Outputs, prob: Tensor) -> Outputs:
        """``out`` with ``plan_traj`` refined by the head's :class:`PlanRefiner` and ``plan``
        re-gathered from it (the most likely mode), or ``plan`` refined where there are no
        modes."""
        refiner = self.head.refiner
        assert refiner is not None
        if "plan_traj" in out and "plan_logits" in out:
            traj = refiner(prob, out["plan_traj"], self.grid)
            best = out["plan_logits"].argmax(dim=1)
            out["plan_traj"] = traj
            out["plan"] = traj[torch.arange(traj.shape[0], device=traj.device), best]
        else:
            out["plan"] = refiner(prob, out["plan"][:, None], self.grid)[:, 0]
        return out

    def forward(self, features: Features) -> Outputs:
        return self.decode(self.encode(features), features)


def attach_risk_head(
    model: BEVBackbone,
    cfg: RiskHeadConfig | None = None,
    grid: BEVGrid | None = None,
    *,
    risk_channels: int = 1,
    oracle_key: str | None = None,
    forcing_key: str | None = None,
) -> RiskDistilled:
    """Wrap ``model`` (not copied, not edited) with a fresh :class:`RiskHead` sized to its
    ``bev_channels`` with ``risk_channels`` outputs (the target's channels); ``grid`` is the
    BEV grid of the ``bev`` input (checked in ``decode``); ``oracle_key``, ``forcing_key``:
    see :class:`RiskDistilled`."""
    head = RiskHead(model.bev_channels, cfg, risk_channels)
    return RiskDistilled(model, head, grid, oracle_key, forcing_key)


def detach(rsd_model: RiskDistilled) -> BEVBackbone:
    """The wrapped model itself (same object): its outputs are the baseline's, bit for bit."""
    return rsd_model.model
