"""Synthetic model batches with every key the models read (shapes as in rsd.models.protocol)."""

from __future__ import annotations

import torch

from rsd.data.raster import BEVGrid
from rsd.scene import Command

GRID = BEVGrid()
IN_CHANNELS = 7


def make_batch(b: int, k: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of ``b`` random rasters with ``k`` agents each, inside the grid."""
    g = torch.Generator().manual_seed(seed)
    h, w = GRID.shape
    boxes = torch.zeros(b, k, 8)
    boxes[..., 0] = torch.rand(b, k, generator=g) * 70 - 20  # x in [-20, 50]
    boxes[..., 1] = torch.rand(b, k, generator=g) * 28 - 14  # y in [-14, 14]
    boxes[..., 2:5] = torch.tensor([4.5, 1.85, 1.5])
    return {
        "bev": (torch.rand(b, IN_CHANNELS, h, w, generator=g) > 0.8).float(),
        "command": torch.randint(0, len(Command), (b,), generator=g),
        "ego_status": torch.rand(b, 4, generator=g) * torch.tensor([30.0, 2.0, 0.1, 1.0]),
        "agent_boxes": boxes,
        "agent_mask": torch.ones(b, k, dtype=torch.bool),
    }
