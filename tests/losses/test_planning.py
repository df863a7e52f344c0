"""Planning losses: winner-takes-all, mixture NLL hand values, collision and boundary."""

from __future__ import annotations

import math

import pytest
import torch

from rsd.losses.planning import (
    boundary_loss,
    collision_loss,
    event_weights,
    imitation_losses,
    likely_mode,
    mixture_nll,
    winner_mode,
)
from tests.losses.fakes import GRID, band_rows_cols

T = 6


def _expert(b: int = 1) -> torch.Tensor:
    x = torch.arange(1, T + 1, dtype=torch.float32) * 5.0
    return torch.stack([x, torch.zeros(T)], dim=-1).repeat(b, 1, 1)  # (B, T, 2)


def _valid(b: int = 1) -> torch.Tensor:
    return torch.ones(b, T, dtype=torch.bool)


def test_nll_of_the_mean_of_a_single_mode_is_the_log_normaliser() -> None:
    expert = _expert()
    scale = torch.full((1, 1, T, 2), 0.3)
    nll = mixture_nll(expert[:, None], scale, torch.zeros(1, 1), expert, _valid())
    assert float(nll[0]) == pytest.approx(T * 2 * math.log(2 * 0.3), rel=1e-5)
    # one step off by (0.6, 0) adds |0.6| / 0.3 = 2 nats; without logits the same (M = 1)
    off = expert[:, None].clone()
    off[0, 0, 2, 0] += 0.6
    nll_off = mixture_nll(off, scale, None, expert, _valid())
    assert float(nll_off[0] - nll[0]) == pytest.approx(2.0, rel=1e-5)


def test_nll_counts_valid_steps_only_even_when_invalid_ones_are_nan() -> None:
    expert = _expert()
    valid = _valid()
    valid[0, 3:] = False
    expert[0, 3:] = float("nan")
    traj = _expert()[:, None].requires_grad_()
    scale = torch.full((1, 1, T, 2), 2.0, requires_grad=True)
    nll = mixture_nll(traj, scale, None, expert, valid)
    assert nll[0].item() == pytest.approx(3 * 2 * math.log(4.0), rel=1e-5)
    nll.sum().backward()
    assert torch.isfinite(traj.grad).all() and torch.isfinite(scale.grad).all()
    assert (scale.grad[0, 0, 3:] == 0).all()  # invalid steps teach nothing


def test_mixture_with_a_far_mode_costs_minus_log_pi_near() -> None:
    expert = _expert()
    far = expert + 100.0
    traj = torch.stack([far, expert], dim=1)  # (1, 2, T, 2): mode 1 is exact
    scale = torch.full((1, 2, T, 2), 0.5)
    logits = torch.log(torch.tensor([[0.7, 0.3]]))
    single = T * 2 * math.log(2 * 0.5)
    nll = mixture_nll(traj, scale, logits, expert, _valid())
    assert float(nll[0]) == pytest.approx(-math.log(0.3) + single, abs=1e-5)


def test_winner_is_the_closest_mode_and_imitation_hand_values() -> None:
    expert = _expert(2)
    offsets = torch.tensor([[3.0, 0.0], [0.5, -0.2], [-2.0, 2.0]])
    traj = expert[:, None] + offsets[None, :, None, :]  # (2, 3, T, 2)
    winner, has = winner_mode(traj, expert, _valid(2))
    assert winner.tolist() == [1, 1] and has.all()
    out = imitation_losses(traj, torch.zeros(2, 3), expert, _valid(2))
    assert float(out["plan_l1"]) == pytest.approx(0.7)
    assert float(out["plan_cls"]) == pytest.approx(math.log(3))
    assert "plan_cls" not in imitation_losses(traj, None, expert, _valid(2))


def test_event_weights_favour_frames_where_the_expert_changes_its_motion() -> None:
    cruise = _expert()[0]  # 5 m per step: no departure from its first step
    stop = torch.tensor([[1.0, 0.0], [1.5, 0.0]]).repeat_interleave(torch.tensor([1, 5]), 0)
    turn = torch.stack([torch.arange(1.0, T + 1), torch.tensor([0, 0, 0, 1, 2, 3.0])], -1)
    expert = torch.stack([cruise, stop, turn, cruise, cruise])
    valid = _valid(5)
    valid[3, 3:] = False  # cruise, three valid steps: still no departure
    valid[4] = False  # nothing to learn from: weight 1
    w = event_weights(expert, valid, alpha=2.0, scale=5.0)
    # stop: |1.5 - 6 * 1| = 4.5 m -> 1 + 2 * 0.9; turn: (6, 3) vs (6, 0) -> 3 m -> 1 + 2 * 0.6
    torch.testing.assert_close(w, torch.tensor([1.0, 2.8, 2.2, 1.0, 1.0]))
    # saturates at 1 + alpha
    assert float(event_weights(expert[1:2], valid[1:2], alpha=2.0, scale=1.0)[0]) == 3.0


def test_samples_without_valid_steps_teach_nothing() -> None:
    expert = _expert(2)
    valid = _valid(2)
    valid[1] = False
    traj = expert[:, None].repeat(1, 2, 1, 1)
    traj[1] += 50.0  # sample 1 is far off but has no target
    out = imitation_losses(traj, torch.zeros(2, 2), expert, valid)
    assert float(out["plan_l1"]) == 0.0


