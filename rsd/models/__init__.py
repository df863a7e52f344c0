"""Driving models and the RiskHead plug-in; the contract is :mod:`rsd.models.protocol`."""

from rsd.models.backbone import VADLite
from rsd.models.build import build_model
from rsd.models.cnn_planner import CNNPlanner
from rsd.models.config import BackboneConfig, ModelConfig, RiskHeadConfig
from rsd.models.detection import decode_detections
from rsd.models.hook import RiskHooked, hook_risk_head
from rsd.models.protocol import BEVBackbone, Features, Outputs
from rsd.models.risk_head import (
    FEATURE_LOGITS,
    RiskDistilled,
    RiskHead,
    attach_risk_head,
    detach,
    with_full_risk_map,
)

__all__ = [
    "FEATURE_LOGITS",
    "BEVBackbone",
    "BackboneConfig",
    "CNNPlanner",
    "Features",
    "ModelConfig",
    "Outputs",
    "RiskDistilled",
    "RiskHead",
    "RiskHeadConfig",
    "RiskHooked",
    "VADLite",
    "attach_risk_head",
    "build_model",
    "decode_detections",
    "detach",
    "hook_risk_head",
    "with_full_risk_map",
]
