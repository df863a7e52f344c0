"""Lanes from nuScenes' map expansion: arcline paths discretised by hand-checkable formulas,
lanes moved into each sample's ego frame, the ego's lane and offset known by construction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.datasets.lanes import LANE_REGION, LANE_STEP
from rsd.datasets.nuscenes import NuScenesReader
from rsd.datasets.nuscenes_map import arcline_poses, load_expansion, neighbours
from rsd.scene import LineKind, lane_offset_known
from tests.datasets.nuscenes_fixture import (
    ARC_RADIUS,
    ARC_WIDTH,
    EGO_CIRCLE,
    NEIGHBOURS,
    STRAIGHT_RIGHT,
    STRAIGHT_WIDTH,
    write_expansion,
    write_fixture,
)

ALL_LANES = {
    "lane_arc": 0,
    **NEIGHBOURS,
    "lane_arc_diag": None,
    "lane_straight": None,
    "lane_oncoming": None,
    "conn_straight": None,
}
"""Every lane of the fixture's expansion near the ego, with its relation to the ego's lane."""


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> NuScenesReader:
    root = tmp_path_factory.mktemp("nuscenes")
    write_fixture(root)
    write_expansion(root)
    return NuScenesReader(root)


def test_arcline_left_straight_right_by_hand() -> None:
    # from the origin heading +x: a quarter left turn of radius 10 (centre (0, 10)) ends at
    # (10, 10) heading +y, 5 m straight to (10, 15), a quarter right turn (centre (20, 15))
    # ends at (20, 25) heading +x again
    q = math.pi / 2 * 10
    path = {"start_pose": [0, 0, 0], "shape": "LSR", "radius": 10, "segment_length": [q, 5, q]}
    poses = arcline_poses(path, step=0.5)
    np.testing.assert_allclose(poses[0], [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(poses[-1], [20, 25, 0], atol=1e-9)
    steps = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)
    assert steps.max() <= 0.5 + 1e-9 and len(poses) == math.ceil((2 * q + 5) / 0.5) + 1
    s = np.linspace(0, 2 * q + 5, len(poses))
    first, mid, last = s < q, (s > q) & (s < q + 5), s > q + 5
    np.testing.assert_allclose(np.hypot(poses[first, 0], poses[first, 1] - 10), 10, atol=1e-9)
    np.testing.assert_allclose(poses[mid, 0], 10, atol=1e-9)
    np.testing.assert_allclose(np.hypot(poses[last, 0] - 20, poses[last, 1] - 15), 10, atol=1e-9)
    # the heading is the tangent: along a left arc yaw = angle driven = s / r
    np.testing.assert_allclose(poses[first, 2], s[first] / 10, atol=1e-9)


def test_expansion_lanes_are_on_their_circle_and_line(tmp_path) -> None:
    lanes = {ln.lane_id: ln for ln in load_expansion(write_expansion(tmp_path)).lanes}
    assert set(lanes) == {*ALL_LANES}
    cx, cy, _ = EGO_CIRCLE
    arc = lanes["lane_arc"].centre
    np.testing.assert_allclose(np.hypot(arc[:, 0] - cx, arc[:, 1] - cy), ARC_RADIUS, atol=1e-9)
    assert len(arc) == math.ceil(100 / 0.5) + 1  # one path: 60 + 0 + 40 m every 0.5 m
    assert lanes["lane_arc"].width == pytest.approx(ARC_WIDTH, abs=0.01)
    assert lanes["lane_straight"].width == pytest.approx(STRAIGHT_WIDTH, abs=1e-9)
    assert lanes["conn_straight"].width == 3.5  # no polygon: the default
    assert (lanes["lane_arc"].left_line, lanes["lane_arc"].right_line) == (
        LineKind.STRIPED,
        LineKind.CONTINUOUS,
    )
    assert lanes["lane_straight"].left_line == LineKind.NONE
    # the connector starts where the straight lane ends
    np.testing.assert_allclose(lanes["conn_straight"].centre[0], lanes["lane_straight"].centre[-1])


def test_ego_lane_and_offset_known_by_construction(reader) -> None:
    for i in range(len(reader)):
        f = reader[i]
        assert lane_offset_known(f.ego) and f.ego.lane_id == "lane_arc", f.frame_id
        # the ego drives a circle of radius 200 around the arc lane's centre (radius 200.5)
        assert f.ego.lane_offset == pytest.approx(ARC_RADIUS - EGO_CIRCLE[2], abs=2e-3)
        by_id = {ln.lane_id: ln for ln in f.lanes}
        assert set(by_id) == {*ALL_LANES}
        # the ego's lane 0, its neighbours by shared dividers; oncoming, the lane sharing a
        # single corner node, another road's lane and a connector: None
        assert {k: ln.relation for k, ln in by_id.items()} == ALL_LANES, f.frame_id


def test_lanes_in_the_ego_frame(reader) -> None:
    f = reader[0]  # the ego at its start: heading 0.3 rad (a few ms of clock jitter)
    by_id = {ln.lane_id: ln for ln in f.lanes}
    straight = by_id["lane_straight"].centre
    # 8 m to the right, from 20 m behind to 40 m ahead, driving forward, LANE_STEP apart
    np.testing.assert_allclose(straight[:, 1], -STRAIGHT_RIGHT, atol=0.01)
    # (the sample's clock jitter of up to 3 ms moves the ego up to 2.4 cm along it)
    np.testing.assert_allclose(straight[[0, -1], 0], [-20.0, 40.0], atol=0.03)
    np.testing.assert_allclose(np.diff(straight[:, 0]), LANE_STEP, atol=1e-3)
    # the arc lane in the ego frame: the circle's centre is 200 m to the ego's left
    arc = by_id["lane_arc"].centre.astype(np.float64)
    np.testing.assert_allclose(np.hypot(arc[:, 0], arc[:, 1] - 200.0), ARC_RADIUS, atol=0.01)
    x0, x1, y0, y1 = LANE_REGION
    for ln in f.lanes:  # at most one point either side of the region
        c = ln.centre
        inside = (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
        assert inside[1:-1].all() and ln.centre.dtype == np.float32


def test_relations_agree_with_the_geometry(reader) -> None:
    """+1 is the lane left of the ego's: abeam the ego, each neighbour's centreline lies its
    relation times 3.5 m to the left of the ego lane's (y left in the ego frame)."""
    f = reader[3]
    abeam = {}
    for ln in f.lanes:
        c = ln.centre.astype(np.float64)
        near = np.abs(c[:, 0]) < 1.5
        if ln.relation is not None and near.any():
            abeam[ln.relation] = float(np.interp(0.0, c[:, 0], c[:, 1]))
    assert set(abeam) == {-1, 0, 1, 2}
    for rel, y in abeam.items():
        assert y - abeam[0] == pytest.approx(3.5 * rel, abs=0.05), rel


