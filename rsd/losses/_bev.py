"""Reading BEV rasters at continuous ego-frame points (bilinear, differentiable in the points)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rsd.geometry import BEVGrid, world_to_pixel


def sample_bev(maps: Tensor, xy: Tensor, grid: BEVGrid) -> Tensor:
    """Bilinear values of ``maps`` (B, H, W) at points ``xy`` (B, ..., 2) in metres -> (B, ...).

    Cell centres hold the cell values; points outside the grid read 0. Gradients flow to both
    the map and the points (the latter only where the map varies within a cell of the point).
    """
    b, h, w = maps.shape
    if (h, w) != grid.shape:
        raise ValueError(f"map of shape {(h, w)} does not match the grid {grid.shape}")
    rc = world_to_pixel(xy.reshape(b, 1, -1, 2), grid)
    # grid_sample with align_corners=False: -1 and +1 are the outer edges of the border cells,
    # so a continuous (row, col) with cells spanning [r, r + 1) maps to 2 * r / H - 1.
    norm = torch.stack([2 * rc[..., 1] / w - 1, 2 * rc[..., 0] / h - 1], dim=-1)
    out = F.grid_sample(
        maps[:, None].to(norm.dtype),
        norm,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out.reshape(xy.shape[:-1])
