"""Junction connectors: the roundabout's entry/exit corners count as road."""

import numpy as np
import pytest

from rsd.scene import LineKind
from rsd.sim.episode import make_episode
from rsd.sim.junctions import junction_connectors


def _lane(network, name):
    a, b, i = name.split(">")
    return network.get_lane((a, b, int(i)))


def test_only_the_roundabout_has_gaps_and_connectors_join_lane_ends_to_successor_starts():
    for name in ("highway", "dense", "merge", "intersection", "cut_in"):
        assert junction_connectors(make_episode(name, 0).road.network) == []
    net = make_episode("roundabout", 0).road.network
    conns = junction_connectors(net)
    assert len(conns) == 16  # 4 entries and 4 exits, each to/from both ring lanes
    for cid, lane in conns:
        src, dst = (_lane(net, part) for part in cid.split("="))
        np.testing.assert_allclose(lane.position(0, 0), src.position(src.length, 0), atol=1e-9)
        np.testing.assert_allclose(lane.position(lane.length, 0), dst.position(0, 0), atol=1e-9)
        assert 0.5 < lane.length < 10.0


def test_an_entry_corner_point_is_road_only_through_its_connector():
    """2.5 m to the right of the middle of the south entry's connector to the outer ring lane
    (where a tracked expert plan left the road):
    more than half a lane + 1 m from every lane of the graph, on the road with the connector."""
    ep = make_episode("roundabout", 0)
    net = ep.road.network
    conn = dict(junction_connectors(net))["ses>se>0=se>ex>1"]
    p = conn.position(conn.length / 2, 2.5)
    assert not any(lane.on_lane(p, margin=1.0) for lane in net.lanes_list())
    assert conn.on_lane(p, margin=1.0)
    ep.ego.position = np.array(p, dtype=float)
    assert ep._on_some_lane()


def test_roundabout_frames_draw_connectors_without_lines():
    from rsd.sim.recorder import record_episode

    frames = record_episode("roundabout", 0).frames
    conn = [ln for f in frames for ln in f.lanes if "=" in ln.lane_id]
    assert conn, "the ego passes the south entry within its first seconds"
    assert all(ln.left_line == ln.right_line == LineKind.NONE for ln in conn)
    assert all(ln.relation is None for ln in conn)
    assert conn[0].width == pytest.approx(4.0)
