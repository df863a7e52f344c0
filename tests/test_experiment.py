"""``rsd experiment``: the aggregation over seeds (hand-computed numbers), the config checks,
and a tiny experiment end to end, then resumed."""

from __future__ import annotations

import json
import math

import pytest

from rsd.config import ConfigError
from rsd.metrics.stats import aggregate
from rsd.pipeline.experiment import run_experiment
from rsd.pipeline.experiment_config import ExperimentConfig, load_experiment_config
from rsd.pipeline.stages import time_totals
from rsd.pipeline.summary import check_targets, pool_outcomes, run_metrics
from rsd.report.tables import results_markdown
from rsd.teacher.ids import noisy_teacher_id

# -- aggregation -----------------------------------------------------------------------------


def _run(ade, l2, col_tail, ds_tail, ds_nom, ade_ret=0.5, mase=0.5, mave=1.0, pcol=1.0):
    return {
        "open_loop": {
            "ade": ade,
            "l2_vad_avg": l2,
            "mASE": mase,
            "mAVE": mave,
            "collision_box_avg_pct": pcol,
        },
        "unseen_rig": {"ade_retention": ade_ret},
        "closed_loop_long_tail": {"collision_rate": col_tail, "driving_score": ds_tail},
        "closed_loop_nominal": {"driving_score": ds_nom},
    }


PER_RUN = {
    "baseline": {
        0: _run(2.0, 1.0, 40.0, 50.0, 80.0),
        1: _run(4.0, 1.0, 60.0, 60.0, 90.0),
    },
    "rsd": {
        0: _run(1.5, 0.95, 20.0, 70.0, 76.0, ade_ret=0.6, mase=0.4, mave=0.9, pcol=0.5),
        1: _run(2.5, 0.95, 30.0, 70.0, 80.0, ade_ret=0.7, mase=0.4, mave=1.1, pcol=0.5),
    },
}


def test_aggregate_over_seeds():
    agg = aggregate(PER_RUN, "baseline")
    ade = agg["open_loop"]["ade"]
    assert ade["baseline"]["values"] == {"0": 2.0, "1": 4.0}
    assert ade["baseline"]["mean"] == 3.0 and ade["baseline"]["std"] == pytest.approx(math.sqrt(2))
    assert ade["baseline"]["delta_pct"] == 0.0
    assert ade["rsd"]["mean"] == 2.0 and ade["rsd"]["delta_pct"] == pytest.approx(-100 / 3)
    col = agg["closed_loop_long_tail"]["collision_rate"]
    assert col["rsd"]["delta_pct"] == pytest.approx(-50.0)  # 25 vs 50
    # one seed: the std is undefined
    one = aggregate({"baseline": {0: PER_RUN["baseline"][0]}}, "baseline")
    assert math.isnan(one["open_loop"]["ade"]["baseline"]["std"])
    # no baseline arm: no change to report
    alone = aggregate({"rsd": PER_RUN["rsd"]}, "baseline")
    assert math.isnan(alone["open_loop"]["ade"]["rsd"]["delta_pct"])


def test_targets_met_and_not_met():
    rows = {
        r["target"].split(": ", 1)[1]: r["met"]
        for r in check_targets(aggregate(PER_RUN, "baseline"))
    }
    assert rows["long-tail collision rate >= 30% lower"] is True  # -50%
    assert rows["long-tail driving score higher"] is True  # 70 vs 55
    # nominal DS 78 vs 85 +- 7.07: lower by less than one std of the baseline
    assert rows["nominal driving score not lower (by more than 1 std of baseline)"] is True
    assert rows["ADE >= 10% lower"] is True  # -33%
    assert rows["L2 >= 10% lower"] is False  # 0.95 vs 1.0: -5%
    assert rows["mASE lower"] is True
    assert rows["mAVE lower"] is False  # 1.0 vs 1.0
    assert rows["plan collision lower"] is True
    assert rows["unseen-rig ADE retention higher"] is True
    # nominal DS lower by more than one std: not met; a missing value: unknown (None)
    worse = {a: {s: dict(r) for s, r in runs.items()} for a, runs in PER_RUN.items()}
    for s in (0, 1):
        worse["rsd"][s]["closed_loop_nominal"] = {"driving_score": 70.0}
        worse["rsd"][s]["open_loop"] = {**worse["rsd"][s]["open_loop"], "mASE": math.nan}
    rows = {
        r["target"].split(": ", 1)[1]: r["met"] for r in check_targets(aggregate(worse, "baseline"))
    }
    assert rows["nominal driving score not lower (by more than 1 std of baseline)"] is False
    assert rows["mASE lower"] is None


