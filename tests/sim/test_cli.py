"""``rsd scenarios`` and ``rsd expert-check`` on the command line."""

from __future__ import annotations

import re

import yaml

from rsd.cli import main
from rsd.sim.spec import ENV_IDS, builtin_scenarios


def test_scenarios_lists_every_builtin(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in builtin_scenarios():
        assert name in out
    assert "emergency_brake" in out and "U[6, 8]" in out


def test_scenarios_validates_a_custom_file(tmp_path, capsys):
    f = tmp_path / "mine.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "name": "mine",
                "skill": "nominal",
                "env_id": "highway-v0",
                "duration": 10,
                "traffic": {"count": {"randint": [2, 4]}},
            }
        )
    )
    assert main(["scenarios", "--scenario-file", str(f)]) == 0
    assert "traffic.count" in capsys.readouterr().out
    f.write_text(
        yaml.safe_dump(
            {
                "name": "mine",
                "skill": "nominal",
                "env_id": "highway-v0",
                "duration": 10,
                "ego": {"speed": "fast"},
            }
        )
    )
    assert main(["scenarios", "--scenario-file", str(f)]) == 2
    assert "ego.speed" in capsys.readouterr().err


def test_expert_check_prints_the_table_and_passes(capsys):
    assert main(["expert-check", "--scenarios", "highway", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "highway" in out and "100.0" in out


def test_expert_check_fails_below_the_threshold(capsys):
    # an impossible threshold must make the command fail
    assert (
        main(["expert-check", "--scenarios", "highway", "--seeds", "1", "--min-success", "101"])
        == 1
    )


def test_scenarios_columns_stay_apart_for_long_names(tmp_path, capsys):
    f = tmp_path / "long.yaml"
    name = "a_scenario_name_longer_than_its_column"
    spec = {"name": name, "skill": "emergency_brake", "env_id": "rsd-roundabout-v0"}
    f.write_text(yaml.safe_dump({**spec, "duration": 12.5}))
    assert main(["scenarios", "--scenario-file", str(f)]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(name))
    cells = re.split(r"\s{2,}", row)
    assert cells[:4] == [name, "emergency_brake", "rsd-roundabout-v0", "12.5"]


def test_scenarios_rejects_an_unknown_env_id_and_names_a_misspelt_key(tmp_path, capsys):
    f = tmp_path / "mine.yaml"
    spec = {"name": "mine", "skill": "nominal", "env_id": "highway-v9", "duration": 10}
    f.write_text(yaml.safe_dump(spec))
    assert main(["scenarios", "--scenario-file", str(f)]) == 2
    err = capsys.readouterr().err
    assert "env_id: 'highway-v9' is not one of highway-v0" in err and "valid" not in err
    spec["env_id"] = "highway-v0"
    spec["durration"] = spec.pop("duration")
    f.write_text(yaml.safe_dump(spec))
    assert main(["scenarios", "--scenario-file", str(f)]) == 2
    assert "durration: unknown key (valid keys: name, skill" in capsys.readouterr().err


def test_every_allowed_env_id_is_registered_with_a_known_layout():
    import gymnasium as gym

    from rsd.sim.envs import layout_of

    for env_id in ENV_IDS:
        assert env_id in gym.registry
        layout_of(env_id)  # raises for an id the simulator cannot lay out
