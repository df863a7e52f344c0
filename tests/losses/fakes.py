"""Hand-made targets (``make_batch``: a batch's ``targets``) and model outputs for the loss
tests (shapes as in rsd.models.protocol).

Scene: the default grid (160 x 64 at 0.5 m), T = 6 steps, the expert drives straight ahead at
10 m/s along y = 0; agent 0 is a car in the right-hand lane (y = -4) at x = 20 that keeps pace,
agent 1 a van in the left-hand lane (y = 4), agent 2 a padding slot. The drivable area is the
band |y| <= 6 m; the teacher's risk map marks agent 0's footprint.
"""

from __future__ import annotations

import torch

from rsd.geometry import BEVGrid

GRID = BEVGrid()
STRIDE = 4
T = 6
M = 3
N_CLS = 3


def band_rows_cols(x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> tuple[slice, slice]:
    """Rows and columns of the cells inside ``x in (x_lo, x_hi], y in (y_lo, y_hi]``."""
    res = GRID.resolution
    rows = slice(round((GRID.x_max - x_hi) / res), round((GRID.x_max - x_lo) / res))
    cols = slice(round((GRID.y_max - y_hi) / res), round((GRID.y_max - y_lo) / res))
    return rows, cols


def make_batch(b: int = 2) -> dict:
    h, w = GRID.shape
    t = torch.arange(1, T + 1, dtype=torch.float32) * 0.5
    ego_future = torch.zeros(b, T, 3)
    ego_future[..., 0] = 10.0 * t
    agent_boxes = torch.zeros(b, 3, 8)
    agent_boxes[:, 0] = torch.tensor([20.0, -4.0, 4.5, 1.85, 1.5, 0.0, 10.0, 0.0])
    agent_boxes[:, 1] = torch.tensor([-10.0, 4.0, 5.6, 2.05, 2.3, 0.1, 8.0, 0.5])
    agent_future = torch.zeros(b, 3, T, 3)
    agent_future[:, 0, :, 0] = 20.0 + 10.0 * t
    agent_future[:, 0, :, 1] = -4.0
    agent_future[:, 1, :, 0] = -10.0 + 8.0 * t
    agent_future[:, 1, :, 1] = 4.0
    maps = torch.zeros(b, 2, h, w)
    rows, cols = band_rows_cols(GRID.x_min, GRID.x_max, -6.0, 6.0)
    maps[:, 0, rows, cols] = 1.0
    risk = torch.zeros(b, 1, h, w)
    rows, cols = band_rows_cols(18.0, 22.0, -5.0, -3.0)
    risk[:, 0, rows, cols] = 1.0
    return {
        "bev": torch.zeros(b, 8, h, w),
        "command": torch.zeros(b, dtype=torch.long),
        "ego_status": torch.zeros(b, 4),
        "ego_size": torch.tensor([4.5, 1.85, 1.5]).repeat(b, 1),
        "ego_future": ego_future,
        "ego_future_valid": torch.ones(b, T, dtype=torch.bool),
        "agent_boxes": agent_boxes,
        "agent_cls": torch.tensor([0, 1, -1]).repeat(b, 1),
        "agent_mask": torch.tensor([True, True, False]).repeat(b, 1),
        "agent_in_grid": torch.tensor([True, True, False]).repeat(b, 1),
        "agent_future": agent_future,
        "agent_future_valid": torch.tensor([True, True, False])[:, None].repeat(b, 1, T),
        "target_maps": maps,
        "risk_map": risk,
        "agent_risk": torch.tensor([0.9, 0.2, 0.0]).repeat(b, 1),
        "agent_rank": torch.tensor([1, 2, 0]).repeat(b, 1),
        "agent_risk_valid": torch.tensor([True, True, False]).repeat(b, 1),
        "risk_valid": torch.ones(b, dtype=torch.bool),
        "scene_risk": torch.full((b,), 0.5),
    }


def make_outputs(b: int = 2, seed: int = 0, risk: bool = True) -> dict[str, torch.Tensor]:
    """Random outputs of the right shapes, leaves that require grad."""
    gen = torch.Generator().manual_seed(seed)
    h, w = GRID.shape
    hf, wf = h // STRIDE, w // STRIDE

    def leaf(*shape: int, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * scale + offset).requires_grad_()

    out = {
        "plan_traj": leaf(b, M, T, 2, scale=3.0, offset=5.0),
        "plan_scale": (torch.rand(b, M, T, 2, generator=gen) + 0.2).requires_grad_(),
        "plan_logits": leaf(b, M),
        "det_heatmap": leaf(b, N_CLS, hf, wf),
        "det_offset": leaf(b, 2, hf, wf),
        "det_size": leaf(b, 3, hf, wf),
        "det_yaw": leaf(b, 2, hf, wf),
        "det_vel": leaf(b, 2, hf, wf),
        "map_logits": leaf(b, 2, h, w),
    }
    if risk:
        out["risk_map"] = torch.rand(b, 1, h, w, generator=gen).requires_grad_()
        out["agent_risk_pred"] = torch.rand(b, 3, generator=gen).requires_grad_()
    return out