def test_markdown_has_every_group_and_the_targets():
    agg = aggregate(PER_RUN, "baseline")
    times = {
        "total": {"wall_s": 3.0, "cpu_s": 5.0, "stages": 2},
        "by_kind": {"train": {"wall_s": 3.0, "cpu_s": 5.0, "stages": 2}},
    }
    md = results_markdown(agg, check_targets(agg), times, "rsd experiment x", ["baseline", "rsd"])
    assert "| ADE (m) | 3.000 ± 1.414 | 2.000 ± 0.707 (-33.3%) |" in md
    assert "| rsd vs baseline: long-tail collision rate >= 30% lower |" in md
    assert "| total | 2 | 3.0 | 5.0 |" in md and "rsd experiment x" in md


def test_run_metrics_retention_and_closed_loop_groups():
    from rsd.sim.closed_loop import EpisodeLog

    def ev(ade, nds):
        return {"planning": {"ade": ade, "l2_vad_avg": 1.0}, "detection": {"NDS": nds}}

    def log(scn, outcome, seed=0):
        return EpisodeLog(scn, "skill", seed, "model", outcome, 100.0, 50.0, 50.0, True, 10.0)

    logs = [
        log("cut_in", "vehicle_collision"),
        log("cut_in", "success", 1),
        log("highway", "success"),
        log("highway", "offroad", 1),
    ]
    m = run_metrics(ev(2.0, 0.4), ev(4.0, 0.3), logs, ("cut_in",))
    assert m["unseen_rig"]["ade_retention"] == 0.5  # 2.0 / 4.0
    assert m["unseen_rig"]["nds_retention"] == pytest.approx(0.75)  # 0.3 / 0.4
    assert m["closed_loop_long_tail"]["collision_rate"] == 50.0
    assert m["closed_loop_long_tail"]["offroad_rate"] == 0.0
    assert m["closed_loop_nominal"]["offroad_rate"] == 50.0
    assert m["closed_loop_overall"]["episodes"] == 4
    assert m["collision_per_scenario"] == {"cut_in": 50.0, "highway": 0.0}
    assert math.isnan(m["open_loop"]["mASE"])  # not in the eval: NaN
    none = run_metrics({}, {}, [], ("cut_in",))
    assert math.isnan(none["unseen_rig"]["ade_retention"])


def test_outcomes_pool_over_seeds_by_group():
    from rsd.report.tables import format_pooled
    from rsd.sim.closed_loop import EpisodeLog

    def log(scn, outcome, seed):
        return EpisodeLog(scn, "skill", seed, "model", outcome, 100.0, 50.0, 50.0, True, 10.0)

    logs = [log("cut_in", "vehicle_collision", s) for s in range(3)]
    logs += [log("cut_in", "success", s) for s in range(3, 4)]
    logs += [log("highway", "offroad", 0), log("highway", "success", 1)]
    p = pool_outcomes(logs, ("cut_in",))
    assert p["long_tail"]["episodes"] == 4 and p["nominal"]["episodes"] == 2
    assert p["long_tail"]["vehicle_collision"]["count"] == 3
    assert p["long_tail"]["vehicle_collision"]["rate_pct"] == 75.0
    assert p["nominal"]["offroad"]["rate_pct"] == 50.0 and p["overall"]["episodes"] == 6
    lo, hi = p["long_tail"]["vehicle_collision"]["ci95_pct"]
    assert lo < 75.0 < hi
    table = format_pooled({"rsd": p}, ["rsd"])
    assert "| rsd | long_tail | 4 | 75.0 [" in table


def test_time_totals_sum_markers(tmp_path):
    for name, kind, s, c in [
        ("a", "train", 1.0, 2.0),
        ("b", "train", 2.0, 3.5),
        ("c", "eval", 1, None),
    ]:
        rec = {"kind": kind, "seconds": s} | ({} if c is None else {"cpu_seconds": c})
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    t = time_totals(tmp_path.glob("*.json"))
    assert t["total"]["wall_s"] == 4.0 and t["total"]["cpu_s"] == 5.5
    assert t["by_kind"]["train"] == {"wall_s": 3.0, "cpu_s": 5.5, "stages": 2, "cpu_missing": 0}
    assert t["by_kind"]["eval"]["cpu_missing"] == 1


# -- config ----------------------------------------------------------------------------------


