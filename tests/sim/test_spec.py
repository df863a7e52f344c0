"""Scenario specs: built-ins load, ranges are respected, bad files name the bad field."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from rsd.config import ConfigError
from rsd.scene import SkillGroup
from rsd.sim.spec import (
    Choice,
    RandInt,
    Uniform,
    builtin_scenarios,
    draw_params,
    load_scenario,
    parse_spec,
)

EXPECTED = {
    "highway": SkillGroup.NOMINAL,
    "dense": SkillGroup.OVERTAKING,
    "sudden_brake": SkillGroup.EMERGENCY_BRAKE,
    "cut_in": SkillGroup.EMERGENCY_BRAKE,
    "merge": SkillGroup.MERGING,
    "roundabout": SkillGroup.GIVE_WAY,
    "intersection": SkillGroup.GIVE_WAY,
}


def test_builtins_load_with_their_skill_groups():
    assert set(EXPECTED) <= set(builtin_scenarios())
    for name, skill in EXPECTED.items():
        spec = load_scenario(name)
        assert spec.name == name and spec.skill == skill


def _ranged_fields(spec):
    models = [("ego.", spec.ego), ("traffic.", spec.traffic)]
    models += [(f"events[{i}].", ev) for i, ev in enumerate(spec.events)]
    for prefix, model in models:
        for name in type(model).model_fields:
            yield prefix + name, getattr(model, name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_drawn_params_stay_inside_their_ranges(name):
    spec = load_scenario(name)
    for seed in range(25):
        params = draw_params(spec, np.random.default_rng(seed))
        for key, value in _ranged_fields(spec):
            got = params[key] if key in params else None
            if isinstance(value, Uniform):
                assert value.uniform[0] <= got <= value.uniform[1], key
            elif isinstance(value, RandInt):
                assert isinstance(got, int) and value.randint[0] <= got <= value.randint[1], key
            elif isinstance(value, Choice):
                assert got in value.choice, key


def test_sudden_brake_is_really_hard():
    ev = load_scenario("sudden_brake").events[0]
    assert ev.decel.uniform == (6.0, 8.0)
    decels = [
        draw_params(load_scenario("sudden_brake"), np.random.default_rng(s))["events[0].decel"]
        for s in range(30)
    ]
    assert min(decels) >= 6.0 and max(decels) <= 8.0 and np.std(decels) > 0.3


def test_same_seed_same_params_different_seed_differs():
    spec = load_scenario("dense")
    a = draw_params(spec, np.random.default_rng(7))
    b = draw_params(spec, np.random.default_rng(7))
    c = draw_params(spec, np.random.default_rng(8))
    assert a == b and a != c


def _base() -> dict:
    return yaml.safe_load(
        """
name: custom
skill: emergency_brake
env_id: highway-v0
duration: 20
events:
  - {type: brake, at: {uniform: [5, 8]}, decel: 7}
"""
    )


def test_valid_custom_spec_parses():
    spec = parse_spec(_base())
    assert spec.events[0].decel == 7.0


@pytest.mark.parametrize(
    "patch, field",
    [
        (lambda d: d["events"][0].update(decel="fast"), "events[0].decel"),
        (lambda d: d["events"][0].update(decel={"uniform": [8, 6]}), "events[0].decel"),
        (lambda d: d["events"][0].update(decel=25), "events[0].decel"),
        (lambda d: d["events"][0].update(at={"uniform": [1]}), "events[0].at"),
        (lambda d: d.update(skill="parking"), "skill"),
        (lambda d: d.update(duration=-3), "duration"),
        (lambda d: d.update(traffic={"count": 5, "speeed": 3}), "traffic.speeed"),
        (lambda d: d.update(class_mix={"car": 1, "bus": 1}), "class_mix"),
    ],
)
def test_malformed_spec_error_names_the_field(patch, field):
    data = _base()
    patch(data)
    with pytest.raises(ConfigError) as e:
        parse_spec(data, "custom.yaml")
    assert f"custom.yaml: {field}" in str(e.value)


def test_load_scenario_from_file_and_bad_yaml(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump(_base()))
    assert load_scenario(good).name == "custom"
    bad = tmp_path / "bad.yaml"
    data = _base()
    data["events"][0]["decel"] = "fast"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"events\[0\]\.decel"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("no_such_scenario")
