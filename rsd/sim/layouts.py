"""Placing the ego and the NPCs on each road layout, spawning during the episode, goals.

Layouts (from the env id): ``straight`` (highway-v0), ``merge`` (rsd-merge-v0, the ego
merges from the on-ramp), ``roundabout`` (rsd-roundabout-v0, the ego enters from the south
and gives way to ring traffic), ``intersection`` (intersection-v0, the ego comes from the
minor southern road and gives way to crossing traffic).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from rsd.scene import SIM_HZ, AgentClass
from rsd.sim.agents import (
    NPC,
    BrakeScript,
    CutInScript,
    draw_size,
    predict_along_route,
    set_size,
)
from rsd.sim.spec import BrakeEvent, CutInEvent, ScenarioSpec


class Episode(Protocol):
    """What a layout reads and fills of a running :class:`rsd.sim.episode.Episode` (a
    protocol, so that the episode, which calls :func:`populate`, is not imported here)."""

    spec: ScenarioSpec
    rng: np.random.Generator
    params: dict[str, Any]
    layout: str
    env: Any
    road: Any
    ego: Any
    ego_height: float
    ego_target_speed: float
    route: list[tuple]
    spawn_sites: list[tuple[tuple, float]]
    give_way: Any
    scripts: list[tuple[int, Any]]

    def register(self, vehicle: Any, cls: AgentClass, height: float, behaviour: str) -> Any: ...

    def agent_by_vehicle(self, vehicle: Any) -> Any: ...


RING = {"se", "ex", "ee", "nx", "ne", "wx", "we", "sx"}
ROUNDABOUT_ENTRIES = [("eer", "ees"), ("ner", "nes"), ("wer", "wes")]
ROUNDABOUT_EXITS = ["exr", "nxr", "wxr", "sxr"]
GOAL_DISTANCE = 30.0
"""Metres along the exit road after which a roundabout/intersection episode is complete."""


def _weighted(ep: Episode, mix: dict[str, float]) -> str:
    names = sorted(mix)
    w = np.array([mix[n] for n in names], dtype=float)
    return names[int(ep.rng.choice(len(names), p=w / w.sum()))]


def make_npc(
    ep: Episode,
    lane_index: tuple,
    s: float,
    speed: float,
    target_speed: float,
    behaviour: str | None = None,
    cls: AgentClass | None = None,
    route: list | None = None,
    lane_change: bool = True,
) -> NPC:
    """Create, size, parameterise and register one NPC at ``s`` m along ``lane_index``."""
    lane = ep.road.network.get_lane(lane_index)
    cls = cls if cls is not None else AgentClass[_weighted(ep, ep.spec.class_mix).upper()]
    behaviour = behaviour or _weighted(ep, ep.spec.behaviour_mix)
    length, width, height = draw_size(cls, ep.spec.size_jitter, ep.rng)
    v = NPC(
        ep.road,
        lane.position(s, 0.0),
        lane.heading_at(s),
        speed,
        target_lane_index=lane_index,
        route=route,
        enable_lane_change=lane_change,
    )
    set_size(v, length, width)
    v.apply_profile("scripted" if behaviour == "scripted" else behaviour, target_speed)
    if cls == AgentClass.TRUCK:
        v.target_speed = min(v.target_speed, target_speed * 0.9)
    v.timer = float(ep.rng.uniform(0, v.LANE_CHANGE_DELAY))
    ep.register(v, cls, height, behaviour)
    return v


def _free(ep: Episode, position: np.ndarray, radius: float) -> bool:
    return all(np.linalg.norm(v.position - position) > radius for v in ep.road.vehicles)


def _place_ego(ep: Episode, lane_index: tuple, s: float, speed: float) -> None:
    ego = ep.ego
    lane = ep.road.network.get_lane(lane_index)
    ego.position = lane.position(s, 0.0)
    ego.heading = lane.heading_at(s)
    ego.speed = speed
    length, width, ep.ego_height = draw_size(AgentClass.CAR, ep.spec.size_jitter, ep.rng)
    set_size(ego, length, width)
    ego.on_state_update()


def _set_route(ep: Episode, route: list) -> None:
    ep.route = list(route)
    ep.ego.route = list(route)
    # highway-env's plain Vehicle predicts by deep-copying itself (and the whole road) when
    # RegulatedRoad checks conflicts; predict along the route instead, as NPCs do.
    ego = ep.ego
    ego.predict_trajectory_constant_speed = lambda times: predict_along_route(ego, times)


def populate(ep: Episode) -> None:
    {
        "straight": _straight,
        "merge": _merge,
        "roundabout": _roundabout,
        "intersection": _intersection,
    }[ep.layout](ep)


# ---- straight highway ----------------------------------------------------------------------
def _fill_lanes(
    ep: Episode,
    road: tuple[str, str],
    lanes: int,
    s_ego: float,
    lo: float,
    hi: float,
    keep_out: dict[int, tuple[float, float]],
) -> None:
    """Place ``traffic.count`` NPCs on ``lanes`` lanes within [lo, hi] m (lane s)."""
    p = ep.params
    count, gap = int(p["traffic.count"]), float(p["traffic.gap"])
    slots: list[tuple[int, float]] = []
    for lane_id in range(lanes):
        s = lo + float(ep.rng.uniform(0, gap))
        while s < hi:
            k_lo, k_hi = keep_out.get(lane_id, (np.inf, -np.inf))
            if not (k_lo <= s <= k_hi):
                slots.append((lane_id, s))
            s += gap * float(ep.rng.uniform(0.7, 1.3)) + 8.0
    order = ep.rng.permutation(len(slots))[:count]
    for i in sorted(order):
        lane_id, s = slots[i]
        speed = float(ep.params["traffic.speed"]) + float(ep.rng.uniform(-2, 2))
        target = ep.ego_target_speed * float(ep.rng.uniform(0.85, 1.05))
        make_npc(ep, (*road, lane_id), s, speed, target)


def _straight(ep: Episode) -> None:
    p = ep.params
    lanes = len(ep.road.network.graph["0"]["1"])
    lane_id = p["ego.lane"]
    lane_id = int(ep.rng.integers(lanes)) if lane_id is None else int(lane_id) % lanes
    s_ego, speed = 300.0, float(p["ego.speed"])
    ego_lane = ("0", "1", lane_id)
    _place_ego(ep, ego_lane, s_ego, speed)
    _set_route(ep, [ego_lane])
    keep: dict[int, tuple[float, float]] = {lane_id: (s_ego - 20, s_ego + 25)}
    for k in (lane_id - 1, lane_id + 1):
        keep[k] = (s_ego - 12, s_ego + 12)
    events = list(enumerate(ep.spec.events))
    for i, ev in events:
        if isinstance(ev, BrakeEvent):
            gap = float(p[f"events[{i}].gap"])
            keep[lane_id] = (s_ego - 20, s_ego + gap + 40)
        elif isinstance(ev, CutInEvent):
            side = p[f"events[{i}].side"]
            k = lane_id - 1 if side == "left" else lane_id + 1
            if not 0 <= k < lanes:
                k = lane_id + 1 if side == "left" else lane_id - 1
            p[f"events[{i}].lane"] = k
            keep[k] = (s_ego - 45, s_ego + 80)
            keep[lane_id] = (s_ego - 20, s_ego + float(p[f"events[{i}].gap"]) + 45)
    tr = ep.spec.traffic
    _fill_lanes(ep, ("0", "1"), lanes, s_ego, s_ego - tr.lookbehind, s_ego + tr.lookahead, keep)
    for i, ev in events:
        if isinstance(ev, BrakeEvent):
            gap = float(p[f"events[{i}].gap"])
            lead = make_npc(
                ep,
                ego_lane,
                s_ego + gap + ep.ego.LENGTH / 2 + 2.5,
                speed,
                ep.ego_target_speed,
                behaviour="scripted",
                cls=AgentClass.CAR,
                lane_change=False,
            )
            script = BrakeScript(
                float(p[f"events[{i}].at"]),
                float(p[f"events[{i}].decel"]),
                float(p[f"events[{i}].hold"]),
            )
            lead.script = script
            ep.scripts.append((ep.agent_by_vehicle(lead).id, script))
        elif isinstance(ev, CutInEvent):
            k = p[f"events[{i}].lane"]
            dv = float(p[f"events[{i}].speed_delta"])
            cutter = make_npc(
                ep,
                ("0", "1", k),
                s_ego - 25.0,
                speed + dv,
                ep.ego_target_speed + dv,
                behaviour="aggressive",
                cls=AgentClass.CAR,
                lane_change=False,
            )
            cutter.target_speed = ep.ego_target_speed + dv
            script = CutInScript(
                ep.ego,
                float(p[f"events[{i}].at"]),
                float(p[f"events[{i}].gap"]),
                float(p[f"events[{i}].decel"]),
                float(p[f"events[{i}].brake_time"]),
            )
            cutter.script = script
            ep.scripts.append((ep.agent_by_vehicle(cutter).id, script))


# ---- merge ---------------------------------------------------------------------------------
def _merge(ep: Episode) -> None:
    cfg = ep.env.unwrapped.config
    lanes = int(cfg["lanes_count"])
    ramp = ("j", "k", 0)
    s0, speed = 40.0, float(ep.params["ego.speed"])
    _place_ego(ep, ramp, s0, speed)
    _set_route(ep, [ramp, ("k", "b", 0), ("b", "c", lanes), ("c", "d", None)])
    merge_x = cfg["before_merge_length"] + cfg["converge_merge_length"]
    _fill_lanes(ep, ("a", "b"), lanes, merge_x, 0.0, merge_x - 10.0, {})
    ep.spawn_sites = [(("a", "b", k), 0.0) for k in range(lanes)]


# ---- roundabout ----------------------------------------------------------------------------
def _roundabout_give_way(ep: Episode):
    net = ep.road.network

    def give_way(v: NPC) -> float | None:
        fr, to, _ = v.lane_index
        if fr.endswith("er"):
            rest = v.lane.length - v.lane.local_coordinates(v.position)[0] + 17.0
        elif fr.endswith("es") and to in RING:
            rest = v.lane.length - v.lane.local_coordinates(v.position)[0]
        else:
            return None
        if rest > 30.0:
            return None
        entry_lane = net.get_lane((fr, to, 0) if to in RING else (to, to[:-1], 0))
        merge_pt = entry_lane.position(entry_lane.length, 0.0)
        for o in ep.road.vehicles:
            if o is v or o.lane_index[0] not in RING or o.lane_index[1] not in RING:
                continue
            rel = merge_pt - o.position
            dist = float(np.linalg.norm(rel))
            upstream = float(np.dot(o.direction, rel)) > 0
            if dist < 9.0 or (upstream and (dist < 25.0 or dist / max(o.speed, 1.0) < 5.0)):
                return max(rest - 9.0, 0.1)
        return None

    return give_way


def _roundabout_npc(ep: Episode, lane_index: tuple, s: float) -> NPC:
    speed = float(ep.params["traffic.speed"]) + float(ep.rng.uniform(-1.5, 1.5))
    dest = ROUNDABOUT_EXITS[int(ep.rng.integers(len(ROUNDABOUT_EXITS)))]
    v = make_npc(ep, lane_index, s, speed, speed, cls=None, lane_change=False)
    v.plan_route_to(dest)
    v.give_way = ep.give_way
    return v


def _roundabout(ep: Episode) -> None:
    p = ep.params
    ego_lane = ("ser", "ses", 0)
    _place_ego(ep, ego_lane, 85.0, float(p["ego.speed"]))
    ep.ego.route = None
    dest = p["ego.destination"] or "nxr"
    path = ep.road.network.shortest_path("ses", dest)
    _set_route(ep, [ego_lane] + [(path[i], path[i + 1], None) for i in range(len(path) - 1)])
    ep.give_way = _roundabout_give_way(ep)
    ring = [(a, b) for a in RING for b in ep.road.network.graph[a] if b in RING]
    ring.sort()
    for _ in range(int(p["traffic.count"])):
        for _try in range(10):
            fr, to = ring[int(ep.rng.integers(len(ring)))]
            lane_index = (fr, to, 1)  # outer lane: exits never cut across a neighbour
            lane = ep.road.network.get_lane(lane_index)
            s = float(ep.rng.uniform(0, lane.length))
            pos = lane.position(s, 0.0)
            if _free(ep, pos, 14.0) and np.linalg.norm(pos - ep.ego.position) > 40:
                _roundabout_npc(ep, lane_index, s)
                break
    ep.spawn_sites = [((a, b, 0), 20.0) for a, b in ROUNDABOUT_ENTRIES]


# ---- intersection --------------------------------------------------------------------------
def _intersection(ep: Episode) -> None:
    p = ep.params
    ego_lane = ("o0", "ir0", 0)
    _place_ego(ep, ego_lane, 60.0, float(p["ego.speed"]))
    dest = p["ego.destination"] or "o2"
    path = ep.road.network.shortest_path("ir0", dest)
    _set_route(ep, [ego_lane] + [(path[i], path[i + 1], None) for i in range(len(path) - 1)])
    ep.spawn_sites = [((f"o{k}", f"ir{k}", 0), 0.0) for k in (1, 2, 3)]
    for _ in range(int(p["traffic.count"])):
        for _try in range(10):
            lane_index, _ = ep.spawn_sites[int(ep.rng.integers(3))]
            s = float(ep.rng.uniform(5.0, 85.0))
            pos = ep.road.network.get_lane(lane_index).position(s, 0.0)
            if _free(ep, pos, 18.0):
                _intersection_npc(ep, lane_index, s)
                break


def _intersection_npc(ep: Episode, lane_index: tuple, s: float) -> NPC:
    k = int(lane_index[0][1:])
    dest = f"o{(k + int(ep.rng.integers(1, 4))) % 4}"
    speed = float(ep.params["traffic.speed"]) + float(ep.rng.uniform(-1.0, 1.0))
    v = make_npc(ep, lane_index, s, speed, speed, lane_change=False)
    v.plan_route_to(dest)
    return v


# ---- during the episode --------------------------------------------------------------------
def after_step(ep: Episode) -> None:
    """Spawn NPCs at the entries (Poisson, ``traffic.spawn_rate`` per s) and drop NPCs that
    left the map."""
    rate = float(ep.params.get("traffic.spawn_rate") or 0.0)
    sites = getattr(ep, "spawn_sites", [])
    if rate > 0 and sites and ep.rng.uniform() < rate / SIM_HZ:
        lane_index, s = sites[int(ep.rng.integers(len(sites)))]
        pos = ep.road.network.get_lane(lane_index).position(s, 0.0)
        if _free(ep, pos, 25.0):
            if ep.layout == "roundabout":
                _roundabout_npc(ep, lane_index, s)
            elif ep.layout == "intersection":
                _intersection_npc(ep, lane_index, s)
            else:
                speed = float(ep.params["traffic.speed"])
                make_npc(
                    ep,
                    lane_index,
                    s,
                    speed,
                    ep.ego_target_speed * float(ep.rng.uniform(0.85, 1.05)),
                )
    keep: list[Any] = []
    for v in ep.road.vehicles:
        if v is not ep.ego:
            lane = v.lane
            s = lane.local_coordinates(v.position)[0]
            if s > lane.length - 3 and not ep.road.network.graph.get(v.lane_index[1]):
                continue  # end of a dead-end exit road
            if ep.layout == "straight" and abs(v.position[0] - ep.ego.position[0]) > 400:
                continue
        keep.append(v)
    ep.road.vehicles[:] = keep


def reached_goal(ep: Episode) -> bool:
    """Roundabout / intersection: the ego is ``GOAL_DISTANCE`` m down its exit road."""
    if ep.layout not in ("roundabout", "intersection"):
        return False
    fr, to, _ = ep.ego.lane_index
    last = ep.route[-1]
    if (fr, to) != tuple(last[:2]):
        return False
    return ep.ego.lane.local_coordinates(ep.ego.position)[0] >= GOAL_DISTANCE
