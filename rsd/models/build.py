"""The one place that turns a :class:`~rsd.models.config.ModelConfig` into a module."""

from __future__ import annotations

from torch import nn

from rsd.geometry import BEVGrid
from rsd.models.backbone import VADLite
from rsd.models.cnn_planner import CNNPlanner
from rsd.models.config import ModelConfig
from rsd.models.risk_head import attach_risk_head


def build_model(
    cfg: ModelConfig,
    in_channels: int,
    grid: BEVGrid | None = None,
    *,
    risk_head: bool = False,
    risk_channels: int = 1,
    oracle_key: str | None = None,
    forcing_key: str | None = None,
) -> nn.Module:
    """The model of ``cfg`` for a ``bev`` input of ``in_channels`` channels on ``grid``
    (default :class:`BEVGrid`); with ``risk_head`` the backbone is wrapped in
    :class:`~rsd.models.risk_head.RiskDistilled` (configured by ``cfg.risk_head``). Every
    result is a ``BEVBackbone``. Whether a training run has the RiskHead is its task's choice
    (:mod:`rsd.tasks`), as are ``risk_channels`` (the target's), ``oracle_key`` and
    ``forcing_key`` (:class:`~rsd.models.risk_head.RiskDistilled`)."""
    backbone_cls = VADLite if cfg.kind == "vad" else CNNPlanner
    model = backbone_cls(in_channels, cfg.backbone)
    if risk_head:
        return attach_risk_head(
            model,
            cfg.risk_head,
            grid or BEVGrid(),
            risk_channels=risk_channels,
            oracle_key=oracle_key,
            forcing_key=forcing_key,
        )
    return model
