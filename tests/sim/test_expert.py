"""The privileged expert completes a sample of every built-in scenario safely."""

from __future__ import annotations

import pytest

from rsd.sim.episode import make_episode
from rsd.sim.expert import PrivilegedExpert
from rsd.sim.expert_check import run_one
from rsd.sim.spec import builtin_scenarios


@pytest.mark.parametrize("name", builtin_scenarios())
def test_expert_succeeds_on_a_sample_of_seeds(name):
    for seed in (0, 1, 2):
        r = run_one(name, seed)
        assert r.success, f"{name} seed {seed}: crashed={r.crashed} offroad={r.offroad}"
        assert r.mean_speed > 2.0, f"{name} seed {seed} barely moved"


def test_expert_controls_are_within_the_ego_limits_and_smooth():
    ep = make_episode("dense", 0)
    expert = PrivilegedExpert(ep)
    prev = None
    jumps = []
    while not ep.done:
        a, s = expert.act()
        assert -9.0 <= a <= 4.0 and abs(s) <= 0.6
        if prev is not None and a > -3.0 and prev > -3.0:
            jumps.append(abs(a - prev))
        prev = a
        ep.step(a, s)
    assert ep.success and max(jumps) <= 1.0 + 1e-9


def test_expert_overtakes_in_dense_traffic():
    changes = 0
    for seed in range(4):
        ep = make_episode("dense", seed)
        expert = PrivilegedExpert(ep)
        lanes = {ep.ego.lane_index[2]}
        while not ep.done:
            ep.step(*expert.act())
            lanes.add(ep.ego.lane_index[2])
        changes += len(lanes) > 1
    assert changes >= 2


def test_expert_merges_from_the_ramp():
    ep = make_episode("merge", 0)
    expert = PrivilegedExpert(ep)
    while not ep.done:
        ep.step(*expert.act())
    assert ep.success and ep.ego.lane_index[:2] == ("c", "d")
