"""``rsd demo``: the built-in ``demo`` / ``demo_quick`` experiment configs, end to end on a tiny
version, then resumed: nothing is computed twice."""

from __future__ import annotations

import json

import pytest

from rsd.cli import main
from rsd.commands.demo import SUMMARY
from rsd.config import ConfigError
from rsd.pipeline.experiment import run_experiment
from rsd.pipeline.experiment_config import load_experiment_config
from rsd.pipeline.stages import STAGE_DIR

# --quick, cut further: two scenarios, a handful of samples
TINY = [
    "scenarios=[highway,cut_in]",
    "train.max_samples=16",
    "eval_max_samples=8",
    "train.batch_size=8",
    "drive_scenarios=[cut_in]",  # closed loop dominates the time: one episode per model
    "workers=1",  # no process pools: their start-up costs more than these few episodes
]
STAGES = 2 + 2 * 4 + 3 + 2  # generate, annotate; per arm train, 2 evals, drive;
# drive_expert, videos per arm; aggregate, report


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny():
    return load_experiment_config("demo_quick", TINY)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("demo")
    return out, run_experiment(tiny, out, progress=False, summary=SUMMARY)


def test_demo_configs_are_the_default_recipe_cut_down():
    demo, quick, default = (load_experiment_config(n) for n in ("demo", "demo_quick", "default"))
    assert list(demo.arms) == list(quick.arms) == ["baseline", "rsd"]
    assert demo.seeds == quick.seeds == (0,) and demo.parallel_runs == quick.parallel_runs == 1
    # demo: the default experiment's small model and schedule, 10 epochs on 6 episodes
    assert demo.train["model"] == default.train["model"]
    assert demo.train["lr"] == default.train["lr"] == 2e-3 and demo.train["epochs"] == 10
    assert (demo.episodes_per_scenario, demo.drive_episodes) == (6, 3)
    # demo_quick: the tiny model of 'quick' on every scenario
    assert quick.train["model"]["backbone"]["stem_channels"] == 8
    assert quick.scenarios == ("all",) and quick.drive_scenarios == ()
    assert (quick.train["max_samples"], quick.train["batch_size"], quick.data_seed) == (64, 16, 3)


def test_base_configs_that_loop_are_refused(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {b}\n")
    b.write_text(f"base: {a}\n")
    with pytest.raises(ConfigError, match="loop"):
        load_experiment_config(a)


def test_demo_runs_every_stage_and_writes_the_report(finished, tiny):
    out, exp = finished
    assert exp.ran == list(exp.seconds)  # the first call computed every stage
    assert len(exp.ran) == STAGES
    assert (out / "report" / "index.html").is_file()
    for arm in ("baseline", "rsd"):
        run = out / "runs" / arm / "seed0"
        assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
        for rig in (tiny.rig, tiny.unseen_rig):
            ev = json.loads((run / f"eval_{rig}.json").read_text())
            assert ev["variant"] == arm and ev["rig"] == rig and ev["n_samples"] > 0
        drive = json.loads((run / "drive" / "metrics.json").read_text())
        assert drive["overall"]["episodes"] == 1
    res = json.loads((out / "results.json").read_text())["metrics"]
    assert res["open_loop"]["ade"]["baseline"]["mean"] > 0
    assert res["open_loop"]["ade"]["rsd"]["mean"] > 0
    assert res["closed_loop_overall"]["driving_score"]["rsd"]["mean"] >= 0
    # the expert's reference on the same episode, one GIF per arm (its one episode) embedded
    expert = json.loads((out / "expert" / "drive" / "metrics.json").read_text())
    assert expert["settings"]["planner"] == "expert" and expert["overall"]["episodes"] == 1
    html = (out / "report" / "index.html").read_text()
    assert "expert (reference)" in html and "the same scenario episodes as the runs" in html
    assert html.count('src="data:image/gif') == 2


def test_rerun_skips_every_stage(finished, tiny, capsys):
    out, _ = finished
    before = _mtimes(out)
    exp = run_experiment(tiny, out, progress=False, summary=SUMMARY)
    printed = capsys.readouterr().out
    assert exp.ran == []
    assert _mtimes(out) == before  # nothing rewritten: no stage recomputed
    assert printed.count("skipped") == STAGES
    assert "baseline" in printed and "Closed loop, all scenarios" in printed
    assert "Open loop, unseen rig" in printed and "| ADE (m) |" in printed
    assert f"report: {out / 'report' / 'index.html'}" in printed


def test_an_interrupted_stage_alone_is_redone(finished, tiny):
    out, _ = finished
    marker = out / STAGE_DIR / "eval_rsd_seed0_sparse_noisy.json"
    marker.unlink()  # as if killed before the stage finished
    exp = run_experiment(tiny, out, progress=False)
    assert exp.ran == ["eval_rsd_seed0_sparse_noisy", "aggregate", "report"]  # + what reads it
    assert marker.is_file()


def test_another_config_in_the_same_directory_is_refused(finished):
    out, _ = finished
    with pytest.raises(ConfigError, match="another config"):
        run_experiment(load_experiment_config("demo_quick", [*TINY, "train.epochs=2"]), out)


def test_config_checks():
    with pytest.raises(ConfigError, match="unseen_rig"):
        load_experiment_config("demo", ["unseen_rig=dense360"])
    with pytest.raises(ConfigError, match="drive_episodes"):
        load_experiment_config("demo", ["drive_episodes=0"])


def test_the_command_runs_the_builtin_config(tmp_path, capsys, monkeypatch):
    seen = {}
    fake = lambda cfg, out, **kw: seen.update(cfg=cfg, out=out)  # noqa: E731
    monkeypatch.setattr("rsd.pipeline.experiment.run_experiment", fake)
    assert main(["demo", "--quick", "--out", str(tmp_path), "--workers", "1"]) == 0
    assert seen["cfg"] == load_experiment_config("demo_quick", ["workers=1"])
    assert seen["out"] == tmp_path
