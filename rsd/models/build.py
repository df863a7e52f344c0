"""The one place that turns a :class:`~rsd.models.config.ModelConfig` into a module."""

from __future__ import annotations

from torch import nn

from rsd.geometry import BEVGrid
from rsd.models.backbone import VADLite
from rsd.models.cnn_planner import CNNPlanner
from rsd.models.config import ModelConfig
from rsd.models.risk_head import attach_risk_head


def build_model(cfg: ModelConfig, in_channels: int, grid: BEVGrid | None = None) -> nn.Module:
    """The model of ``cfg`` for a ``bev`` input of ``in_channels`` channels on ``grid``
    (default :class:`BEVGrid`); with ``cfg.risk`` the backbone is wrapped in
    :class:`~rsd.models.risk_head.RiskDistilled`. Every result is a ``BEVBackbone``."""
    backbone_cls = VADLite if cfg.kind == "vad" else CNNPlanner
    model = backbone_cls(in_channels, cfg.backbone)
    if cfg.risk:
        return attach_risk_head(model, cfg.risk_head, grid or BEVGrid())
    return model
