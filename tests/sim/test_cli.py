"""``rsd scenarios`` and ``rsd expert-check`` on the command line."""

from __future__ import annotations

import yaml

from rsd.cli import main
from rsd.sim.spec import builtin_scenarios


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
