"""Risk distillation and the trajectory likelihood constraint: hand values and masks."""

from __future__ import annotations

import math

import pytest
import torch

from rsd.losses.risk import (
    agent_risk_readout,
    distill_agent_loss,
    distill_map_loss,
    pool_risk_target,
    rank_loss,
    risk_mass_loss,
    risk_weighted_nll,
    risk_weights,
    student_risk_map,
)
from tests.losses.fakes import GRID, band_rows_cols

H, W = GRID.shape


def test_map_l1_is_zero_for_identical_maps_and_the_area_fraction_for_one_vs_zero() -> None:
    target = torch.rand(2, 1, H, W)
    assert float(distill_map_loss(target.clone(), target, torch.ones(2, dtype=torch.bool))) == 0
    pred = torch.zeros(2, 1, H, W)
    target = torch.zeros(2, 1, H, W)
    target[:, 0, 10:20, 30:38] = 1.0  # 80 cells of 160 * 64
    # frame 1 has no teacher answer: its (large) difference must not count
    pred[1] = 0.7
    valid = torch.tensor([True, False])
    assert float(distill_map_loss(pred, target, valid)) == pytest.approx(80 / (H * W))


def test_map_bce_hand_values() -> None:
    """p = 0.5 against t = 1 costs ln 2; p = 0.2 against the soft label t = 0.2 costs the
    label's own entropy; a frame without a teacher answer does not count."""
    valid = torch.tensor([True, False])
    pred = torch.full((2, 1, H, W), 0.5)
    target = torch.ones(2, 1, H, W)
    assert float(distill_map_loss(pred, target, valid, kind="bce")) == pytest.approx(math.log(2))
    pred, target = torch.full((2, 1, H, W), 0.2), torch.full((2, 1, H, W), 0.2)
    entropy = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert float(distill_map_loss(pred, target, valid, kind="bce")) == pytest.approx(entropy)
    agent = distill_agent_loss(
        torch.tensor([[0.5, 0.9]]),
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([[True, False]]),
        kind="bce",
    )
    assert float(agent) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="kind"):
        distill_map_loss(pred, target, valid, kind="l2")


