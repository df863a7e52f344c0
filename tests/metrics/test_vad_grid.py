"""VAD's occupancy-grid plan collision (rsd.metrics.vad_grid) on hand-computed cells."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.metrics.planning import plan_collision, plan_collision_steps
from rsd.metrics.vad_grid import (
    box_corner_cells,
    ego_cells,
    ego_footprint_offsets,
    fill_quad,
    grid_collision_steps,
)

T = 6


def one_agent(x: float, y: float, size: float = 1.0, lead: int = 1):
    """A size x size agent standing at (x, y) for all T steps, batch of ``lead`` samples."""
    boxes = np.tile(np.array([x, y, size, size, 1.5, 0, 0, 0.0]), (lead, 1, 1))
    future = np.tile(np.array([x, y, 0.0]), (lead, 1, T, 1))
    return boxes, future, np.ones((lead, 1, T), bool), np.ones((lead, 1), bool)


def hold(x: float, y: float) -> np.ndarray:
    """(1, T, 2) a plan standing at (x, y)."""
    return np.tile(np.array([x, y]), (1, T, 1))


def test_vad_ego_footprint_is_8_by_4_cells():
    # length: (-2.042 + 0.5) * 2 + 99.5 = 96.416 .. 104.584; width: 97.65 .. 101.35
    rr, cc = ego_footprint_offsets(4.084, 1.85)
    assert rr.tolist() == list(range(97, 105)) and cc.tolist() == [98, 99, 100, 101]
    rows, cols = ego_cells(np.zeros((1, 2)), 4.084, 1.85)
    # at the origin: rows 200 - rr = 96..103 (forward 2 .. -1.5 m), cols 98..101
    assert sorted(set(rows[0].tolist())) == list(range(96, 104))
    assert sorted(set(cols[0].tolist())) == [98, 99, 100, 101] and rows.shape == (1, 32)
    # 1.2 m forward, 0.7 m to the left: rows trunc(200 - 2.4 - rr) = 93..100, cols trunc(-1.4 + cc)
    rows, cols = ego_cells(np.array([[1.2, 0.7]]), 4.084, 1.85)
    assert sorted(set(rows[0].tolist())) == list(range(93, 101))
    assert sorted(set(cols[0].tolist())) == [96, 97, 98, 99]


def test_agent_cells_are_the_rounded_box_filled():
    # 1 x 1 m box at 2 m forward: forward 1.5..2.5 -> rows 100 - 2 f = 95..97; left -0.5..0.5
    # -> cols 99..101; 3 x 3 cells
    grid = np.zeros((200, 200), bool)
    fill_quad(grid, box_corner_cells(np.array([2.0, 0.0, 1.0, 1.0, 0.0])))
    rows, cols = np.nonzero(grid)
    assert sorted(set(rows.tolist())) == [95, 96, 97]
    assert sorted(set(cols.tolist())) == [99, 100, 101]
    assert grid.sum() == 9
    # rotated by 45 degrees: a diamond of half-diagonal 0.707 m = 1.41 cells, rounded to 1:
    # the centre cell and its 4 neighbours
    grid[:] = False
    fill_quad(grid, box_corner_cells(np.array([2.0, 0.0, 1.0, 1.0, np.pi / 4])))
    assert grid.sum() == 5 and grid[96, 100] and grid[95, 100] and grid[96, 99]
    # off the grid: nothing, and no error
    grid[:] = False
    fill_quad(grid, box_corner_cells(np.array([80.0, 0.0, 1.0, 1.0, 0.0])))
    assert not grid.any()


def test_unrotated_box_collides_where_the_turned_box_does_not():
    # the plan drives sideways (+y) and stands at (0, 3): the exact test turns the ego box
    # (x in +-0.925), the grid keeps it along x (forward -1.5..2 m): a 1 m box at (2, 3)
    agents = one_agent(2.0, 3.0)
    plan = hold(0.0, 3.0)
    plan[0, :, 1] = np.linspace(0.5, 3.0, T)  # moving along +y, ending at (0, 3)
    assert not plan_collision_steps(plan, None, *agents).any()
    # agent cols 100 - 2 (2.5..3.5) = 93..95; ego cols trunc(-2 y + 98..101): y = 1.5 -> 95..98
    # touches, y = 1 -> 96..99 does not: steps at y 1.5, 2, 2.5, 3 collide
    grid = plan_collision(plan, None, *agents, method="vad_grid")
    assert grid["collision_vad_grid_3s"] == pytest.approx(4 / 6)
    assert grid["collision_vad_grid_1s"] == 0.0


def test_forward_shift_clears_a_box_close_behind():
    # a 1 m box 2.3 m behind (x -2.8..-1.8): the centred exact box (to -2.042) touches it; VAD's
    # box shifted 0.5 m forward reaches -1.5 m (row 103) and the agent starts at row 104
    agents = one_agent(-2.3, 0.0)
    assert plan_collision_steps(hold(0.0, 0.0), None, *agents).all()
    out = plan_collision(hold(0.0, 0.0), None, *agents, method="vad_grid")
    assert out == {"collision_vad_grid_1s": 0.0, "collision_vad_grid_2s": 0.0,
                   "collision_vad_grid_3s": 0.0}  # fmt: skip
    # and 1.7 m ahead of the exact box's nose (x 3.1..4.1 is clear for both)
    front = one_agent(2.4, 0.0)  # x 1.9..2.9: both collide
    assert (
        plan_collision(hold(0.0, 0.0), None, *front, method="vad_grid")["collision_vad_grid_1s"]
        == 1.0
    )


def test_waypoints_past_the_grid_are_clipped_to_its_edge_as_in_vad():
    # a waypoint 60 m ahead is tested on row 0 (50 m): an agent covering that row is a hit
    plan = hold(60.0, 0.0)
    edge = one_agent(49.8, 0.0)  # rows round(-0.6) .. round(1.4) = -1..1: rows 0, 1 on the grid
    inside = one_agent(49.0, 0.0)  # rows 1..3: row 0 free
    assert grid_collision_steps([plan], *_poses(edge), (4.084, 1.85))[0].all()
    assert not grid_collision_steps([plan], *_poses(inside), (4.084, 1.85))[0].any()


def _poses(agents):
    boxes, future, valid, mask = agents
    poses = np.concatenate([future[..., :2], np.broadcast_to(boxes[:, :, None, 2:4],
                            (*future.shape[:3], 2)), future[..., 2:3]], -1)  # fmt: skip
    return poses, valid & mask[..., None]


def test_expert_steps_excluded_and_batches():
    agents = one_agent(2.0, 0.0, lead=3)
    plan = np.tile(hold(0.0, 0.0), (3, 1, 1))  # standing on the agent: every step collides
    expert = plan.copy()
    expert[0] = hold(0.0, 10.0)[0]  # sample 0: the expert is clear, so the plan's hits count
    expert[1, :3] = hold(0.0, 10.0)[0, :3]  # sample 1: clear for 3 steps, then collides too
    out = plan_collision(plan, None, *agents, expert, method="vad_grid")
    # per sample at 3 s: 6/6, 3/6, 0/6 -> mean 0.5; at 1 s: 2/2, 2/2, 0 -> 2/3
    assert out["collision_vad_grid_3s"] == pytest.approx(0.5)
    assert out["collision_vad_grid_1s"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="collision method"):
        plan_collision(plan, None, *agents, method="polygon")
