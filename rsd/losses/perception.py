"""Perception losses: CenterNet-style detection on the feature grid, and the auxiliary BEV map.

Detection encoding (the contract in :mod:`rsd.models.protocol`), for an agent at ego-frame
``(x, y)`` (m) on a feature grid of stride ``s`` BEV cells:

* ``pixel = grid.world_to_pixel(x, y)`` continuous ``(row, col)``; centre cell
  ``c = floor(pixel / s)``; offset ``pixel / s - c`` in [0, 1) (feature cells, row then col);
* size ``log(l, w, h)`` (m), yaw ``(sin, cos)``, velocity ``(vx, vy)`` (m/s, ego frame).

Only real agents whose centre lies in the grid (``agent_mask & agent_in_grid``) with a class in
``[0, n_classes)`` are targets.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rsd.geometry import BEVGrid, BoxField, world_to_pixel

REGRESSION_KEYS = ("offset", "size", "yaw", "vel")
"""Regression targets of :func:`detection_targets`, predicted as ``det_<key>``."""


def gaussian_radius(length: Tensor, width: Tensor, min_overlap: float) -> Tensor:
    """Largest centre shift ``r`` (same unit as the sizes) along both axes at once that keeps
    the IoU of a ``length x width`` box with its shifted copy at least ``min_overlap``.

    Shifting by ``(r, r)`` leaves an intersection ``I = (l - r)(w - r)`` and a union
    ``2 l w - I``; ``I / (2 l w - I) >= o`` is ``I >= k l w`` with ``k = 2 o / (1 + o)``, i.e.
    ``r^2 - (l + w) r + (1 - k) l w >= 0``, whose smaller root is the radius.
    """
    k = 2 * min_overlap / (1 + min_overlap)
    s = length + width
    disc = (s * s - 4 * (1 - k) * length * width).clamp_min(0.0)
    return (s - disc.sqrt()) / 2


def detection_targets(
    targets: dict[str, Any],
    grid: BEVGrid,
    stride: int,
    n_classes: int,
    *,
    min_overlap: float = 0.1,
    min_radius: int = 1,
) -> dict[str, Tensor]:
    """Centre heatmaps and regression targets of the agents in ``targets`` on the feature grid
    ``(Hf, Wf) = (H / stride, W / stride)``.

    Heatmap: per class, the maximum over agents of a Gaussian
    ``exp(-(dr^2 + dc^2) / (2 sigma^2))`` around the integer centre cell (value exactly 1 there),
    cut to a ``(2 r + 1)^2`` window, ``sigma = (2 r + 1) / 6``, ``r = max(min_radius,
    floor(gaussian_radius))`` in feature cells from the box's axis-aligned BEV extent.

    Returns (K = agent slots of the targets):

    * ``heatmap`` (B, n_classes, Hf, Wf) in [0, 1];
    * ``index`` (B, K) long, flat ``row * Wf + col`` of the centre cell; ``mask`` (B, K) bool;
    * ``offset`` (B, K, 2) cells, ``size`` (B, K, 3) log m, ``yaw`` (B, K, 2) sin/cos,
      ``vel`` (B, K, 2) m/s (values at masked-out slots are finite and meaningless);
    * ``vel_mask`` (B, K) bool: ``mask`` and the velocity measured (``agent_vel_valid``, all
      True when the targets do not carry it).
    """
    boxes: Tensor = targets["agent_boxes"]
    b, k = boxes.shape[:2]
    h, w = grid.shape
    if h % stride or w % stride:
        raise ValueError(f"grid {grid.shape} is not a multiple of the stride {stride}")
    hf, wf = h // stride, w // stride
    cls: Tensor = targets["agent_cls"]
    mask = (
        targets["agent_mask"].bool()
        & targets["agent_in_grid"].bool()
        & (cls >= 0)
        & (cls < n_classes)
    )

    pixel = world_to_pixel(boxes[..., : BoxField.Y + 1], grid) / stride  # (B, K, 2) feature cells
    cell = pixel.floor()
    cell = torch.stack([cell[..., 0].clamp(0, hf - 1), cell[..., 1].clamp(0, wf - 1)], dim=-1)
    index = (cell[..., 0] * wf + cell[..., 1]).long()

    length, width = boxes[..., BoxField.LENGTH], boxes[..., BoxField.WIDTH]
    yaw = boxes[..., BoxField.YAW]
    cos, sin = yaw.cos().abs(), yaw.sin().abs()
    extent_rows = (length * cos + width * sin) / (grid.resolution * stride)  # along x
    extent_cols = (length * sin + width * cos) / (grid.resolution * stride)  # along y
    radius = gaussian_radius(extent_rows, extent_cols, min_overlap).floor().clamp_min(min_radius)
    sigma = (2 * radius + 1) / 6

    rows = torch.arange(hf, dtype=boxes.dtype, device=boxes.device)
    cols = torch.arange(wf, dtype=boxes.dtype, device=boxes.device)
    dr = rows.view(1, 1, hf, 1) - cell[..., 0, None, None]  # (B, K, Hf, 1)
    dc = cols.view(1, 1, 1, wf) - cell[..., 1, None, None]  # (B, K, 1, Wf)
    r4 = radius[..., None, None]
    window = (dr.abs() <= r4) & (dc.abs() <= r4) & mask[..., None, None]
    blob = torch.exp(-(dr * dr + dc * dc) / (2 * sigma[..., None, None] ** 2)) * window
    heatmap = boxes.new_zeros(b, n_classes, hf, wf)
    for c in range(n_classes):
        if k:
            heatmap[:, c] = (blob * (cls == c)[..., None, None]).amax(dim=1)

    size = boxes[..., BoxField.LENGTH : BoxField.HEIGHT + 1].clamp_min(1e-3).log()
    return {
        "heatmap": heatmap,
        "index": index,
        "mask": mask,
        "offset": pixel - cell,
        "size": size,
        "yaw": torch.stack([yaw.sin(), yaw.cos()], dim=-1),
        "vel": boxes[..., BoxField.VX : BoxField.VY + 1],
        "vel_mask": mask & targets["agent_vel_valid"].bool()
        if "agent_vel_valid" in targets
        else mask,
    }


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CenterNet) of heatmap ``logits`` vs ``target``
    (both (B, C, Hf, Wf), target in [0, 1] with 1 at the centres):

    ``-1/N sum [ (1 - p)^a log p  if y = 1;  (1 - y)^b p^a log(1 - p)  otherwise ]``,
    ``p = sigmoid(logits)``, ``N = max(1, number of centres)``. Dimensionless.
    """
    pos = (target >= 1.0 - 1e-6).to(logits.dtype)
    p = torch.sigmoid(logits)
    pos_term = (1 - p).pow(alpha) * F.logsigmoid(logits) * pos
    neg_term = (1 - target).pow(beta) * p.pow(alpha) * F.logsigmoid(-logits) * (1 - pos)
    return -(pos_term.sum() + neg_term.sum()) / pos.sum().clamp_min(1.0)


