"""``rsd generate``: job plan, shards, resume after kill -9, config guard, failures."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsd.commands.generate import add_arguments, config_from_args
from rsd.config import ConfigError, dump_yaml
from rsd.data.store import MANIFEST_NAME, CorruptShardError, FrameStore, read_manifest, verify
from rsd.pipeline.generate import CONFIG_NAME, GenerateConfig, generate, plan, resolve
from tests.data.frames import assert_frames_equal, fake_record_episode

ROOT = Path(__file__).resolve().parents[1]
FAKE = "tests.data.frames:fake_record_episode"
CFG = GenerateConfig(scenarios=("a", "b", "c"), episodes_per_scenario=4, seed=10, recorder=FAKE)


def _run(out: Path, cfg: GenerateConfig = CFG, **kw):
    return generate(cfg, out, progress=False, **kw)


def _shas(out: Path) -> dict[str, str]:
    return {e["file"]: e["sha256"] for e in read_manifest(out)["shards"]}


def test_plan_is_episode_major_and_deterministic() -> None:
    cfg, pairs = resolve(CFG, validate=False)
    jobs = plan(cfg, pairs)
    assert [(j.scenario, j.seed) for j in jobs[:4]] == [("a", 10), ("b", 10), ("c", 10), ("a", 11)]
    assert [j.index for j in jobs] == list(range(12)) and jobs == plan(cfg, pairs)
    assert len({j.file for j in jobs}) == 12


def test_full_run_writes_manifest_config_and_every_frame(tmp_path) -> None:
    summary = _run(tmp_path)
    m = read_manifest(tmp_path)
    assert summary.complete and m["complete"] and m["planned_jobs"] == 12
    assert [e["job"] for e in m["shards"]] == list(range(12))
    assert m["config"]["scenarios"] == ["a", "b", "c"] and m["config"]["seed"] == 10
    assert (tmp_path / CONFIG_NAME).read_text() == dump_yaml(CFG)
    store = FrameStore(tmp_path)
    assert len(store) == m["totals"]["keyframes"] == summary.keyframes_total > 0
    assert m["totals"]["outcomes"]["success"] + m["totals"]["outcomes"]["crashed"] == 12
    assert verify(tmp_path, decode=True) == 12


def test_two_shards_make_exactly_the_full_run(tmp_path) -> None:
    full, split = tmp_path / "full", tmp_path / "split"
    _run(full)
    first = _run(split, shard=(0, 2))
    m = read_manifest(split)
    assert not first.complete and not m["complete"]
    assert [e["job"] for e in m["shards"]] == [0, 2, 4, 6, 8, 10]
    second = _run(split, shard=(1, 2))
    assert second.complete and second.skipped == 0 and second.recorded == 6
    assert _shas(split) == _shas(full)  # same files, byte for byte
    assert FrameStore(split).frame_ids == FrameStore(full).frame_ids


def test_resume_records_only_what_is_missing_or_broken(tmp_path) -> None:
    _run(tmp_path)
    before = _shas(tmp_path)
    again = _run(tmp_path)
    assert again.recorded == 0 and again.skipped == 12
    (tmp_path / "b-00011.npz").unlink()
    data = (tmp_path / "a-00012.npz").read_bytes()
    (tmp_path / "a-00012.npz").write_bytes(data[: len(data) // 2])
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    manifest["shards"] = manifest["shards"][:3]  # as if killed before the manifest update
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    stale = tmp_path / ".c-00013.npz.abc123.tmp"
    stale.write_bytes(b"half a shard")
    third = _run(tmp_path)
    assert third.recorded == 2 and third.complete
    assert not stale.exists() and _shas(tmp_path) == before


def test_resume_checks_checksums_and_records_again_what_differs(tmp_path, capsys) -> None:
    _run(tmp_path)
    before = _shas(tmp_path)
    # a shard with flipped bytes of the same size (in the zip's member timestamps, so that
    # it still decodes: only the checksum can tell)
    path = tmp_path / "a-00010.npz"
    data = bytearray(path.read_bytes())
    i = data.index(b"PK\x01\x02") + 12  # central directory: modification date
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert len(data) == read_manifest(tmp_path)["shards"][0]["bytes"]
    # and a manifest whose sha256 of another shard was edited
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    edited = manifest["shards"][5]
    edited["sha256"] = "0" * 64
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CorruptShardError, match="a-00010.npz"):
        verify(tmp_path)
    again = _run(tmp_path)
    err = capsys.readouterr().err
    assert "a-00010.npz" in err and edited["file"] in err and "recording it again" in err
    assert again.recorded == 2 and again.skipped == 10 and again.complete
    assert _shas(tmp_path) == before and verify(tmp_path, decode=True) == 12


def test_workers_pool_gives_the_same_files(tmp_path) -> None:
    _run(tmp_path / "one")
    _run(tmp_path / "two", workers=2)
    assert _shas(tmp_path / "two") == _shas(tmp_path / "one")


def test_other_config_is_refused_unless_forced(tmp_path) -> None:
    _run(tmp_path)
    other = GenerateConfig(
        scenarios=("a", "b", "c"), episodes_per_scenario=2, seed=10, recorder=FAKE
    )
    with pytest.raises(ConfigError, match="episodes_per_scenario"):
        _run(tmp_path, other)
    assert read_manifest(tmp_path)["planned_jobs"] == 12  # untouched
    summary = _run(tmp_path, other, force=True)
    assert summary.complete and summary.planned == 6
    assert len(list(tmp_path.glob("*.npz"))) == 6


def test_failed_episodes_are_reported_and_retried(tmp_path, capsys) -> None:
    failing = GenerateConfig(
        scenarios=("a", "b"),
        episodes_per_scenario=4,
        seed=0,
        recorder="tests.data.frames:failing_record_episode",
    )
    summary = _run(tmp_path, failing)
    assert sorted((f["scenario"], f["seed"]) for f in summary.failed) == [
        ("a", 1),
        ("a", 3),
        ("b", 1),
        ("b", 3),
    ]
    m = read_manifest(tmp_path)
    assert not m["complete"] and len(m["shards"]) == 4 and len(m["failed"]) == 4
    assert "simulated failure of a/1" in summary.text()
    again = _run(tmp_path, failing)
    assert again.skipped == 4 and len(again.failed) == 4  # only the failed ones re-run


def test_recorder_frames_must_match_the_job(tmp_path) -> None:
    def wrong_seed(scenario, seed):
        return fake_record_episode(scenario, seed + 1)

    summary = _run(tmp_path, CFG, episode_fn=wrong_seed)
    # an episode with frames of another seed would collide with that seed's frame ids
    bad = {(s, e) for s in "abc" for e in range(10, 14) if fake_record_episode(s, e + 1).frames}
    assert 0 < len(bad) < 12
    assert {(f["scenario"], f["seed"]) for f in summary.failed} == bad
    assert all("for job" in f["error"] for f in summary.failed)
    assert len(read_manifest(tmp_path)["shards"]) == 12 - len(bad)


def test_all_expands_to_the_builtin_suite() -> None:
    from rsd.sim.spec import builtin_scenarios

    cfg, pairs = resolve(GenerateConfig(scenarios=("all",), recorder=FAKE), validate=False)
    assert cfg.scenarios == tuple(builtin_scenarios()) and len(pairs) == len(cfg.scenarios) > 0


def test_scenario_file_is_named_by_its_spec_and_guarded_by_its_hash(tmp_path) -> None:
    spec = tmp_path / "custom.yaml"
    spec.write_text("name: my_case\nskill: merging\nenv_id: highway-v0\nduration: 20\n")
    cfg = GenerateConfig(
        scenarios=("a",), scenario_files=(str(spec),), episodes_per_scenario=3, recorder=FAKE
    )
    out = tmp_path / "out"
    summary = _run(out, cfg)
    assert summary.complete and not summary.failed
    files = sorted(p.name for p in out.glob("my_case-*.npz"))
    assert files == ["my_case-00000.npz", "my_case-00001.npz", "my_case-00002.npz"]
    assert all(f.startswith(("a-", "my_case-")) for f in FrameStore(out).frame_ids)
    spec.write_text(spec.read_text().replace("duration: 20", "duration: 25"))
    with pytest.raises(ConfigError, match="scenario_files_sha256"):
        _run(out, cfg)


def test_cli_flags_override_config_file(tmp_path) -> None:
    (tmp_path / "g.yaml").write_text("episodes_per_scenario: 3\nseed: 5\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            str(tmp_path / "out"),
            "seed=7",
            "--config",
            str(tmp_path / "g.yaml"),
            "--scenarios",
            "cut_in,merge",
            "--shard",
            "1/3",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.scenarios, cfg.episodes_per_scenario, cfg.seed) == (("cut_in", "merge"), 3, 7)
    assert args.shard == (1, 3)
    args = parser.parse_args([str(tmp_path), "seed=7", "--scenario-file", "x.yaml", "--seed", "9"])
    cfg = config_from_args(args)
    assert (cfg.scenarios, cfg.scenario_files, cfg.seed) == ((), ("x.yaml",), 9)
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path), "--shard", "2/2"])


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path) -> None:
    cfg = GenerateConfig(
        scenarios=("a", "b", "c"),
        episodes_per_scenario=8,
        seed=0,
        recorder="tests.data.frames:slow_record_episode",
    )
    (tmp_path / "g.yaml").write_text(dump_yaml(cfg))
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "rsd.commands.generate",
        str(out),
        "--config",
        str(tmp_path / "g.yaml"),
        "--workers",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RSD_FAKE_DELAY": "0.15"}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.npz"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: parent and pool workers
    proc.wait()
    done = len(list(out.glob("*.npz")))
    assert 4 <= done < 24
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True).returncode == 0

    ref = tmp_path / "ref"
    _run(
        ref,
        GenerateConfig(scenarios=("a", "b", "c"), episodes_per_scenario=8, seed=0, recorder=FAKE),
    )
    killed, clean = FrameStore(out), FrameStore(ref)
    assert killed.manifest["complete"] and len(killed.manifest["shards"]) == 24
    assert killed.frame_ids == clean.frame_ids
    assert len(set(killed.frame_ids)) == len(killed)
    for a, b in zip(killed, clean, strict=True):
        assert_frames_equal(a, b)
    assert _shas(out) == _shas(ref)
    assert not list(out.glob(".*.tmp"))


def test_rerun_keeps_shards_added_after_generation(tmp_path) -> None:
    """A DAgger round adds shards with an origin (``add_shards``); generating again must keep
    them in the manifest (their files are still there) without counting them as planned jobs."""
    import dataclasses

    from rsd.data.shard import write_shard
    from rsd.data.store import add_shards
    from rsd.data.synthetic import random_frame

    _run(tmp_path)
    before = read_manifest(tmp_path)
    frames = [dataclasses.replace(random_frame(1, 3), frame_id="a~dagger1-10-0005")]
    entry = write_shard(tmp_path / "dagger1-a-10.npz", frames, scenario="a", seed=10)
    add_shards(tmp_path, [{**entry, "origin": {"kind": "dagger", "round": 1}}])
    again = _run(tmp_path)
    m = read_manifest(tmp_path)
    assert again.complete and m["complete"] and again.recorded == 0
    assert [e["file"] for e in m["shards"]][-1] == "dagger1-a-10.npz"
    assert m["totals"]["keyframes"] == before["totals"]["keyframes"] + 1
    assert len(FrameStore(tmp_path)) == m["totals"]["keyframes"]
