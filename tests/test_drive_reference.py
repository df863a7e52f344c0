"""The experiment's closed-loop references: which episodes get a GIF (the first failure and the
first success, deterministic), re-driving only those, and the expert's reference column."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rsd.pipeline.drive import (
    drive_to_dir,
    read_logs,
    record_videos,
    select_episodes,
    videos_done,
)
from rsd.pipeline.summary import reference_metrics
from rsd.policy import PlannerSpec
from rsd.report.tables import format_table
from rsd.sim.episode_log import EpisodeLog


def _log(scenario, seed, outcome):
    return EpisodeLog(scenario, "nominal", seed, "model", outcome, 100.0, 100.0, 100.0, True, 10.0)


def test_selection_is_the_first_failure_and_the_first_success():
    logs = [
        _log("cut_in", 10000, "success"),
        _log("cut_in", 10001, "vehicle_collision"),
        _log("merge", 10000, "offroad"),
        _log("merge", 10001, "success"),
    ]
    picked = [(k, lg.episode_id) for k, lg in select_episodes(logs)]
    assert picked == [("failure", "cut_in-10001"), ("success", "cut_in-10000")]
    assert select_episodes(list(reversed(logs)))[0][1].episode_id == "merge-10000"
    # "incomplete" is no success: it counts as a failure; no success at all: failure only
    only = select_episodes([_log("highway", 3, "incomplete"), _log("highway", 4, "timeout")])
    assert [(k, lg.seed) for k, lg in only] == [("failure", 3)]
    assert select_episodes([]) == []


@pytest.fixture(scope="module")
def expert_drive(tmp_path_factory):
    d = tmp_path_factory.mktemp("drive")
    drive_to_dir(d, ["highway"], 3, 10000, 1, PlannerSpec("expert"), None, False)
    return d


def test_only_the_chosen_episodes_are_redriven_with_video(expert_drive, tmp_path):
    d = tmp_path / "drive"
    d.mkdir()
    logs = read_logs(expert_drive / "episodes.jsonl")
    assert [lg.outcome for lg in logs] == ["success"] * 3  # the expert drives highway cleanly
    logs[1] = dataclasses.replace(logs[1], outcome="vehicle_collision")  # as if it had crashed
    (d / "episodes.jsonl").write_text("".join(lg.to_json() + "\n" for lg in logs))
    chosen = record_videos(d, ["highway"], PlannerSpec("expert"))
    assert [(c["kind"], c["episode"]) for c in chosen] == [
        ("failure", "highway-10001"),
        ("success", "highway-10000"),
    ]
    # the re-drive is the real one: the expert does not crash, and the selection says so
    assert [(c["outcome"], c["redriven_outcome"]) for c in chosen] == [
        ("vehicle_collision", "success"),
        ("success", "success"),
    ]
    gifs = sorted(p.name for p in (d / "videos").glob("*.gif"))
    assert gifs == ["failure-highway-10001.gif", "success-highway-10000.gif"]
    assert all((d / "videos" / g).read_bytes()[:6] == b"GIF89a" for g in gifs)
    assert videos_done(d)
    sel = json.loads((d / "videos" / "selection.json").read_text())
    assert sel["chosen"] == chosen
    (d / "episodes.jsonl").write_text("".join(lg.to_json() + "\n" for lg in logs[:2]))
    assert not videos_done(d)  # chosen from other episodes: to be redone


def test_expert_reference_column(expert_drive):
    ref = reference_metrics(read_logs(expert_drive / "episodes.jsonl"), ["cut_in"])
    assert set(ref) == {
        "closed_loop_long_tail",
        "closed_loop_nominal",
        "closed_loop_overall",
        "collision_per_scenario",
    }
    assert ref["closed_loop_overall"]["episodes"] == 3
    assert ref["closed_loop_overall"]["success_rate"] == 100.0  # %, like the arms' rates
    agg = {"closed_loop_overall": {"success_rate": {"baseline": {"mean": 40.0, "std": 5.0}}}}
    table = format_table(agg, "closed_loop_overall", ["baseline"], ref["closed_loop_overall"])
    assert table.splitlines()[0] == "| metric | baseline | expert (ref.) |"
    assert table.splitlines()[2] == "| SR (%) | 40.000 ± 5.000 | 100.000 |"
