"""decode_detections against hand-made head outputs encoded with protocol.py's conventions."""

from __future__ import annotations

import math

import numpy as np
import torch

from rsd.models.detection import decode_detections
from tests.models.batches import GRID

STRIDE = 4
HF, WF = GRID.height // STRIDE, GRID.width // STRIDE


def _encode(boxes: list[list[float]], classes: list[int]) -> dict[str, torch.Tensor]:
    """Head outputs (batch of 1) that say exactly ``boxes``: the conventions of
    ``rsd.models.protocol`` written out by hand (centre cell = floor(pixel / stride), offset =
    the rest in (row, col), log size, (sin, cos) yaw, velocity), a Gaussian bump of logits."""
    out = {
        "det_heatmap": torch.full((1, 3, HF, WF), -8.0),
        "det_offset": torch.zeros(1, 2, HF, WF),
        "det_size": torch.zeros(1, 3, HF, WF),
        "det_yaw": torch.zeros(1, 2, HF, WF),
        "det_vel": torch.zeros(1, 2, HF, WF),
    }
    rows, cols = torch.meshgrid(torch.arange(HF), torch.arange(WF), indexing="ij")
    for (x, y, l, w, h, yaw, vx, vy), cls in zip(boxes, classes, strict=True):
        p = GRID.world_to_pixel(np.array([x, y])) / STRIDE
        i, j = np.floor(p).astype(int)
        prob = torch.exp(-((rows - i) ** 2 + (cols - j) ** 2) / 2.0) * 0.9  # peak 0.9 at (i, j)
        logit = torch.logit(prob.clamp(1e-4, 0.9))
        out["det_heatmap"][0, cls] = torch.maximum(out["det_heatmap"][0, cls], logit)
        out["det_offset"][0, :, i, j] = torch.tensor(p - (i, j), dtype=torch.float32)
        out["det_size"][0, :, i, j] = torch.tensor([l, w, h]).log()
        out["det_yaw"][0, :, i, j] = torch.tensor([math.sin(yaw), math.cos(yaw)])
        out["det_vel"][0, :, i, j] = torch.tensor([vx, vy])
    return out


BOXES = [
    [12.3, -3.7, 4.5, 1.85, 1.5, 0.2, 25.0, 0.5],
    [-10.1, 6.2, 10.0, 2.5, 3.5, -2.9, 18.0, -1.0],
    [40.0, 0.0, 5.6, 2.05, 2.3, 3.0, 30.0, 0.0],  # exactly on a cell corner
]
CLASSES = [0, 2, 1]


def test_round_trip_recovers_the_boxes() -> None:
    [det] = decode_detections(_encode(BOXES, CLASSES), GRID, STRIDE)
    assert len(det["boxes"]) == 3  # the Gaussian shoulders are suppressed by the 3x3 NMS
    order = torch.argsort(det["boxes"][:, 0])
    expected = torch.tensor(BOXES)[torch.argsort(torch.tensor(BOXES)[:, 0])]
    torch.testing.assert_close(det["boxes"][order], expected, atol=1e-4, rtol=0)
    assert det["classes"][order].tolist() == [2, 0, 1]
    torch.testing.assert_close(det["scores"], torch.full((3,), 0.9))


def test_threshold_max_det_and_ordering() -> None:
    out = _encode(BOXES, CLASSES)
    i, j = np.floor(GRID.world_to_pixel(np.array(BOXES[1][:2])) / STRIDE).astype(int)
    out["det_heatmap"][0, 2] = -8.0
    out["det_heatmap"][0, 2, i, j] = 0.0  # a lone peak of 0.5
    [det] = decode_detections(out, GRID, STRIDE)
    assert det["scores"].tolist() == sorted(det["scores"].tolist(), reverse=True)
    assert det["classes"][-1] == 2 and abs(float(det["scores"][-1]) - 0.5) < 1e-6
    [top] = decode_detections(out, GRID, STRIDE, max_det=1)
    assert len(top["boxes"]) == 1 and float(top["scores"][0]) > 0.89
    [strict] = decode_detections(out, GRID, STRIDE, score_threshold=0.6)
    assert sorted(strict["classes"].tolist()) == [0, 1]


def test_batch_with_an_empty_sample() -> None:
    one = _encode(BOXES[:1], CLASSES[:1])
    empty = _encode([], [])
    batch = {k: torch.cat([one[k], empty[k]]) for k in one}
    dets = decode_detections(batch, GRID, STRIDE)
    assert [len(d["boxes"]) for d in dets] == [1, 0]
    assert dets[1]["boxes"].shape == (0, 8) and dets[1]["classes"].dtype == torch.long


def test_peaks_of_different_classes_in_one_cell_are_both_kept() -> None:
    out = _encode([BOXES[0], BOXES[0]], [0, 1])
    [det] = decode_detections(out, GRID, STRIDE)
    assert sorted(det["classes"].tolist()) == [0, 1]