def test_likely_mode_takes_the_argmax() -> None:
    traj = torch.arange(2 * 3 * T * 2, dtype=torch.float32).reshape(2, 3, T, 2)
    plan = likely_mode(traj, torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]]))
    assert torch.equal(plan[0], traj[0, 1]) and torch.equal(plan[1], traj[1, 0])
    assert torch.equal(likely_mode(traj, None), traj[:, 0])


def _agent_at(x: float, y: float, b: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 4 x 2 m agent standing at (x, y) for all steps: future, boxes, valid."""
    future = torch.tensor([x, y, 0.0]).repeat(b, 1, T, 1)
    boxes = torch.tensor([x, y, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]).repeat(b, 1, 1)
    return future, boxes, torch.ones(b, 1, T, dtype=torch.bool)


EGO = torch.tensor([[4.0, 2.0, 1.5]])


def test_collision_is_zero_far_from_agents_and_the_hand_value_through_one() -> None:
    future, boxes, valid = _agent_at(15.0, 0.0)
    expert = _expert() + torch.tensor([0.0, -4.0])  # the expert passes in the next lane
    plan = _expert()  # along y = 0: at t = 2 (x = 15) right on the agent
    # ego 4 x 2 on the agent 4 x 2: gap_x = 0 - 4 = -4, gap_y = 0 - 2 = -2;
    # violation min(1 + 4, 0.5 + 2) = 2.5 at one of 6 steps
    loss = collision_loss(plan, EGO, future, boxes, valid, expert, _valid(), 1.0, 0.5)
    assert float(loss) == pytest.approx(2.5 / 6)
    far = plan + torch.tensor([0.0, 10.0])
    assert float(collision_loss(far, EGO, future, boxes, valid, expert, _valid())) == 0.0
    # 0.3 m lateral gap (< 0.5 m margin) beside the agent: 0.2 m at that step
    beside = plan + torch.tensor([0.0, 2.3])
    loss = collision_loss(beside, EGO, future, boxes, valid, expert, _valid(), 1.0, 0.5)
    assert float(loss) == pytest.approx(0.2 / 6, rel=1e-4)


def test_collision_ignores_invalid_agents_and_steps_the_expert_collides_on() -> None:
    future, boxes, valid = _agent_at(15.0, 0.0)
    plan = _expert()
    assert float(collision_loss(plan, EGO, future, boxes, ~valid, plan, _valid())) == 0.0
    # the expert itself drives through the agent: nothing to learn there
    assert float(collision_loss(plan, EGO, future, boxes, valid, plan, _valid())) == 0.0
    # padding may hold NaN: masked steps neither count nor poison the gradient
    future[0, 0, 4:] = float("nan")
    valid[0, 0, 4:] = False
    moving = (_expert() + torch.tensor([0.0, 0.5])).requires_grad_()
    lateral = _expert() + torch.tensor([0.0, -4.0])
    loss = collision_loss(moving, EGO, future, boxes, valid, lateral, _valid())
    assert loss.item() == pytest.approx(2.0 / 6)
    loss.backward()
    assert torch.isfinite(moving.grad).all()


def test_collision_gradient_pushes_the_colliding_waypoint_out_sideways() -> None:
    future, boxes, valid = _agent_at(15.0, 0.0)
    plan = (_expert() + torch.tensor([0.0, 0.5])).requires_grad_()
    lateral = _expert() + torch.tensor([0.0, -4.0])
    # step 2 (x = 15): lateral violation 0.5 - (0.5 - 2) = 2 < longitudinal 1 + 4 = 5
    loss = collision_loss(plan, EGO, future, boxes, valid, lateral, _valid())
    assert loss.item() == pytest.approx(2.0 / 6)
    loss.backward()
    expected = torch.zeros(1, T, 2)
    expected[0, 2, 1] = -1 / 6  # descent moves it left, away from the agent
    torch.testing.assert_close(plan.grad, expected)


def _drivable(b: int = 1) -> torch.Tensor:
    maps = torch.zeros(b, *GRID.shape)
    rows, cols = band_rows_cols(GRID.x_min, GRID.x_max, -4.0, 4.0)
    maps[:, rows, cols] = 1.0
    return maps


def test_boundary_is_zero_on_the_drivable_area_and_positive_off_it() -> None:
    expert = _expert()
    plan = _expert()
    assert float(boundary_loss(plan, _drivable(), GRID, expert, _valid())) == 0.0
    off = _expert() + torch.tensor([0.0, 10.0])  # all six waypoints 10 m left of the road
    assert float(boundary_loss(off, _drivable(), GRID, expert, _valid())) == pytest.approx(1.0)
    half = _expert()
    half[0, 3:, 1] = -10.0
    assert float(boundary_loss(half, _drivable(), GRID, expert, _valid())) == pytest.approx(0.5)


def test_boundary_skips_points_outside_the_grid_and_where_the_expert_is_off() -> None:
    expert = _expert()
    plan = _expert() + torch.tensor([0.0, 10.0])
    plan[0, :3, 0] = 80.0  # beyond x_max = 56: no map there
    assert float(boundary_loss(plan, _drivable(), GRID, expert, _valid())) == pytest.approx(0.5)
    assert float(boundary_loss(plan, _drivable(), GRID, plan, _valid())) == 0.0


def test_boundary_gradient_points_back_onto_the_road() -> None:
    plan = _expert()
    plan[0, :, 1] = 4.1  # 0.1 m past the left edge (y = 4), within a cell of it
    plan.requires_grad_()
    boundary_loss(plan, _drivable(), GRID, _expert(), _valid()).backward()
    assert (plan.grad[0, :, 1] > 0).all()  # descending moves y down, back onto the road
