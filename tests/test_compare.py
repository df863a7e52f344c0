"""``rsd compare`` on a hand-made experiment directory whose answer is known: the rsd arm's
plan score is the baseline's + 0.1 on every frame, its episodes collide where the baseline's
do not in one scenario of one seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rsd.cli import main
from rsd.pipeline.compare import compare_arms
from rsd.sim.episode_log import EpisodeLog


def _frames(path, ids, pdm, window):
    n = len(ids)
    values = {k: np.ones(n) for k in ("nc", "dac", "ttc", "ep", "comfort", "ade", "fde")}
    np.savez(
        path,
        frame_id=np.array(ids),
        episode=np.array([i.rsplit("-", 1)[0] for i in ids]),
        in_event_window=np.array(window),
        pdm_score=np.array(pdm, float),
        **values,
    )


def _episode(scenario, seed, outcome):
    log = EpisodeLog(scenario, "nominal", seed, "model", outcome, 100.0, 100.0, 100.0, True, 10.0)
    return log.to_json()


@pytest.fixture
def exp(tmp_path):
    rng = np.random.default_rng(0)
    for seed in (0, 1, 2):
        ids = [f"highway-00004-{k:04d}" for k in range(20)]
        base = rng.uniform(0.3, 0.8, len(ids))
        window = [k < 5 for k in range(20)]
        for arm, shift, extra in (("baseline", 0.0, ["merge-00004-0000"]), ("rsd", 0.1, [])):
            d = tmp_path / "runs" / arm / f"seed{seed}"
            (d / "drive").mkdir(parents=True)
            pdm = list(base + shift) + [0.5] * len(extra)  # a frame the other arm lacks
            _frames(d / "eval_dense360.frames.npz", ids + extra, pdm, window + [True] * len(extra))
            crash = arm == "rsd" and seed == 0
            lines = [
                _episode("cut_in", 10000, "vehicle_collision" if crash else "success"),
                _episode("highway", 10000, "success"),
            ]
            (d / "drive" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_a_constant_per_frame_gain_is_found_exactly(exp):
    rows = {(r["group"], r["metric"]): r for r in compare_arms(exp, "rsd", "baseline", ["cut_in"])}
    pdm = rows[("open_loop[dense360]", "pdm_score")]
    assert pdm["diff"] == pytest.approx(0.1) and pdm["ci95"] == pytest.approx([0.1, 0.1])
    assert pdm["seeds"] == 3 and pdm["units"] == 60  # the unpaired merge frame is left out
    events = rows[("open_loop[dense360]", "pdm_score_events")]
    assert events["units"] == 15 and events["diff"] == pytest.approx(0.1)
    nc = rows[("open_loop[dense360]", "nc")]
    assert nc["diff"] == 0 and nc["ci95"] == [0, 0]


def test_closed_loop_pairs_episodes_by_scenario_and_seed(exp):
    rows = {(r["group"], r["metric"]): r for r in compare_arms(exp, "rsd", "baseline", ["cut_in"])}
    tail = rows[("closed_loop_long_tail", "collision_rate")]
    # seed 0: +100 on its one long-tail episode, seeds 1-2: 0 -> two-level mean 100 / 3
    assert tail["diff"] == pytest.approx(100 / 3) and tail["units"] == 3
    lo, hi = tail["ci95"]
    assert lo == 0 and hi == pytest.approx(100)  # one seed in three: the data do not tell
    overall = rows[("closed_loop_overall", "collision_rate")]
    assert overall["diff"] == pytest.approx(50 / 3) and overall["units"] == 6


def test_cli_prints_a_verdict_only_where_the_interval_excludes_zero(exp, capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert main(["compare", str(exp), "--boot", "500", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    pdm_line = next(ln for ln in text.splitlines() if ln.startswith("| PDM-style score |"))
    assert pdm_line.rstrip().endswith("| better |")
    crash = [ln for ln in text.splitlines() if ln.startswith("| collision (%)")]
    assert crash and all(ln.rstrip().endswith("| not resolved |") for ln in crash)
    assert len(json.loads(out.read_text())["rows"]) > 10
    assert main(["compare", str(exp), "--base", "nope"]) == 2
    assert "--base nope" in capsys.readouterr().err


def test_power_rows_measure_the_components_of_the_pairs(tmp_path, capsys):
    """Collisions (100 = crashed) on 4 paired episodes of 3 seeds; every seed of the rsd arm
    avoids exactly one of the baseline's collisions: mean differences -25, -25, -25 (no
    between-seed spread), within-seed variance (3 x 25^2 + 75^2) x 3 / (12 - 3) = 2500."""
    from rsd.metrics.power import VarianceComponents, paired_power, seeds_needed
    from rsd.pipeline.compare import power_rows

    crashes = {
        "baseline": [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]],
        "rsd": [[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
    }
    for arm, per_seed in crashes.items():
        for seed, row in enumerate(per_seed):
            d = tmp_path / "runs" / arm / f"seed{seed}" / "drive"
            d.mkdir(parents=True)
            lines = [
                _episode("cut_in", 10000 + k, "vehicle_collision" if c else "success")
                for k, c in enumerate(row)
            ]
            (d / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    rows = {r["group"]: r for r in power_rows(tmp_path, "rsd", "baseline", 0.5, ["cut_in"])}
    r = rows["closed_loop_long_tail"]
    assert r["seeds"] == 3 and r["episodes"] == 4 and r["base_mean"] == pytest.approx(50.0)
    assert r["diff"] == pytest.approx(-25.0) and r["target"] == pytest.approx(25.0)
    assert r["between"] == 0.0 and r["within"] == pytest.approx(2500.0)
    var = VarianceComponents(0.0, 2500.0)
    assert r["power_now"] == pytest.approx(paired_power(25.0, var, 3, 4))
    assert r["seeds_needed"][40] == seeds_needed(25.0, var, 40) is not None
    assert rows["closed_loop_overall"]["within"] == pytest.approx(2500.0)
    argv = ["compare", str(tmp_path), "--arm", "rsd", "--boot", "200", "--power", "0.5"]
    assert main([*argv, "--long-tail", "cut_in"]) == 0
    out = capsys.readouterr().out
    assert "n@100" in out and "closed_loop_long_tail" in out and "80 % power" in out


def test_episode_driving_score_is_the_driving_tables():
    """The per-episode DS the comparison pairs is the one ``driving_metrics`` reports for that
    episode alone (it is computed without the table's comfort fits): route completion times
    every infraction's factor."""
    from rsd.metrics.driving import driving_metrics
    from rsd.pipeline.compare import episode_values

    crash = [{"t": 3.0, "type": "vehicle_collision", "agent": 2}]
    offroad = [{"t": 5.0, "type": "offroad", "agent": None, "percentage": 40.0}]
    logs = [
        EpisodeLog("merge", "merge", k, "model", outcome, completion, 200.0, 90.0, False, 9.0,
                   infractions=inf, t=[0.0, 0.5, 1.0], x=[0.0, 5.0, 10.0], y=[0.0] * 3,
                   yaw=[0.0] * 3, speed=[10.0] * 3, nearby_speed=[9.0] * 3)
        for k, (outcome, completion, inf) in enumerate(
            [("vehicle_collision", 50.0, crash), ("offroad", 80.0, offroad), ("success", 100.0, [])]
        )
    ]  # fmt: skip
    scores = [driving_metrics([lg])["overall"]["driving_score"] for lg in logs]
    assert scores[2] == 100.0 and scores[1] == pytest.approx(48.0)  # 80 x (1 - 0.4)
    assert 0 < scores[0] < 50.0
    for lg, ds in zip(logs, scores, strict=True):
        assert episode_values([lg])["driving_score"][lg.episode_id] == pytest.approx(ds)


def test_an_arm_of_another_experiment_pairs_as_one_of_this_one(exp, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.move(exp / "runs" / "rsd", other / "runs" / "dagger")
    away = compare_arms(exp, f"dagger={other / 'runs' / 'dagger'}", "baseline", ["cut_in"])
    shutil.move(other / "runs" / "dagger", exp / "runs" / "rsd")
    here = compare_arms(exp, "rsd", "baseline", ["cut_in"])
    assert [r["arm"] for r in away] == ["dagger"] * len(here)
    # as JSON: NaN (no relative effect on a zero base) equals itself there
    assert json.dumps([{**r, "arm": "rsd"} for r in away]) == json.dumps(here)
    assert main(["compare", str(exp), "--arm", f"x={tmp_path / 'nowhere'}"]) == 2
    assert "no seed<S> run directories" in capsys.readouterr().err
