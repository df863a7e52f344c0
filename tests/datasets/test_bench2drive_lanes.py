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


def write_map(root, town: str = "Town12"):
    """Two roads: road 5 lane -1 along CARLA +y under the ego (left line broken, right solid;
    CARLA's right of +y is -x), road 6 lane 1 the other way, 3.5 m over; a trigger volume."""
    ego_lane = [
        {"Points": _points(CENTRE_X, 150, 300, 90.0, centre=True), "Type": "Center",
         "Color": "White", "Topology": [], "TopologyType": "Normal", "Left": (6, 1),
         "Right": (None, None)},
        {"Points": _points(CENTRE_X + WIDTH / 2, 150, 300, 90.0), "Type": "Broken",
         "Color": "White", "Topology": []},
        {"Points": _points(CENTRE_X - WIDTH / 2, 150, 300, 90.0), "Type": "Solid",
         "Color": "White", "Topology": []},
    ]  # fmt: skip
    other = [{"Points": _points(CENTRE_X + WIDTH, 300, 150, -90.0, centre=True), "Type": "Center",
              "Color": "White", "Topology": []}]  # fmt: skip
    trigger = [{"Points": [[90.0, 210.0, 0.0], [92.0, 210.0, 0.0]], "Type": "StopSign",
                "ParentActor_Location": [91.0, 209.0, 0.0]}]  # fmt: skip
    roads = {5: {-1: ego_lane, "Trigger_Volumes": trigger}, 6: {1: other}}
    path = root / "maps" / f"{town}_HD_map.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, arr=np.array(list(roads.items()), dtype=object))
    return path


def test_town_of_a_clip() -> None:
    assert town_of("Scenario/Town12_Rep0_1_route0") == "Town12"
    assert town_of("AccidentTwoWays_Town10HD_Route1_Weather3") == "Town10HD"
    assert town_of("clip7") is None


def test_map_lanes_width_and_lines(tmp_path) -> None:
    lanes = {ln.lane_id: ln for ln in load_hd_map(write_map(tmp_path)).lanes}
    assert set(lanes) == {"5/-1/0", "6/1/0"}
    ego_lane = lanes["5/-1/0"]
    # rsd's world flips CARLA's y; the centreline keeps its driving direction (CARLA +y)
    np.testing.assert_allclose(ego_lane.centre[:, 0], CENTRE_X)
    assert (
        ego_lane.centre[0, 1] == pytest.approx(-150.0) and np.diff(ego_lane.centre[:, 1]).max() < 0
    )
    assert ego_lane.width == pytest.approx(WIDTH, abs=1e-6)
    assert (ego_lane.left_line, ego_lane.right_line) == (LineKind.STRIPED, LineKind.CONTINUOUS)
    assert lanes["6/1/0"].width == 3.5 and lanes["6/1/0"].left_line == LineKind.NONE


def test_frames_get_lanes_and_the_ego_offset(tmp_path) -> None:
    write_clip(tmp_path)
    write_map(tmp_path)
    src = open_source(f"bench2drive:{tmp_path}")
    for f in src:
        # the ego (CARLA x = 100) is 0.4 m right of the centreline at x = 100.4
        assert lane_offset_known(f.ego) and f.ego.lane_id == "5/-1/0"
        assert f.ego.lane_offset == pytest.approx(-0.4, abs=1e-6)
        by_id = {ln.lane_id: ln for ln in f.lanes}
        assert set(by_id) == {"5/-1/0", "6/1/0"} and by_id["5/-1/0"].relation == 0
        # in the ego frame: its lane straight ahead 0.4 m to the left, the other 3.9 m left
        np.testing.assert_allclose(by_id["5/-1/0"].centre[:, 1], 0.4, atol=1e-5)
        np.testing.assert_allclose(by_id["6/1/0"].centre[:, 1], 0.4 + WIDTH, atol=1e-5)
        assert np.diff(by_id["5/-1/0"].centre[:, 0]).min() > 0  # driving forward
        assert np.diff(by_id["6/1/0"].centre[:, 0]).max() < 0  # oncoming


def test_without_a_map_no_lanes_and_a_bad_map_named(tmp_path) -> None:
    write_clip(tmp_path)
    f = open_source(f"bench2drive:{tmp_path}")[0]
    assert f.lanes == [] and not lane_offset_known(f.ego)
    path = tmp_path / "maps" / "Town12_HD_map.npz"
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"Town12_HD_map\.npz"):
        open_source(f"bench2drive:{tmp_path}")[0]
