"""Junction connectors: the asphalt highway-env's lane graph leaves out where roads join.

highway-env's roundabout ends each entry lane at the ring's outer edge, 5.6 m (outer ring
lane) and 7.7 m (inner) short of where the ring lanes it feeds begin, and starts each exit
lane as far from the ring lanes that feed it; no lane covers the corner in between, which
every car (the expert included) crosses. A real road is paved there. A connector is a straight
lane from the end of a lane to the start of a successor lane (a lane of an edge leaving the
node it ends at) where the two are more than ``MIN_GAP`` m apart and the connector runs roughly
along both (within 60 degrees of the first's end heading and of the second's start heading;
this leaves out the neighbouring lanes of the successor edge, which a lane change reaches,
and U-turn edges). In the built-in layouts only the roundabout has any (16).

Connectors count as road for the off-road check (:meth:`rsd.sim.episode.Episode.step`) and are
drawn as lanes without painted lines in every frame (so in the drivable-area raster the model
reads and the plan score's DAC uses); they are not in the lane graph, so no vehicle routes
along them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from highway_env.road.lane import LineType, StraightLane

from rsd.scene import wrap_angle

MIN_GAP = 0.5
"""End-to-start distance (m) below which lanes are taken as joined."""
MAX_TURN = np.pi / 3


def junction_connectors(network: Any) -> list[tuple[str, Any]]:
    """``(id, lane)`` of every connector of ``network`` (a highway-env ``RoadNetwork``); ids
    ``"a>b>i=b>c>j"``: the lane it leaves and the lane it joins."""
    out: list[tuple[str, Any]] = []
    graph = network.graph
    for a, tos in graph.items():
        for b, lanes in tos.items():
            for i, lane in enumerate(lanes):
                end = np.asarray(lane.position(lane.length, 0.0), dtype=np.float64)
                h_end = float(lane.heading_at(lane.length))
                for c, nxt in graph.get(b, {}).items():
                    for j, succ in enumerate(nxt):
                        start = np.asarray(succ.position(0.0, 0.0), dtype=np.float64)
                        gap = start - end
                        if np.hypot(*gap) <= MIN_GAP:
                            continue
                        along = float(np.arctan2(gap[1], gap[0]))
                        if abs(wrap_angle(along - h_end)) >= MAX_TURN:
                            continue
                        if abs(wrap_angle(float(succ.heading_at(0.0)) - h_end)) >= MAX_TURN:
                            continue
                        width = max(float(lane.width_at(lane.length)), float(succ.width_at(0.0)))
                        line = (LineType.NONE, LineType.NONE)
                        conn = StraightLane(end, start, width=width, line_types=line)
                        out.append((f"{a}>{b}>{i}={b}>{c}>{j}", conn))
    return out
