"""rsd.geometry: world <-> pixel in numpy and torch alike, box corners, the grid's bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsd.geometry import BEVGrid, box_corners, inside_grid, pixel_to_world, world_to_pixel

GRID = BEVGrid()


def test_world_to_pixel_by_hand_and_back() -> None:
    xy = np.array([[56.0, 16.0], [10.2, 0.2], [-24.0, -16.0]])
    rc = world_to_pixel(xy, GRID)
    np.testing.assert_allclose(rc, [[0.0, 0.0], [91.6, 31.6], [160.0, 64.0]])
    np.testing.assert_allclose(pixel_to_world(rc, GRID), xy, atol=1e-12)
    assert rc.dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_gives_the_numpy_numbers_in_its_own_dtype(dtype: torch.dtype) -> None:
    xy = np.random.default_rng(0).uniform([-30, -20], [60, 20], size=(3, 5, 2))
    t = torch.tensor(xy, dtype=dtype, requires_grad=True)
    rc = world_to_pixel(t, GRID)
    assert rc.dtype == dtype and rc.shape == (3, 5, 2)
    np.testing.assert_allclose(rc.detach().numpy(), world_to_pixel(xy, GRID), rtol=1e-6)
    rc.sum().backward()  # differentiable: d row / dx = d col / dy = -1 / resolution
    np.testing.assert_allclose(t.grad.numpy(), -2.0)
    back = pixel_to_world(rc.detach(), GRID)
    np.testing.assert_allclose(back.numpy(), xy, atol=1e-4)
    assert inside_grid(t, GRID).tolist() == GRID.contains(xy).tolist()


def test_integer_tensors_promote_like_a_python_float() -> None:
    rc = pixel_to_world(torch.tensor([[1, 2]]), GRID)
    assert rc.dtype == torch.get_default_dtype()
    torch.testing.assert_close(rc, torch.tensor([[55.5, 15.0]]))


def test_box_corners_by_hand_and_broadcast() -> None:
    corners = box_corners(1.0, 2.0, 0.0, 4.0, 2.0)
    np.testing.assert_allclose(corners, [[3, 3], [-1, 3], [-1, 1], [3, 1]])  # FL, RL, RR, FR
    turned = box_corners(0.0, 0.0, np.pi / 2, 4.0, 2.0)
    np.testing.assert_allclose(turned, [[-1, 2], [-1, -2], [1, -2], [1, 2]], atol=1e-12)
    many = box_corners(np.zeros((2, 3)), 0.0, np.zeros(3), 4.0, np.array([2.0, 2.0, 1.0]))
    assert many.shape == (2, 3, 4, 2)
    np.testing.assert_allclose(many[1, 0], box_corners(0.0, 0.0, 0.0, 4.0, 2.0))
    np.testing.assert_allclose(many[1, 2, 0], [2.0, 0.5])


def test_pil_coordinates_put_cell_centres_on_integers() -> None:
    centre = GRID.pixel_to_world(np.array([[10.5, 20.5]]))
    np.testing.assert_allclose(GRID.pil_xy(centre), [[20.0, 10.0]])  # (col, row)
