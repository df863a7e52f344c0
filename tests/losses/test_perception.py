"""Detection targets and losses, map loss: hand-computed cells, offsets and values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsd.geometry import BEVGrid
from rsd.losses.perception import (
    detection_losses,
    detection_targets,
    focal_loss,
    gaussian_radius,
    map_loss,
)

GRID = BEVGrid()


def _batch(boxes: list[list[float]], cls: list[int], in_grid: list[bool] | None = None) -> dict:
    k = len(boxes)
    return {
        "agent_boxes": torch.tensor(boxes, dtype=torch.float32).reshape(1, k, 8),
        "agent_cls": torch.tensor([cls], dtype=torch.long),
        "agent_mask": torch.ones(1, k, dtype=torch.bool),
        "agent_in_grid": torch.tensor([in_grid or [True] * k], dtype=torch.bool),
    }


CAR_AT_10 = [10.0, 0.0, 4.5, 1.85, 1.5, 0.3, 5.0, -1.0]


def test_peak_and_regression_targets_of_an_agent_at_10_0() -> None:
    # row = (56 - 10) / 0.5 = 92, col = (16 - 0) / 0.5 = 32; stride 4 -> cell (23, 8), offset 0.
    t = detection_targets(_batch([CAR_AT_10], [1]), GRID, stride=4, n_classes=3)
    heat = t["heatmap"]
    assert heat.shape == (1, 3, 40, 16)
    assert heat[0, 1, 23, 8] == 1.0
    assert heat[0, 1].max() == 1.0 and (heat[0, 1] == 1.0).sum() == 1
    assert heat[0, 0].sum() == 0 and heat[0, 2].sum() == 0  # other classes empty
    assert t["index"][0, 0] == 23 * 16 + 8 and bool(t["mask"][0, 0])
    torch.testing.assert_close(t["offset"][0, 0], torch.tensor([0.0, 0.0]))
    log_size = torch.tensor([math.log(4.5), math.log(1.85), math.log(1.5)])
    torch.testing.assert_close(t["size"][0, 0], log_size)
    torch.testing.assert_close(t["yaw"][0, 0], torch.tensor([math.sin(0.3), math.cos(0.3)]))
    torch.testing.assert_close(t["vel"][0, 0], torch.tensor([5.0, -1.0]))


def test_sub_cell_offset_matches_the_grid_convention() -> None:
    # (10.3, -1.1): row 91.4 -> 22.85 cells, col 34.2 -> 8.55 cells at stride 4.
    box = [10.3, -1.1, 4.5, 1.85, 1.5, 0.0, 0.0, 0.0]
    t = detection_targets(_batch([box], [0]), GRID, stride=4, n_classes=3)
    assert t["heatmap"][0, 0, 22, 8] == 1.0
    torch.testing.assert_close(t["offset"][0, 0], torch.tensor([0.85, 0.55]))
    # the same numbers from BEVGrid.world_to_pixel (numpy)
    rc = GRID.world_to_pixel(np.array([10.3, -1.1])) / 4
    np.testing.assert_allclose(t["offset"][0, 0].numpy(), rc - np.floor(rc), atol=1e-5)
    # at stride 2: 45.7 -> cell 45, 17.1 -> cell 17
    t2 = detection_targets(_batch([box], [0]), GRID, stride=2, n_classes=3)
    assert t2["heatmap"].shape == (1, 3, 80, 32) and t2["heatmap"][0, 0, 45, 17] == 1.0
    torch.testing.assert_close(t2["offset"][0, 0], torch.tensor([0.7, 0.1]))


def test_gaussian_falls_off_with_the_minimum_radius() -> None:
    # A car at stride 4 spans 2.25 x 0.925 cells: radius < 1, so the minimum radius 1 applies,
    # sigma = 3 / 6 = 0.5 and a 4-neighbour reads exp(-1 / (2 * 0.25)) = exp(-2).
    heat = detection_targets(_batch([CAR_AT_10], [0]), GRID, 4, 3)["heatmap"][0, 0]
    for r, c in ((22, 8), (24, 8), (23, 7), (23, 9)):
        assert heat[r, c] == pytest.approx(math.exp(-2))
    assert heat[22, 7] == pytest.approx(math.exp(-4))
    assert heat[21, 8] == 0 and heat[23, 10] == 0  # outside the (2r+1)^2 window
    assert (heat > 0).sum() == 9


def test_gaussian_radius_keeps_the_overlap() -> None:
    length, width, o = torch.tensor(3.0), torch.tensor(2.0), 0.3
    r = gaussian_radius(length, width, o)
    inter = (length - r) * (width - r)
    assert float(inter / (2 * length * width - inter)) == pytest.approx(o)


def test_only_real_in_grid_agents_with_known_class_are_targets() -> None:
    batch = _batch([CAR_AT_10, CAR_AT_10, CAR_AT_10], [0, 0, 5], in_grid=[True, False, True])
    batch["agent_mask"][0, 0] = False
    t = detection_targets(batch, GRID, 4, 3)
    assert not t["mask"].any() and t["heatmap"].sum() == 0


def test_no_agents_gives_empty_targets_and_zero_regression() -> None:
    batch = _batch([], [])
    t = detection_targets(batch, GRID, 4, 3)
    assert t["heatmap"].sum() == 0
    logits = torch.zeros(1, 3, 40, 16, requires_grad=True)
    losses = detection_losses({"det_heatmap": logits, "det_size": torch.zeros(1, 3, 40, 16)}, t)
    assert float(losses["det_size"]) == 0.0
    # no centre: only the negative term, normalised by 1: 3 * 40 * 16 cells * 0.25 * ln 2
    assert losses["det_heatmap"].item() == pytest.approx(3 * 40 * 16 * 0.25 * math.log(2))


def test_focal_loss_hand_values() -> None:
    # p = 0.5 on a centre: (1 - p)^2 * -log p = 0.25 ln 2; on a background cell the same.
    pos = focal_loss(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert float(pos) == pytest.approx(0.25 * math.log(2))
    # a cell at y = 0.5 is down-weighted by (1 - 0.5)^4
    near = focal_loss(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 0.5]]]]))
    assert float(near) == pytest.approx(0.25 * math.log(2) * (1 + 1 / 16))


def test_focal_loss_is_near_zero_for_a_perfect_heatmap_and_large_for_a_wrong_one() -> None:
    target = detection_targets(_batch([CAR_AT_10], [0]), GRID, 4, 3)["heatmap"]
    perfect = torch.where(target >= 1.0, 20.0, -20.0)
    wrong = torch.roll(perfect, shifts=5, dims=2)
    assert float(focal_loss(perfect, target)) < 1e-6
    assert float(focal_loss(wrong, target)) > 10.0


def test_regression_losses_read_the_centre_cells_and_average_over_objects() -> None:
    box2 = [30.3, 5.2, 10.0, 2.5, 3.5, -0.2, 20.0, 0.0]
    t = detection_targets(_batch([CAR_AT_10, box2], [0, 2]), GRID, 4, 3)
    outputs = {}
    for key, c in (("offset", 2), ("size", 3), ("yaw", 2), ("vel", 2)):
        pred = torch.zeros(1, c, 40, 16)
        for k in range(2):
            r, col = divmod(int(t["index"][0, k]), 16)
            pred[0, :, r, col] = t[key][0, k]
        outputs[f"det_{key}"] = pred
    exact = detection_losses(outputs, t)
    assert set(exact) == {"det_offset", "det_size", "det_yaw", "det_vel"}
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in exact.values())
    # +0.1 on both offset components of both objects: (0.2 + 0.2) / 2 objects = 0.2
    shifted = dict(outputs, det_offset=outputs["det_offset"] + 0.1)
    assert float(detection_losses(shifted, t)["det_offset"]) == pytest.approx(0.2)


def test_map_loss_is_bce() -> None:
    target = torch.zeros(2, 2, 4, 4)
    target[:, 0, :2] = 1.0
    assert float(map_loss(torch.zeros(2, 2, 4, 4), target)) == pytest.approx(math.log(2))
    confident = torch.where(target > 0, 30.0, -30.0)
    assert float(map_loss(confident, target)) < 1e-6


def test_targets_round_trip_through_the_models_decoder() -> None:
    """The contract of rsd.models.protocol: outputs equal to the targets decode to the boxes."""
    from rsd.models.detection import decode_detections

    boxes = [
        CAR_AT_10,
        [30.3, 5.2, 10.0, 2.5, 3.5, -0.2, 20.0, 0.0],
        [-7.9, -9.6, 5.6, 2.0, 2.3, 3.0, 1, 2],
    ]
    for stride in (2, 4):
        t = detection_targets(_batch(boxes, [0, 2, 1]), GRID, stride, 3)
        hf, wf = t["heatmap"].shape[-2:]
        outputs = {"det_heatmap": torch.where(t["heatmap"] >= 1.0, 10.0, -10.0)}
        for key in ("offset", "size", "yaw", "vel"):
            pred = torch.zeros(1, t[key].shape[-1], hf * wf)
            pred[0, :, t["index"][0]] = t[key][0].T
            outputs[f"det_{key}"] = pred.reshape(1, -1, hf, wf)
        det = decode_detections(outputs, GRID, stride)[0]
        assert sorted(det["classes"].tolist()) == [0, 1, 2]
        order = det["classes"].argsort()
        expected = torch.tensor(boxes)[[0, 2, 1]]  # classes 0, 1, 2
        expected[:, 5] = torch.atan2(expected[:, 5].sin(), expected[:, 5].cos())
        torch.testing.assert_close(det["boxes"][order], expected, atol=1e-4, rtol=1e-4)
