"""The one conversion from highway-env's world (y down) to the ego frame (x forward, y left),
checked on a real highway-env road with cars placed by hand."""

import gymnasium as gym
import highway_env  # noqa: F401  (registers the environments)
import numpy as np
import pytest

from rsd.scene import LineKind
from rsd.sim.convert import (
    EgoTransform,
    heading_to_up,
    lane_relation,
    lanes_near,
    signed_lane_offset,
    to_up,
)


@pytest.fixture()
def road():
    env = gym.make("highway-v0", config={"lanes_count": 3, "vehicles_count": 0})
    env.reset(seed=0)
    u = env.unwrapped
    yield u
    env.close()


def _place(u, lane_index, s):
    from highway_env.vehicle.kinematics import Vehicle

    lane = u.road.network.get_lane(lane_index)
    v = Vehicle(u.road, lane.position(s, 0), lane.heading_at(s), speed=20.0)
    v.lane_index = lane_index
    u.road.vehicles.append(v)
    return v


def _tf(ego):
    xy = to_up(ego.position)
    return EgoTransform(float(xy[0]), float(xy[1]), float(heading_to_up(ego.heading)))


def test_car_ahead_in_ego_lane_is_at_plus_x(road):
    ego = road.vehicle
    s_ego, _ = road.road.network.get_lane(ego.lane_index).local_coordinates(ego.position)
    lead = _place(road, ego.lane_index, s_ego + 10.0)
    p = _tf(ego).points(to_up(lead.position))
    assert p[0] == pytest.approx(10.0, abs=1e-6)
    assert p[1] == pytest.approx(0.0, abs=1e-6)
    assert lane_relation(ego.lane_index, lead.lane_index) == 0


def test_car_in_left_lane_has_positive_y(road):
    ego = road.vehicle
    a, b, i = ego.lane_index
    assert i > 0, "the ego must not start in the leftmost lane for this check"
    s_ego, _ = road.road.network.get_lane(ego.lane_index).local_coordinates(ego.position)
    left = _place(road, (a, b, i - 1), s_ego + 5.0)  # highway-env numbers lanes from the left
    p = _tf(ego).points(to_up(left.position))
    assert p[1] == pytest.approx(4.0, abs=1e-6)  # default lane width
    assert p[0] == pytest.approx(5.0, abs=1e-6)
    assert lane_relation(ego.lane_index, left.lane_index) == 1


def test_rotation_of_heading_and_velocity():
    # ego at the origin heading +90 deg (left): a point at world (0, 10) is 10 m ahead,
    # a point at world (-3, 0) is 3 m to the ego's left.
    tf = EgoTransform(0.0, 0.0, np.pi / 2)
    np.testing.assert_allclose(tf.points(np.array([0.0, 10.0])), [10.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(tf.points(np.array([-3.0, 0.0])), [0.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(tf.vectors(np.array([0.0, 5.0])), [5.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(tf.poses(np.array([1.0, 1.0, np.pi / 2]))[2], 0.0, atol=1e-9)
    # highway-env headings turn clockwise on screen: +0.3 there is a right turn here
    assert heading_to_up(0.3) == pytest.approx(-0.3)


def test_signed_lane_offset_positive_to_the_left(road):
    ego = road.vehicle
    lane = road.road.network.get_lane(ego.lane_index)
    # highway-env's +y (screen down) is the right-hand side of an eastbound lane
    assert signed_lane_offset(lane, ego.position + np.array([0.0, 0.7])) == pytest.approx(-0.7)
    assert signed_lane_offset(lane, ego.position - np.array([0.0, 0.7])) == pytest.approx(0.7)


def test_lanes_near_are_ordered_left_to_right_with_outer_lines(road):
    ego = road.vehicle
    lanes = lanes_near(road.road.network, ego.position, _tf(ego), ego.lane_index)
    assert len(lanes) == 3
    by_rel = {ln.relation: ln for ln in lanes}
    ego_idx = ego.lane_index[2]
    for rel, ln in by_rel.items():
        # straight eastbound lanes: 4 m apart, left lanes at +y
        assert np.allclose(ln.centre[:, 1], 4.0 * rel, atol=1e-5)
        assert ln.centre[0, 0] < 0 < ln.centre[-1, 0]
    leftmost = by_rel[ego_idx]
    rightmost = by_rel[ego_idx - 2]
    assert leftmost.left_line == LineKind.CONTINUOUS
    assert rightmost.right_line == LineKind.CONTINUOUS


@pytest.mark.parametrize("name", ["roundabout", "intersection", "merge"])
def test_vectorised_lane_points_match_highway_env(name):
    from rsd.sim.convert import lane_points
    from rsd.sim.episode import make_episode

    ep = make_episode(name, 0)
    kinds = set()
    for lane in ep.road.network.lanes_list():
        s = np.linspace(0.0, lane.length, 9)
        ref = np.array([(*lane.position(v, 0.0), lane.heading_at(v)) for v in s])
        got = lane_points(lane, s)
        np.testing.assert_allclose(got[:, :2], ref[:, :2], atol=1e-9)
        np.testing.assert_allclose(np.cos(got[:, 2] - ref[:, 2]), 1.0, atol=1e-9)
        kinds.add(type(lane).__name__)
    ep.env.close()
    assert "StraightLane" in kinds
