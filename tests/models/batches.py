"""Synthetic model inputs with every feature the models read (shapes as in rsd.models.protocol),
and agent boxes for the loss-side read-outs."""

from __future__ import annotations

import torch

from rsd.geometry import ROUTE_POINTS, BEVGrid
from rsd.scene import Command

GRID = BEVGrid()
IN_CHANNELS = 7


def make_agent_boxes(b: int, k: int = 4, seed: int = 0) -> torch.Tensor:
    """(b, k, 8) agent boxes (cars) with centres inside the grid."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.zeros(b, k, 8)
    boxes[..., 0] = torch.rand(b, k, generator=g) * 70 - 20  # x in [-20, 50]
    boxes[..., 1] = torch.rand(b, k, generator=g) * 28 - 14  # y in [-14, 14]
    boxes[..., 2:5] = torch.tensor([4.5, 1.85, 1.5])
    return boxes


def make_features(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Features of ``b`` random frames: ``bev``, ``command``, ``ego_status``, ``route``."""
    g = torch.Generator().manual_seed(seed)
    h, w = GRID.shape
    return {
        "bev": (torch.rand(b, IN_CHANNELS, h, w, generator=g) > 0.8).float(),
        "command": torch.randint(0, len(Command), (b,), generator=g),
        "ego_status": torch.rand(b, 4, generator=g) * torch.tensor([30.0, 2.0, 0.1, 1.0]),
        "route": torch.rand(b, ROUTE_POINTS, 2, generator=g) * 40.0,
        "route_valid": torch.ones(b),
    }
