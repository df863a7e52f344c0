"""Lanes from Bench2Drive's HD map (``<Town>_HD_map.npz`` in the layout of the public
repository's ``tools/gen_hdmap.py``), built here: the ego's lane and offset by construction."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.datasets import open_source
from rsd.datasets.b2d_map import load_hd_map, town_of
from rsd.scene import LineKind, lane_offset_known
from tests.datasets.test_bench2drive import write_clip

CENTRE_X = 100.4
"""CARLA x of the lane the ego drives in (the ego is at x = 100, heading CARLA +y)."""
WIDTH = 3.5


def _points(x: float, y0: float, y1: float, yaw_deg: float, centre: bool = False) -> list:
    """CARLA points 5 cm apart from (x, y0) to (x, y1), as gen_hdmap.py writes them."""
    ys = np.arange(y0, y1, 0.05 if y1 > y0 else -0.05)
    tail = (False,) if centre else ()
    return [((x, float(y), 0.0), (0.0, 0.0, yaw_deg), *tail) for y in ys]


def _centre(x: float, y0: float, y1: float, left: tuple, right: tuple) -> dict:
    """A ``Center`` entry driving from CARLA y0 to y1 at x, with its Left / Right links."""
    yaw = 90.0 if y1 > y0 else -90.0
    return {"Points": _points(x, y0, y1, yaw, centre=True), "Type": "Center", "Color": "White",
            "Topology": [], "TopologyType": "Normal", "Left": left, "Right": right}  # fmt: skip


def write_map(root, town: str = "Town12"):
    """Road 5: lane -1 along CARLA +y under the ego (left line broken, right solid); lane -2
    to its right (CARLA's right of +y is -x), in two lane sections (two Center entries); lane
    1 across the centre line, driven the other way (CARLA's Left of lane -1). Road 6: lane -1,
    the road after road 5, whose Right names road 5's lane -2 (another road: no link). A
    trigger volume."""
    none = (None, None)
    ego_lane = [
        _centre(CENTRE_X, 150, 300, left=(5, 1), right=(5, -2)),
        {"Points": _points(CENTRE_X + WIDTH / 2, 150, 300, 90.0), "Type": "Broken",
         "Color": "White", "Topology": []},
        {"Points": _points(CENTRE_X - WIDTH / 2, 150, 300, 90.0), "Type": "Solid",
         "Color": "White", "Topology": []},
    ]  # fmt: skip
    right_lane = [
        _centre(CENTRE_X - WIDTH, 150, 220, left=(5, -1), right=none),
        _centre(CENTRE_X - WIDTH, 220, 300, left=(5, -1), right=none),
    ]
    oncoming = [_centre(CENTRE_X + WIDTH, 300, 150, left=(5, -1), right=none)]
    ahead = [_centre(CENTRE_X, 300, 400, left=none, right=(5, -2))]
    trigger = [{"Points": [[90.0, 210.0, 0.0], [92.0, 210.0, 0.0]], "Type": "StopSign",
                "ParentActor_Location": [91.0, 209.0, 0.0]}]  # fmt: skip
    roads = {
        5: {-1: ego_lane, -2: right_lane, 1: oncoming, "Trigger_Volumes": trigger},
        6: {-1: ahead},
    }
    path = root / "maps" / f"{town}_HD_map.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, arr=np.array(list(roads.items()), dtype=object))
    return path


RELATIONS = {"5/-1/0": 0, "5/-2/0": -1, "5/-2/1": -1, "5/1/0": None, "6/-1/0": None}
"""Every lane of :func:`write_map` and its relation to the ego's (road 5, lane -1)."""


def test_town_of_a_clip() -> None:
    assert town_of("Scenario/Town12_Rep0_1_route0") == "Town12"
    assert town_of("AccidentTwoWays_Town10HD_Route1_Weather3") == "Town10HD"
    assert town_of("clip7") is None


def test_map_lanes_width_and_lines(tmp_path) -> None:
    lanes = {ln.lane_id: ln for ln in load_hd_map(write_map(tmp_path)).lanes}
    assert set(lanes) == set(RELATIONS)
    ego_lane = lanes["5/-1/0"]
    # rsd's world flips CARLA's y; the centreline keeps its driving direction (CARLA +y)
    np.testing.assert_allclose(ego_lane.centre[:, 0], CENTRE_X)
    assert (
        ego_lane.centre[0, 1] == pytest.approx(-150.0) and np.diff(ego_lane.centre[:, 1]).max() < 0
    )
    assert ego_lane.width == pytest.approx(WIDTH, abs=1e-6)
    assert (ego_lane.left_line, ego_lane.right_line) == (LineKind.STRIPED, LineKind.CONTINUOUS)
    assert lanes["5/1/0"].width == 3.5 and lanes["5/1/0"].left_line == LineKind.NONE
    # links: only same-road, same-direction lanes (lane 1 runs the other way; road 6 is
    # another road), to every Center entry of the lane named
    assert (ego_lane.left, ego_lane.right) == ((), ("5/-2/0", "5/-2/1"))
    assert lanes["5/-2/1"].left == ("5/-1/0",) and lanes["6/-1/0"].right == ()


def test_frames_get_lanes_and_the_ego_offset(tmp_path) -> None:
    write_clip(tmp_path)
    write_map(tmp_path)
    src = open_source(f"bench2drive:{tmp_path}")
    for f in src:
        # the ego (CARLA x = 100) is 0.4 m right of the centreline at x = 100.4
        assert lane_offset_known(f.ego) and f.ego.lane_id == "5/-1/0"
        assert f.ego.lane_offset == pytest.approx(-0.4, abs=1e-6)
        by_id = {ln.lane_id: ln for ln in f.lanes}
        assert {k: ln.relation for k, ln in by_id.items()} == RELATIONS, f.frame_id
        # in the ego frame: its lane straight ahead 0.4 m to the left, the oncoming one 3.9 m
        # left, the -1 lane 3.1 m right (the relation's sign: + = left, as y)
        np.testing.assert_allclose(by_id["5/-1/0"].centre[:, 1], 0.4, atol=1e-5)
        np.testing.assert_allclose(by_id["5/1/0"].centre[:, 1], 0.4 + WIDTH, atol=1e-5)
        for key in ("5/-2/0", "5/-2/1"):
            np.testing.assert_allclose(by_id[key].centre[:, 1], 0.4 - WIDTH, atol=1e-5)
        assert np.diff(by_id["5/-1/0"].centre[:, 0]).min() > 0  # driving forward
        assert np.diff(by_id["5/1/0"].centre[:, 0]).max() < 0  # oncoming


def test_without_a_map_no_lanes_and_a_bad_map_named(tmp_path) -> None:
    write_clip(tmp_path)
    f = open_source(f"bench2drive:{tmp_path}")[0]
    assert f.lanes == [] and not lane_offset_known(f.ego)
    path = tmp_path / "maps" / "Town12_HD_map.npz"
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"Town12_HD_map\.npz"):
        open_source(f"bench2drive:{tmp_path}")[0]


def test_a_map_without_links_gives_only_the_ego_lane(tmp_path) -> None:
    """Maps written before gen_hdmap.py recorded Left / Right: no neighbours, no error."""
    path = write_map(tmp_path)
    with np.load(path, allow_pickle=True) as npz:
        roads = dict(npz["arr"])
    for road in roads.values():
        for lane_id, entries in road.items():
            if lane_id != "Trigger_Volumes":
                for e in entries:
                    for key in ("Left", "Right"):
                        e.pop(key, None)
    np.savez_compressed(path, arr=np.array(list(roads.items()), dtype=object))
    lane_map = load_hd_map(path)
    assert all(ln.left == ln.right == () for ln in lane_map.lanes)
    assert lane_map.relations("5/-1/0") == {"5/-1/0": 0} and lane_map.relations("") == {}
