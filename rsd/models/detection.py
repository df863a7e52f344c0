"""Decoding detections from the centre-heatmap head outputs (conventions in
:mod:`rsd.models.protocol`; the matching target encoding lives in :mod:`rsd.losses`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rsd.geometry import BEVGrid, pixel_to_world
from rsd.models.protocol import Outputs


def peak_mask(heat: Tensor) -> Tensor:
    """(B, n_cls, Hf, Wf) bool: local maxima of ``heat`` in their 3x3 neighbourhood (per class)."""
    return heat == F.max_pool2d(heat, 3, stride=1, padding=1)


def cells_to_world(rc: Tensor, grid: BEVGrid, stride: int) -> Tensor:
    """(..., 2) continuous feature-grid ``(row, col)`` -> (..., 2) ego ``(x, y)`` in metres."""
    return pixel_to_world(rc * stride, grid)


def decode_detections(
    outputs: Outputs,
    grid: BEVGrid,
    stride: int,
    max_det: int = 50,
    score_threshold: float = 0.1,
) -> list[dict[str, Tensor]]:
    """Boxes from ``det_*`` outputs on a feature grid of ``stride`` BEV cells per cell.

    Peaks of ``sigmoid(det_heatmap)`` that are 3x3 local maxima (max-pool NMS), best
    ``max_det`` over all classes, kept when ``score >= score_threshold``. A peak at cell
    ``(i, j)`` with offset ``(dr, dc)`` is centred at BEV pixel ``((i + dr) s, (j + dc) s)``.

    Returns one dict per sample, sorted by score (descending):
    ``boxes`` (N, 8) ``x, y, l, w, h, yaw, vx, vy`` (ego frame, m, rad, m/s), ``scores`` (N,),
    ``classes`` (N,) long.
    """
    heat = outputs["det_heatmap"].detach().float().sigmoid()
    b, n_cls, hf, wf = heat.shape
    scores_all = (heat * peak_mask(heat)).flatten(1)  # (B, n_cls * Hf * Wf)
    k = min(max_det, scores_all.shape[1])
    scores, idx = scores_all.topk(k, dim=1)
    cls, cell = idx // (hf * wf), idx % (hf * wf)
    rc = torch.stack([cell // wf, cell % wf], dim=-1).to(heat.dtype)  # (B, k, 2)

    def gather(key: str) -> Tensor:  # (B, c, Hf, Wf) at the peaks -> (B, k, c)
        t = outputs[key].detach().float().flatten(2)
        return t.gather(2, cell[:, None].expand(-1, t.shape[1], -1)).transpose(1, 2)

    xy = cells_to_world(rc + gather("det_offset"), grid, stride)
    size = gather("det_size").exp()
    sin_cos = gather("det_yaw")
    yaw = torch.atan2(sin_cos[..., 0], sin_cos[..., 1])
    boxes = torch.cat([xy, size, yaw[..., None], gather("det_vel")], dim=-1)  # (B, k, 8)
    keep = scores >= score_threshold
    return [
        {"boxes": boxes[i][keep[i]], "scores": scores[i][keep[i]], "classes": cls[i][keep[i]]}
        for i in range(b)
    ]