def test_neighbours_need_a_shared_left_right_divider() -> None:
    def lane(tok: str, left: list[str], right: list[str]) -> dict:
        seg = lambda ns: [{"node_token": n, "segment_type": "NIL"} for n in ns]  # noqa: E731
        return {"token": tok, "left_lane_divider_segments": seg(left),
                "right_lane_divider_segments": seg(right)}  # fmt: skip

    records = [
        lane("a", ["n1", "n2", "n3"], ["r1", "r2"]),
        lane("b", [], ["n2", "n3"]),  # b's right = a's left: b directly left of a
        lane("c", ["n1", "n2"], []),  # left-left: an oncoming lane across a's left line
        lane("d", [], ["n3", "x"]),  # one shared node: a corner, not a neighbour
        lane("e", ["r1", "r2", "r3"], []),  # e's left = a's right: e directly right of a
    ]
    assert neighbours(records) == {"a": (["b"], ["e"]), "b": ([], ["a"]), "e": (["a"], [])}


def test_without_an_expansion_there_are_no_lanes(tmp_path) -> None:
    write_fixture(tmp_path)
    f = NuScenesReader(tmp_path)[0]
    assert f.lanes == [] and not lane_offset_known(f.ego) and f.ego.lane_id == ""


def test_a_malformed_expansion_names_the_file(tmp_path) -> None:
    write_fixture(tmp_path)
    path = write_expansion(tmp_path)
    data = json.loads(path.read_text())
    del data["arcline_path_3"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"singapore-onenorth\.json.*arcline_path_3"):
        NuScenesReader(tmp_path)[0]
    data = json.loads(write_expansion(tmp_path).read_text())
    data["arcline_path_3"]["lane_arc"][0]["shape"] = "LXL"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"lane_arc.*'LXL'"):
        NuScenesReader(tmp_path)[0]
