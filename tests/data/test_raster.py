"""BEV rasteriser, feature and target builders: axis convention, hits where agents are, maps,
free space, targets."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.data.features import build_features, route_feature
from rsd.data.raster import RasterConfig
from rsd.data.rigs import SensorRig, load_rig
from rsd.data.synthetic import random_frame, synthetic_agent, synthetic_frame
from rsd.data.targets import build_targets
from rsd.geometry import (
    ROUTE_POINTS,
    BEVGrid,
    BoxField,
    EgoStatusField,
    InputChannel,
    TargetChannel,
    hits_channel,
    input_channel_names,
)
from rsd.scene import Command, Frame, LaneGeometry, LineKind

GRID = BEVGrid()
CLEAN = load_rig("dense360", ["sensors.0.noise_std_m=0.0"])


def rasterise(
    frame: Frame, rig: SensorRig, grid: BEVGrid = GRID, cfg: RasterConfig | None = None
) -> dict[str, np.ndarray]:
    """Features and targets of one frame in one dict (they share no key)."""
    features = build_features(frame, rig, grid, cfg)
    targets = build_targets(frame, grid)
    assert not set(features) & set(targets)
    return {**features, **targets}


def _cell(x: float, y: float) -> tuple[int, int]:
    r, c = np.floor(GRID.world_to_pixel(np.array([x, y]))).astype(int)
    return int(r), int(c)


def _lit_centres(img: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(img)
    return GRID.pixel_to_world(np.stack([rows + 0.5, cols + 0.5], axis=1))


def test_grid_shape_and_corners():
    assert GRID.shape == (160, 64)
    assert _cell(55.9, 15.9) == (0, 0)  # front-left corner is row 0, col 0
    assert _cell(-23.9, -15.9) == (159, 63)  # back-right corner
    assert _cell(10.2, 0.2) == (91, 31)
    np.testing.assert_allclose(GRID.pixel_to_world(np.array([91.5, 31.5])), [10.25, 0.25])


def test_world_pixel_round_trip():
    xy = np.random.default_rng(0).uniform([-24, -16], [56, 16], size=(100, 2))
    np.testing.assert_allclose(GRID.pixel_to_world(GRID.world_to_pixel(xy)), xy, atol=1e-9)
    rc = np.random.default_rng(1).uniform([0, 0], [160, 64], size=(100, 2))
    np.testing.assert_allclose(GRID.world_to_pixel(GRID.pixel_to_world(rc)), rc, atol=1e-9)
    assert GRID.contains(xy).all() and not GRID.contains(np.array([60.0, 0.0]))


def test_bad_grid_and_history_are_config_errors():
    with pytest.raises(ConfigError, match="grid.x"):
        BEVGrid(x_min=0.0, x_max=10.3, resolution=0.5)
    with pytest.raises(ConfigError, match="history"):
        RasterConfig(history=6)


def test_channel_layout():
    cfg = RasterConfig(history=4)
    names = input_channel_names(cfg.history)
    bev = rasterise(synthetic_frame(), CLEAN, GRID, cfg)["bev"]
    assert bev.shape == (len(names), 160, 64) == (8, 160, 64)
    assert names[InputChannel.VISIBLE] == "visible" and names[hits_channel(2)] == "hits_t-1s"
    assert names[InputChannel.ROUTE] == "route"
    assert rasterise(synthetic_frame(), CLEAN, GRID, RasterConfig(history=1))["bev"].shape[0] == 5


def test_route_channel_draws_the_route_where_it_lies():
    """A route turning left from straight ahead: lit cells sit on its points, none elsewhere;
    no route, or ``raster.route`` off, leaves the channel empty."""
    frame = synthetic_frame()
    ahead = np.stack([np.arange(0.0, 20.1, 2.0), np.zeros(11)], axis=1)
    left = np.stack([np.full(6, 20.0), np.arange(2.0, 12.1, 2.0)], axis=1)  # then to the left
    frame.route = np.concatenate([ahead, left]).astype(np.float32)
    bev = rasterise(frame, CLEAN, GRID, RasterConfig())["bev"]
    route = bev[InputChannel.ROUTE]
    for x, y in [(5.0, 0.0), (15.0, 0.0), (20.0, 6.0), (20.0, 11.5)]:
        r, c = _cell(x, y)
        assert route[r, c] == 1.0, (x, y)
    for x, y in [(10.0, 5.0), (30.0, 0.0), (-5.0, 0.0), (20.0, -4.0)]:
        r, c = _cell(x, y)
        assert route[r, c] == 0.0, (x, y)
    assert 2 * 32 / 0.5 <= route.sum() <= 4 * 32 / 0.5  # ~32 m of a 3-cell-wide line
    assert not rasterise(frame, CLEAN, GRID, RasterConfig(route=False))["bev"][
        InputChannel.ROUTE
    ].any()
    assert not rasterise(synthetic_frame(), CLEAN, GRID, RasterConfig())["bev"][
        InputChannel.ROUTE
    ].any()


def test_agent_ahead_lights_cells_ahead_on_its_face():
    bev = rasterise(synthetic_frame([synthetic_agent(1, 10.0, 0.0)]), CLEAN)["bev"]
    hits = bev[InputChannel.HITS]
    r, c = _cell(7.8, 0.0)  # rear face at x = 10 - 4.5 / 2 = 7.75
    assert hits[r, c - 1 : c + 1].any()
    centres = _lit_centres(hits)
    assert len(centres) >= 3
    assert (np.abs(centres[:, 0] - 7.75) <= 0.5).all() and (np.abs(centres[:, 1]) < 1.5).all()


def test_agent_on_the_left_lights_the_left_half():
    bev = rasterise(synthetic_frame([synthetic_agent(1, 10.0, 3.5)]), CLEAN)["bev"]
    rows, cols = np.nonzero(bev[InputChannel.HITS])
    assert len(cols) and (cols < GRID.width // 2).all()
    centres = _lit_centres(bev[InputChannel.HITS])
    assert (centres[:, 1] > 2.0).all() and (centres[:, 1] < 5.0).all()


def test_map_channels_follow_lanes_and_rig():
    frame = synthetic_frame(n_lanes=3, ego_lane=1, lane_width=3.5)  # road y in [-5.25, 5.25]
    out = rasterise(frame, CLEAN)
    drivable, lines = out["bev"][InputChannel.DRIVABLE], out["bev"][InputChannel.LANE_LINES]
    for y, inside in ((0.0, True), (5.0, True), (-5.0, True), (6.0, False), (-6.5, False)):
        assert drivable[_cell(20.0, y)] == float(inside), y
    # Outer lines continuous (1.0), inner striped (0.5), lane centre clear.
    r = _cell(20.0, 0.0)[0]
    assert lines[r, _cell(20.0, 5.24)[1]] == 1.0
    assert lines[r, _cell(20.0, 1.74)[1]] == 0.5
    assert lines[r, _cell(20.0, 0.0)[1]] == 0.0
    np.testing.assert_array_equal(out["target_maps"][TargetChannel.DRIVABLE], drivable)
    np.testing.assert_array_equal(out["target_maps"][TargetChannel.LANE_BOUNDARY], lines > 0)

    front = rasterise(frame, load_rig("front_short"))  # map within 30 m, no lane lines
    assert front["bev"][InputChannel.DRIVABLE][_cell(10.0, 0.0)] == 1.0
    assert front["bev"][InputChannel.DRIVABLE][_cell(40.0, 0.0)] == 0.0
    assert not front["bev"][InputChannel.LANE_LINES].any()
    np.testing.assert_array_equal(front["target_maps"], out["target_maps"])  # rig-independent


def test_visible_free_space_stops_at_occluders():
    frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0)])
    visible = rasterise(frame, CLEAN)["bev"][InputChannel.VISIBLE]
    assert visible[_cell(5.0, 0.0)] == 1.0 and visible[_cell(-20.0, 0.0)] == 1.0
    assert visible[_cell(20.0, 0.0)] == 0.0  # in the car's shadow
    assert visible[_cell(20.0, 8.0)] == 1.0
    front = rasterise(frame, load_rig("front_short"))["bev"][InputChannel.VISIBLE]
    assert front[_cell(5.0, 0.0)] == 1.0 and front[_cell(-10.0, 0.0)] == 0.0


def test_past_hits_go_to_their_own_channel():
    frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0, vx=20.0)], ego_speed=20.0)
    bev = rasterise(frame, CLEAN, GRID, RasterConfig(history=3))["bev"]
    for k, rear_x in ((0, 7.75), (1, -2.25), (2, -12.25)):  # the car moved 10 m per keyframe
        centres = _lit_centres(bev[hits_channel(k)])
        assert len(centres) and (np.abs(centres[:, 0] - rear_x) <= 0.5).all(), k


def test_targets():
    agents = [synthetic_agent(7, 70.0, 0.0), synthetic_agent(3, 12.0, -3.5, vx=22.0, yaw=0.1)]
    frame = synthetic_frame(agents, ego_speed=21.0, command=Command.CHANGE_LEFT)
    frame.ego.lane_offset = -0.4
    out = rasterise(frame, CLEAN)
    np.testing.assert_array_equal(out["agent_ids"], [3, 7])  # sorted by id
    np.testing.assert_array_equal(out["agent_in_grid"], [True, False])
    box = out["agent_boxes"][0]
    assert box[BoxField.X] == 12.0 and box[BoxField.Y] == -3.5 and box[BoxField.VX] == 22.0
    assert box[BoxField.YAW] == pytest.approx(0.1) and box[BoxField.LENGTH] == 4.5
    assert out["agent_future"].shape == (2, 6, 3) and out["agent_future_valid"].all()
    assert out["agent_future"][0, 0, 0] == pytest.approx(12.0 + 22.0 * 0.5)
    assert out["ego_future"][5, 0] == pytest.approx(21.0 * 3.0)
    assert out["ego_status"][EgoStatusField.SPEED] == 21.0
    assert out["ego_status"][EgoStatusField.LANE_OFFSET] == pytest.approx(-0.4)
    assert int(out["command"]) == Command.CHANGE_LEFT


def test_every_hit_lies_on_an_agent():
    frame = random_frame(11)
    bev = rasterise(frame, CLEAN)["bev"]
    centres = _lit_centres(bev[InputChannel.HITS])
    assert len(centres) > 20
    near = np.zeros(len(centres), dtype=bool)
    for a in frame.agents:
        c, s = np.cos(a.yaw), np.sin(a.yaw)
        d = centres - [a.x, a.y]
        lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        near |= (np.abs(lx) <= a.length / 2 + 0.75) & (np.abs(ly) <= a.width / 2 + 0.75)
    assert near.all()


def test_curved_road_in_pieces_has_no_pinholes():
    # Two lanes of a bend, each in 6 pieces and sampled differently (as a road network stores
    # them): their offset edges do not quite meet, which left single undrawn cells.
    frame = synthetic_frame(n_lanes=0)
    for lane, (radius, n) in enumerate(((18.0, 4), (21.5, 7))):
        edges = np.linspace(-np.pi / 2, 0.6, 7)
        for i in range(6):
            t = np.linspace(edges[i], edges[i + 1], n)
            centre = np.stack([radius * np.cos(t), 25 + radius * np.sin(t)], axis=1)
            none = LineKind.NONE
            frame.lanes.append(LaneGeometry(f"{lane}{i}", centre, 3.5, none, none))
    d = rasterise(frame, CLEAN)["target_maps"][TargetChannel.DRIVABLE]
    assert d.sum() > 500
    ring = d[:-2, 1:-1] + d[2:, 1:-1] + d[1:-1, :-2] + d[1:-1, 2:]
    assert not ((d[1:-1, 1:-1] == 0) & (ring == 4)).any()


def test_route_feature_resamples_by_arc_length():
    """A route along x then turning left: points every 2 m of arc from its start, held at its
    end; no route -> zeros and not valid."""
    frame = synthetic_frame()
    ahead = np.stack([np.arange(0.0, 20.1, 2.0), np.zeros(11)], axis=1)  # 20 m along x
    left = np.stack([np.full(5, 20.0), np.arange(2.0, 10.1, 2.0)], axis=1)  # 10 m along y
    frame.route = np.concatenate([ahead, left]).astype(np.float32)
    pts, valid = route_feature(frame)
    assert float(valid) == 1.0 and pts.shape == (ROUTE_POINTS, 2)
    np.testing.assert_allclose(pts[0], [2.0, 0.0])
    np.testing.assert_allclose(pts[9], [20.0, 0.0])  # 20 m: the corner
    np.testing.assert_allclose(pts[11], [20.0, 4.0])  # 24 m: 4 m up the left leg
    np.testing.assert_allclose(pts[14:], np.tile([20.0, 10.0], (6, 1)))  # past its 30 m end
    empty, none = route_feature(synthetic_frame())
    assert float(none) == 0.0 and not empty.any()