def test_default_arms_and_teacher_ids():
    cfg = ExperimentConfig()
    assert list(cfg.arms) == [
        "baseline",
        "rsd",
        "rsd_no_constraint",
        "constraint_only",
        "aux_only",
        "oracle",
        "rsd_noisy25",
        "rsd_noisy50",
        "rsd_riskweighted",
        "rsd_balanced_rw",
    ]
    assert cfg.train_config("rsd_balanced_rw", 0).loss.distill_balance == 0.05
    assert cfg.train_config("rsd_riskweighted", 0).loss.risk_imitation_alpha == 4.0
    assert cfg.train_config("rsd", 0).loss.risk_imitation_alpha == 0.0
    assert cfg.arms["rsd_noisy25"]["teacher"] == noisy_teacher_id(0.25)
    tc = cfg.train_config("rsd_noisy50", 2)
    assert tc.teacher == noisy_teacher_id(0.5) and tc.seed == 2 and tc.epochs == 6
    tc = cfg.train_config("constraint_only", 0)
    assert tc.task.teacher_targets and not tc.task.risk_head
    assert cfg.train_config("rsd_no_constraint", 0).loss.traj_risk_mass == 0
    assert cfg.train_config("baseline", 0).model.backbone.channels == 32
    # the built-in default YAML is the dataclass default
    assert load_experiment_config("default") == cfg


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"arms\.rsd: unknown config key bogus"):
        load_experiment_config("quick", ["arms.rsd.bogus=1"])
    with pytest.raises(ConfigError, match=r"arms\.rsd: .*epochs: expected int"):
        load_experiment_config("quick", ["arms.rsd.epochs=many"])
    with pytest.raises(ConfigError, match="drive_episodes: expected int"):
        load_experiment_config("quick", ["drive_episodes=lots"])
    with pytest.raises(ConfigError, match="unknown config key colour"):
        load_experiment_config("quick", ["colour=red"])
    with pytest.raises(ConfigError, match="baseline"):
        load_experiment_config("quick", ["arms={rsd: {variant: rsd}}"])
    with pytest.raises(ConfigError, match="no config 'nope'"):
        load_experiment_config("nope")
    # a YAML arms mapping replaces the default arms
    assert list(load_experiment_config("quick").arms) == ["baseline", "rsd"]


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return load_experiment_config(
        "quick",
        [
            "seeds=[0]",
            "train.max_samples=16",
            "eval_max_samples=8",
            "drive_scenarios=[highway]",  # the closed loop dominates: one episode per run
            "workers=2",  # the two runs in a process pool (re-runs below: in this process)
        ],
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("experiment")
    exp = run_experiment(tiny, out, progress=False)
    return out, exp


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_experiment_runs_every_stage(finished, tiny):
    out, exp = finished
    # the runs' stages were computed in pool processes; this process records their markers
    assert exp.ran == [
        "generate",
        "annotate",
        "drive_expert",
        "videos_baseline",
        "videos_rsd",
        "aggregate",
        "report",
    ]
    assert len(exp.plan) == 2 + 2 * 4 + 3 + 2
    assert all((out / ".stages" / f"{name}.json").is_file() for name, _ in exp.plan)
    for f in ("results.json", "results.md", "experiment.yaml", "report/index.html"):
        assert (out / f).is_file()
    res = json.loads((out / "results.json").read_text())
    assert {a: r["seeds"] for a, r in res["arms"].items()} == {"baseline": [0], "rsd": [0]}
    for arm in ("baseline", "rsd"):
        run = out / "runs" / arm / "seed0"
        assert (run / "config.yaml").is_file()
        ev = json.loads((run / f"eval_{tiny.unseen_rig}.json").read_text())
        assert ev["variant"] == arm and ev["n_samples"] > 0
        assert (run / "drive" / "episodes.jsonl").read_text().count("\n") == 1
    ade = res["metrics"]["open_loop"]["ade"]
    assert ade["rsd"]["mean"] > 0 and ade["rsd"]["values"]["0"] == ade["rsd"]["mean"]
    assert ade["rsd"]["std"] is None  # one seed
    assert res["metrics"]["closed_loop_nominal"]["episodes"]["baseline"]["mean"] == 1
    assert len(res["targets"]) == 9
    assert res["pooled"]["rsd"]["nominal"]["episodes"] == 1  # the one highway episode
    assert "Closed-loop outcomes pooled over seeds" in (out / "results.md").read_text()
    t = res["time"]
    assert t["total"]["stages"] == len(exp.plan) - 2  # but the aggregate and report themselves
    assert set(t["by_kind"]) == {"generate", "annotate", "train", "eval", "drive", "videos"}
    # the expert's reference: the same one episode, a column of the closed-loop tables
    assert res["expert"]["closed_loop_nominal"]["episodes"] == 1
    assert "expert (ref.)" in (out / "results.md").read_text()
    for arm in ("baseline", "rsd"):
        sel = json.loads((out / "runs" / arm / "seed0" / "drive/videos/selection.json").read_text())
        assert len(sel["chosen"]) == 1  # one episode: a failure or a success
        assert sel["chosen"][0]["redriven_outcome"] == sel["chosen"][0]["outcome"]
    assert t["by_kind"]["train"]["cpu_s"] > 0 and t["total"]["wall_s"] > 0


def test_rerun_skips_every_stage(finished, tiny, capsys):
    out, _ = finished
    before = _mtimes(out)
    exp = run_experiment(tiny, out, progress=False)
    printed = capsys.readouterr().out
    assert exp.ran == []
    assert _mtimes(out) == before
    assert "| ADE (m) |" in printed and "s CPU" in printed


def test_dry_run_and_filters_run_nothing(finished, tiny, capsys):
    out, _ = finished
    before = _mtimes(out)
    exp = run_experiment(tiny, out, only=["rsd"], progress=False, dry_run=True)
    assert [n for n, _ in exp.plan] == [
        "generate",
        "annotate",
        "train_rsd_seed0",
        "eval_rsd_seed0_dense360",
        "eval_rsd_seed0_sparse_noisy",
        "drive_rsd_seed0",
        "drive_expert",
        "videos_rsd",
        "aggregate",
        "report",
    ]
    assert all(done for _, done in exp.plan) and exp.ran == []
    assert "10 stages, 0 to do" in capsys.readouterr().out
    assert _mtimes(out) == before
    cmd = exp.train_command("rsd", 0, nproc=4)
    assert cmd.startswith("torchrun --nproc_per_node=4 -m rsd.cli train --data ")
    assert cmd.endswith("variant=rsd seed=0") and "model.backbone.channels=16" in cmd
    with pytest.raises(ConfigError, match="--only"):
        run_experiment(tiny, out, only=["nope"], dry_run=True)
    with pytest.raises(ConfigError, match="--seeds"):
        run_experiment(tiny, out, seeds=[7], dry_run=True)


def test_a_deleted_drive_alone_is_redone(finished, tiny):
    import dataclasses

    out, _ = finished
    metrics = out / "runs" / "rsd" / "seed0" / "drive" / "metrics.json"
    metrics.unlink()
    exp = run_experiment(dataclasses.replace(tiny, workers=1), out, progress=False)
    assert exp.ran == ["drive_rsd_seed0", "aggregate", "report"]  # they follow their inputs
    assert metrics.is_file()


def test_another_config_in_the_same_directory_is_refused(finished, tiny):
    import dataclasses

    out, _ = finished
    with pytest.raises(ConfigError, match="another config"):
        run_experiment(dataclasses.replace(tiny, drive_episodes=2), out, dry_run=False)
    # workers do not change any result: accepted (and nothing is recomputed)
    exp = run_experiment(dataclasses.replace(tiny, workers=1), out, progress=False)
    assert exp.ran == []


def test_a_directory_named_like_a_builtin_config_does_not_shadow_it(tmp_path, monkeypatch):
    """`rsd demo` writes `demo/` in the working directory by default: a second `rsd demo`
    there must still find the built-in config `demo`, not try to read the directory."""
    from rsd.pipeline.experiment_config import config_path, load_experiment_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert config_path("demo").name == "demo.yaml" and config_path("demo").is_file()
    assert load_experiment_config("demo").seeds == (0,)


def test_every_builtin_config_loads_into_valid_train_configs():
    """A typo in a shipped config (an unknown key, a bad arm override) fails here, not an hour
    into someone's run."""
    from rsd.pipeline.experiment_config import builtin_configs

    names = builtin_configs()
    assert {"default", "demo", "quick", "driver", "data60"} <= set(names)
    for name in names:
        cfg = load_experiment_config(name)
        for arm in cfg.arms:
            tc = cfg.train_config(arm, cfg.seeds[0])
            assert tc.model.backbone.horizon == 6
    driver = load_experiment_config("driver")
    assert driver.train_config("baseline", 0).model.backbone.n_modes == 1
    assert driver.drive_seed == 10_000 and driver.drive_episodes >= 20 and len(driver.seeds) >= 3
