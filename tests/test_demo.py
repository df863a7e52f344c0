"""``rsd demo`` end to end on a tiny config, then resumed: nothing is computed twice."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rsd.config import ConfigError
from rsd.demo import QUICK, STAGE_DIR, DemoConfig, run_demo

# --quick, cut further: two scenarios, a handful of samples
TINY = dataclasses.replace(
    QUICK,
    scenarios=("highway", "cut_in"),
    max_samples=16,
    eval_max_samples=8,
    batch_size=8,
    drive_scenarios=("cut_in",),  # closed loop dominates the time: one episode per model
    workers=1,  # no process pools: their start-up costs more than these few episodes
)


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo = run_demo(TINY, out, progress=False)
    return out, demo


def test_demo_runs_every_stage_and_writes_the_report(finished, capsys):
    out, demo = finished
    assert demo.ran == list(demo.seconds)  # the first call computed every stage
    assert len(demo.ran) == 11
    assert (out / "report" / "index.html").is_file()
    for v in ("baseline", "rsd"):
        run = out / "runs" / v
        assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
        for rig in (TINY.rig, TINY.unseen_rig):
            ev = json.loads((run / f"eval_{rig}.json").read_text())
            assert ev["variant"] == v and ev["rig"] == rig and ev["n_samples"] > 0
        drive = json.loads((run / "drive" / "metrics.json").read_text())
        assert drive["overall"]["episodes"] == 1
    rows = demo.headline()
    assert rows["ade"]["baseline"] > 0 and rows["ade"]["rsd"] > 0
    assert rows["closed_loop_driving_score"]["rsd"] >= 0


def test_rerun_skips_every_stage(finished, capsys):
    out, _ = finished
    before = _mtimes(out)
    demo = run_demo(TINY, out, progress=False)
    printed = capsys.readouterr().out
    assert demo.ran == []
    assert _mtimes(out) == before  # nothing rewritten: no stage recomputed
    assert printed.count("skipped") == 11
    assert "baseline" in printed and "closed-loop DS" in printed and "ADE sparse_noisy" in printed
    assert f"report: {out / 'report' / 'index.html'}" in printed


def test_an_interrupted_stage_alone_is_redone(finished):
    out, _ = finished
    marker = out / STAGE_DIR / "eval_rsd_sparse_noisy.json"
    marker.unlink()  # as if killed before the stage finished
    demo = run_demo(TINY, out, progress=False)
    assert demo.ran == ["eval_rsd_sparse_noisy"]
    assert marker.is_file()


def test_another_config_in_the_same_directory_is_refused(finished):
    out, _ = finished
    with pytest.raises(ConfigError, match="another config"):
        run_demo(dataclasses.replace(TINY, epochs=2), out, progress=False)


def test_config_checks():
    with pytest.raises(ConfigError, match="unseen_rig"):
        DemoConfig(unseen_rig="dense360")
    with pytest.raises(ConfigError, match="epochs"):
        DemoConfig(epochs=0)