@pytest.mark.parametrize(("kind", "optimum"), [("l1", 0.0), ("bce", 0.1)])
def test_a_rare_risk_fitted_by_l1_collapses_to_zero_and_by_bce_to_its_mean(
    kind: str, optimum: float
) -> None:
    """One cell that looks the same in every frame and is risky (0.5) in 20 % of them: the
    best constant answer under L1 is the median, 0 (the student's map collapses), under BCE the
    mean, 0.1. A logit fitted by gradient descent from the head's prior (0.05) lands there."""
    target = torch.zeros(10, 1, 1, 1)
    target[:2] = 0.5
    logit = torch.tensor(math.log(0.05 / 0.95), requires_grad=True)
    opt = torch.optim.Adam([logit], lr=0.05)
    valid = torch.ones(10, dtype=torch.bool)
    for _ in range(600):
        loss = distill_map_loss(logit.sigmoid().expand(10, 1, 1, 1), target, valid, kind=kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(logit.detach().sigmoid()) == pytest.approx(optimum, abs=0.02)


def test_balanced_map_l1_weighs_risky_cells_like_the_whole_background() -> None:
    target = torch.zeros(1, 1, H, W)
    target[0, 0, 10:20, 30:38] = 0.5  # 80 risky cells
    empty = torch.zeros(1, 1, H, W)
    valid = torch.ones(1, dtype=torch.bool)
    # an empty prediction: plain L1 = 80 * 0.5 / (H W), balanced = 0.5 (risky mean) + 0
    assert float(distill_map_loss(empty, target, valid)) == pytest.approx(40 / (H * W))
    assert float(distill_map_loss(empty, target, valid, 0.05)) == pytest.approx(0.5)
    # painting the whole map at 0.5: risky cells exact, background off by 0.5
    full = torch.full((1, 1, H, W), 0.5)
    assert float(distill_map_loss(full, target, valid, 0.05)) == pytest.approx(0.5)
    # a frame without risky cells pays its background mean only
    assert float(distill_map_loss(full, empty, valid, 0.05)) == pytest.approx(0.5)
    assert float(distill_map_loss(target.clone(), target, valid, 0.05)) == 0.0


def test_map_l1_without_any_teacher_answer_is_a_zero_that_backpropagates() -> None:
    pred = torch.rand(1, 1, H, W, requires_grad=True)
    loss = distill_map_loss(pred, torch.zeros(1, 1, H, W), torch.zeros(1, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_agent_l1_over_valid_agents() -> None:
    pred = torch.tensor([[0.5, 0.1, 0.9]])
    target = torch.tensor([[0.9, 0.1, 0.0]])
    valid = torch.tensor([[True, True, False]])
    assert float(distill_agent_loss(pred, target, valid)) == pytest.approx(0.2)


def test_ranking_is_zero_when_the_order_is_right_with_margin() -> None:
    scores = torch.tensor([[0.8, 0.3, 0.5]])
    rank = torch.tensor([[1, 3, 2]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    assert float(rank_loss(scores, rank, valid, margin=0.1)) == 0.0


def test_ranking_of_an_inverted_pair_is_the_hinge() -> None:
    valid = torch.ones(1, 2, dtype=torch.bool)
    loss = rank_loss(torch.tensor([[0.2, 0.5]]), torch.tensor([[1, 2]]), valid, margin=0.1)
    assert float(loss) == pytest.approx(0.1 - (0.2 - 0.5))
    # right order but inside the margin: 0.1 - 0.04
    loss = rank_loss(torch.tensor([[0.54, 0.5]]), torch.tensor([[1, 2]]), valid, margin=0.1)
    assert float(loss) == pytest.approx(0.06)


def test_ranking_mean_over_pairs_skips_unknown_ranks_invalid_and_cross_frame_pairs() -> None:
    scores = torch.tensor([[0.3, 0.8, 0.5, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.0]])
    rank = torch.tensor([[1, 3, 2, 0, 4], [1, 2, 0, 0, 0]])
    valid = torch.tensor([[True, True, True, True, False], [False, True, False, False, False]])
    # frame 0: pairs (0,1) 0.1+0.5, (0,2) 0.1+0.2, (2,1) 0.1+0.3; agent 3 (rank 0) and agent 4
    # (invalid) take no part; frame 1 has a single valid agent: no pair.
    loss = rank_loss(scores, rank, valid, margin=0.1)
    assert float(loss) == pytest.approx((0.6 + 0.3 + 0.4) / 3)


def test_ranking_margin_is_capped_by_the_teachers_risk_gap() -> None:
    valid = torch.ones(1, 3, dtype=torch.bool)
    rank = torch.tensor([[1, 2, 3]])
    risk = torch.tensor([[0.5, 0.46, 0.46]])
    # (0,1) and (0,2): margin min(0.1, 0.04) = 0.04; (1,2): equal risks, margin 0
    tied = torch.tensor([[0.5, 0.3, 0.3]])
    assert float(rank_loss(tied, rank, valid, 0.1, risk)) == 0.0
    close = torch.tensor([[0.5, 0.48, 0.49]])
    # (0,1): 0.04 - 0.02; (0,2): 0.04 - 0.01; (1,2): 0 - (-0.01)
    expected = (0.02 + 0.03 + 0.01) / 3
    assert float(rank_loss(close, rank, valid, 0.1, risk)) == pytest.approx(expected)


def test_ranking_gradient_raises_the_riskier_object() -> None:
    scores = torch.tensor([[0.2, 0.5]], requires_grad=True)
    rank_loss(scores, torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool)).backward()
    assert scores.grad.tolist() == [[-1.0, 1.0]]


def test_risk_weights_and_weighted_nll() -> None:
    w = risk_weights(torch.tensor([0.5, 1.0, 0.8]), torch.tensor([True, True, False]), alpha=2.0)
    assert w.tolist() == [2.0, 3.0, 1.0]
    nll = torch.tensor([1.0, -2.0, 4.0])
    has = torch.tensor([True, True, False])
    assert float(risk_weighted_nll(nll, has, w)) == pytest.approx((2.0 - 6.0) / 2)


def _risky_block() -> torch.Tensor:
    risk = torch.zeros(1, 1, H, W)
    rows, cols = band_rows_cols(19.0, 21.0, -1.0, 1.0)
    risk[0, 0, rows, cols] = 1.0
    return risk


def _modes() -> torch.Tensor:
    x = torch.arange(1, 7, dtype=torch.float32) * 5.0  # 5 .. 30 m: x = 20 is step 4
    through = torch.stack([x, torch.zeros(6)], dim=-1)
    beside = torch.stack([x, torch.full((6,), 8.0)], dim=-1)
    return torch.stack([through, beside])[None]  # (1, 2, 6, 2)


def test_risk_mass_hand_value_and_larger_when_the_likely_mode_is_risky() -> None:
    risk, valid = _risky_block(), torch.ones(1, dtype=torch.bool)
    p = torch.tensor([[0.8, 0.2]])
    risky_first = risk_mass_loss(_modes(), p.log(), risk, valid, GRID)
    # mode 0 reads risk 1 at one waypoint of six, mode 1 none: 0.8 * 1 / 6
    assert float(risky_first) == pytest.approx(0.8 / 6)
    safe_first = risk_mass_loss(_modes(), p.flip(-1).log(), risk, valid, GRID)
    assert float(safe_first) == pytest.approx(0.2 / 6) and float(safe_first) < float(risky_first)
    # no teacher answer: nothing; below the threshold: nothing
    assert float(risk_mass_loss(_modes(), p.log(), risk, ~valid, GRID)) == 0.0
    assert float(risk_mass_loss(_modes(), p.log(), 0.4 * risk, valid, GRID, threshold=0.5)) == 0
    half = risk_mass_loss(_modes(), p.log(), 0.75 * risk, valid, GRID, threshold=0.5)
    assert float(half) == pytest.approx(0.8 * 0.5 / 6)


def test_risk_mass_gradient_moves_probability_to_the_safe_mode() -> None:
    logits = torch.zeros(1, 2, requires_grad=True)
    risk_mass_loss(
        _modes(), logits, _risky_block(), torch.ones(1, dtype=torch.bool), GRID
    ).backward()
    assert logits.grad[0, 0] > 0 > logits.grad[0, 1]


def test_agent_risk_readout_reads_the_cell_under_each_centre() -> None:
    h, w = GRID.shape
    rows, cols = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    maps = torch.stack([rows, cols])[None]  # (1, 2, H, W): value = own row / col index
    # Centre of cell (10, 20), a point a quarter cell further along both axes, a cell corner.
    rc = torch.tensor([[10.5, 20.5], [10.75, 20.75], [40.0, 8.0]], dtype=torch.float64)
    xy = torch.from_numpy(GRID.pixel_to_world(rc.numpy())).float()[None]
    boxes = torch.cat([xy, torch.zeros(1, 3, 6)], dim=-1)  # (1, 3, 8): centres only matter
    out = torch.stack([agent_risk_readout(maps[:, c : c + 1], boxes, GRID) for c in range(2)], 1)
    torch.testing.assert_close(out[0].T, (rc - 0.5).float())


def test_pooled_target_is_the_max_of_each_feature_cell() -> None:
    """A 1-cell footprint keeps its full value on the coarse grid (an average would give 1/4)."""
    target = torch.zeros(1, 2, 4, 6)
    target[0, 0, 1, 2] = 0.8  # feature cell (0, 1)
    target[0, 0, 0, 3] = 0.3  # same feature cell, lower: the max wins
    target[0, 1, 3, 5] = 0.5  # channel 1, feature cell (1, 2)
    expected = torch.zeros(1, 2, 2, 3)
    expected[0, 0, 0, 1] = 0.8
    expected[0, 1, 1, 2] = 0.5
    assert torch.equal(pool_risk_target(target, (2, 3)), expected)


def test_feature_grid_distillation_compares_the_head_logits_with_the_pooled_target() -> None:
    """``risk_logits_feat`` (B, R, h, w): the L1 of its sigmoid against the max-pooled teacher
    map, a hand value; ``full_grid`` upsamples it instead and compares at full resolution."""
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 0, 0] = 1.0  # one fine cell: the whole top-left feature cell is risky
    feat = torch.zeros(1, 1, 2, 2)  # sigmoid 0.5 everywhere
    pred, pooled = student_risk_map({"risk_logits_feat": feat}, target)
    assert pooled.shape == (1, 1, 2, 2) and float(pooled.sum()) == 1.0
    valid = torch.ones(1, dtype=torch.bool)
    assert float(distill_map_loss(pred, pooled, valid)) == pytest.approx(0.5)  # |0.5 - x| = 0.5
    full_pred, full_target = student_risk_map({"risk_logits_feat": feat}, target, full_grid=True)
    assert full_pred.shape == (1, 1, 4, 4) and torch.equal(full_target, target)
    # full-grid outputs only (a hooked model): read as they are, whatever the switch
    assert student_risk_map({"risk_map": full_pred}, target)[0] is full_pred
