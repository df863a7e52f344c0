"""Episodes: determinism, agent sizes in collisions, scripted events, physical controls."""

from __future__ import annotations

import numpy as np
import pytest

from rsd.scene import AGENT_CLASS_SIZES, SIM_HZ, AgentClass
from rsd.sim.agents import NPC, set_size
from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert


def _roll(name: str, seed: int, steps: int = 40) -> np.ndarray:
    ep = make_episode(name, seed)
    for _ in range(steps):
        ep.step(0.5, 0.0)
    rows = [[0, *ep.ego.position, ep.ego.heading, ep.ego.speed]]
    rows += [[a.id, *a.vehicle.position, a.vehicle.heading, a.vehicle.speed] for a in ep.agents()]
    return np.array(rows)


@pytest.mark.parametrize("name", ["dense", "intersection"])
def test_same_seed_same_episode_different_seed_differs(name):
    a, b, c = _roll(name, 3), _roll(name, 3), _roll(name, 4)
    assert a.shape == b.shape and np.array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)


def test_agent_sizes_match_their_class_within_jitter():
    seen = set()
    for seed in range(3):
        ep = make_episode("dense", seed)
        jitter = ep.spec.size_jitter
        for a in ep.agents():
            length, width, height = AGENT_CLASS_SIZES[a.cls]
            v = a.vehicle
            assert abs(v.LENGTH / length - 1) <= jitter + 1e-9
            assert abs(v.WIDTH / width - 1) <= jitter + 1e-9
            assert abs(a.height / height - 1) <= jitter + 1e-9
            assert v.diagonal == pytest.approx(np.hypot(v.LENGTH, v.WIDTH))
            seen.add(a.cls)
    assert AgentClass.TRUCK in seen and AgentClass.CAR in seen


def test_spawned_agents_get_class_sizes_and_fresh_ids():
    ep = make_episode("intersection", 1)
    first = {a.id for a in ep.agents()}
    for _ in range(200):
        ep.step(-1.0, 0.0)
    new = [a for a in ep.agents() if a.id not in first]
    assert new, "no vehicle was spawned during the episode"
    assert min(a.id for a in new) > max(first)
    for a in new:
        assert a.vehicle.LENGTH != NPC.LENGTH  # not highway-env's 5 m default
        assert abs(a.vehicle.LENGTH / AGENT_CLASS_SIZES[a.cls][0] - 1) <= ep.spec.size_jitter


def test_collision_polygon_uses_the_instance_size():
    ep = make_episode("highway", 0)
    lane = ep.road.network.get_lane(("0", "1", 0))
    a = NPC(ep.road, lane.position(1000.0, 0), 0.0, 0.0)
    b = NPC(ep.road, lane.position(1000.0, 0), 0.0, 0.0)
    set_size(a, 10.0, 2.5)
    set_size(b, 10.0, 2.5)
    poly = a.polygon()[:4]
    sides = sorted(np.linalg.norm(np.diff(np.vstack([poly, poly[:1]]), axis=0), axis=1))
    assert sides == pytest.approx([2.5, 2.5, 10.0, 10.0])
    # two 10 m trucks 9.8 m apart (centres) overlap; with highway-env's 5 m default they would not
    b.position = lane.position(1009.8, 0)
    a.handle_collisions(b, 0.0)
    assert a.crashed and b.crashed
    c = NPC(ep.road, lane.position(1030.0, 0), 0.0, 0.0)
    d = NPC(ep.road, lane.position(1040.2, 0), 0.0, 0.0)
    set_size(c, 10.0, 2.5)
    set_size(d, 10.0, 2.5)
    c.handle_collisions(d, 0.0)
    assert not c.crashed


def test_step_uses_physical_units():
    ep = make_episode("highway", 2)
    v0 = ep.ego.speed
    for _ in range(SIM_HZ):
        ep.step(2.0, 0.0)
    assert ep.ego.speed == pytest.approx(v0 + 2.0, abs=1e-6)
    assert ep.step_count == SIM_HZ and ep.t == pytest.approx(1.0)
    h0 = ep.ego.heading
    steer = 0.05
    ep.step(0.0, steer)
    beta = np.arctan(np.tan(steer) / 2)
    expected = ep.ego.speed * np.sin(beta) / (ep.ego.LENGTH / 2) / SIM_HZ
    assert ep.ego.heading - h0 == pytest.approx(expected, rel=1e-6)


def test_ego_never_reverses():
    ep = make_episode("highway", 2)
    for _ in range(60):
        ep.step(-9.0, 0.0)
        assert ep.ego.speed >= 0.0
    assert ep.ego.speed == 0.0


def test_sudden_brake_decelerates_the_lead_at_the_drawn_rate():
    ep = make_episode("sudden_brake", 5)
    decel = ep.params["events[0].decel"]
    expert = PrivilegedExpert(ep)
    agent_id, _ = ep.scripts[0]
    lead = next(a.vehicle for a in ep.agents() if a.id == agent_id)
    rates, fired = [], False
    while not ep.done and ep.t < ep.params["events[0].at"] + 6:
        v_before = lead.speed
        ep.step(*expert.act())
        if f"brake:{agent_id}" in ep.active_events():
            fired = True
            if lead.speed > 0.5:
                rates.append((v_before - lead.speed) * SIM_HZ)
    assert fired and len(rates) > 10
    assert np.allclose(rates[1:], decel, atol=1e-6)
    assert 6.0 <= decel <= 8.0
    assert not ep.crashed and not ep.offroad  # the expert stopped in time