def _gather(pred: Tensor, index: Tensor) -> Tensor:
    """(B, C, Hf, Wf) maps read at flat cells ``index`` (B, K) -> (B, K, C)."""
    b, c = pred.shape[:2]
    flat = pred.reshape(b, c, -1)
    return flat.gather(2, index[:, None, :].expand(b, c, index.shape[1])).transpose(1, 2)


def detection_losses(
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    *,
    alpha: float = 2.0,
    beta: float = 4.0,
) -> dict[str, Tensor]:
    """Unweighted detection terms for the heads present in ``outputs``:

    * ``det_heatmap``: :func:`focal_loss` of ``det_heatmap`` logits vs ``targets["heatmap"]``;
    * ``det_offset`` (cells), ``det_size`` (log m), ``det_yaw``, ``det_vel`` (m/s): L1 of the
      prediction read at each target centre cell, summed over components and over objects and
      divided by the number of objects (0 when there is none); ``det_vel`` over the objects of
      ``vel_mask`` only (an unknown velocity teaches nothing).
    """
    out: dict[str, Tensor] = {}
    if "det_heatmap" in outputs:
        out["det_heatmap"] = focal_loss(outputs["det_heatmap"], targets["heatmap"], alpha, beta)
    for key in REGRESSION_KEYS:
        name = f"det_{key}"
        if name in outputs:
            which = targets.get("vel_mask", targets["mask"]) if key == "vel" else targets["mask"]
            mask = which.to(targets["offset"].dtype)[..., None]
            pred = _gather(outputs[name], targets["index"])
            out[name] = ((pred - targets[key]).abs() * mask).sum() / mask.sum().clamp_min(1.0)
    return out


def map_loss(map_logits: Tensor, target_maps: Tensor) -> Tensor:
    """Binary cross-entropy of ``map_logits`` (B, 2, H, W) vs ``target_maps`` (B, 2, H, W) in
    {0, 1} (drivable area, lane boundaries), mean over cells and channels. Nats."""
    return F.binary_cross_entropy_with_logits(map_logits, target_maps.to(map_logits.dtype))


__all__ = [
    "REGRESSION_KEYS",
    "detection_losses",
    "detection_targets",
    "focal_loss",
    "gaussian_radius",
    "map_loss",
]
