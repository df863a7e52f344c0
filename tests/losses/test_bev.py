"""Reading BEV rasters at metric points: the grid's axis convention, bilinear in between."""

from __future__ import annotations

import numpy as np
import torch

from rsd.geometry import BEVGrid, inside_grid, world_to_pixel
from rsd.losses._bev import sample_bev

GRID = BEVGrid()


def test_cell_centres_read_their_own_cell() -> None:
    maps = torch.rand(2, *GRID.shape, generator=torch.Generator().manual_seed(0))
    rows, cols = np.array([0, 5, 92, 159]), np.array([0, 63, 32, 10])
    centres = GRID.pixel_to_world(np.stack([rows + 0.5, cols + 0.5], axis=-1))
    xy = torch.tensor(centres, dtype=torch.float32)[None].repeat(2, 1, 1)
    torch.testing.assert_close(sample_bev(maps, xy, GRID), maps[:, rows, cols])


def test_between_two_centres_is_their_mean_and_outside_is_zero() -> None:
    maps = torch.zeros(1, *GRID.shape)
    maps[0, 92, 32] = 1.0  # x in (9.5, 10], y in (-0.5, 0]
    xy = torch.tensor([[[9.75, -0.5], [9.75, -0.25], [100.0, 0.0]]])
    torch.testing.assert_close(sample_bev(maps, xy, GRID), torch.tensor([[0.5, 1.0, 0.0]]))


def test_torch_conversions_match_the_grid() -> None:
    xy = np.array([[10.3, -1.1], [56.0, 16.0], [-24.0, 0.0], [0.0, -16.5]])
    rc = world_to_pixel(torch.tensor(xy), GRID).numpy()
    np.testing.assert_allclose(rc, GRID.world_to_pixel(xy))
    assert inside_grid(torch.tensor(xy), GRID).tolist() == GRID.contains(xy).tolist()
