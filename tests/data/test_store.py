"""Shard store: exact round trips, corruption detection, FrameStore indexing."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import time

import numpy as np
import pytest

from rsd import scene
from rsd.config import ConfigError
from rsd.data.store import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    STORED_FIELDS,
    UNSTORED_FIELDS,
    CorruptShardError,
    FrameStore,
    encode_frames,
    prepare_directory,
    read_manifest,
    read_shard,
    remove_stale_temps,
    shard_bytes,
    shard_name,
    verify,
    write_manifest,
    write_shard,
)
from tests.data.frames import assert_frames_equal, fake_record_episode, make_frame


def _episode(scenario: str = "cut_in", seed: int = 3) -> list[scene.Frame]:
    rng = np.random.default_rng(0)
    frames = [
        make_frame(scenario, seed, 40, rng),
        make_frame(scenario, seed, 45, rng, n_agents=0, n_lanes=0),
    ]
    frames.append(make_frame(scenario, seed, 50, rng, n_agents=2, n_lanes=3))
    return frames


def test_stored_fields_cover_the_data_model() -> None:
    # a field added to rsd.scene but not to the shard format would silently be lost
    for cls in (scene.Frame, scene.EgoState, scene.AgentState, scene.LaneGeometry):
        unstored = set(UNSTORED_FIELDS.get(cls.__name__, ()))
        stored = set(STORED_FIELDS[cls.__name__])
        assert {f.name for f in dataclasses.fields(cls)} == stored | unstored
        assert not stored & unstored


def test_round_trip_is_exact(tmp_path) -> None:
    frames = _episode()
    assert frames[0].agents[1].lane_relation is None and frames[0].lanes[0].relation is None
    assert frames[1].agents == [] and frames[1].lanes == [] and frames[1].events
    path = tmp_path / shard_name("cut_in", 3)
    entry = write_shard(path, frames, scenario="cut_in", seed=3, outcome={"success": True})
    back = read_shard(path)
    assert len(back) == 3
    for a, b in zip(frames, back, strict=True):
        assert_frames_equal(a, b)
    assert isinstance(back[0].skill, scene.SkillGroup)
    assert isinstance(back[0].agents[0].cls, scene.AgentClass)
    assert isinstance(back[0].lanes[1].left_line, scene.LineKind)
    assert entry["frame_ids"] == [f.frame_id for f in frames]
    assert entry["keyframes"] == 3 and entry["bytes"] == path.stat().st_size
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_float64_scalars_survive_and_arrays_keep_float32(tmp_path) -> None:
    frames = _episode()
    frames[0].ego.speed = 1 / 3  # not representable in float32
    frames[0].agents[0].x = np.float32(2.5)  # numpy scalars come back as Python floats
    path = tmp_path / "s.npz"
    write_shard(path, frames, scenario="cut_in", seed=3)
    back = read_shard(path)
    assert back[0].ego.speed == 1 / 3
    assert back[0].agents[0].x == 2.5 and type(back[0].agents[0].x) is float
    assert back[0].ego.past.dtype == np.float32 and back[0].lanes[1].centre.dtype == np.float32


def test_empty_episode_round_trips(tmp_path) -> None:
    path = tmp_path / "e.npz"
    entry = write_shard(path, [], scenario="x", seed=1, outcome={"crashed": True})
    assert read_shard(path) == [] and entry["keyframes"] == 0


def test_bytes_are_deterministic() -> None:
    meta = {"scenario": "cut_in", "seed": 3}
    assert shard_bytes(_episode(), meta) == shard_bytes(_episode(), meta)


def test_truncated_shard_raises_naming_the_file(tmp_path) -> None:
    path = tmp_path / "cut_in-00003.npz"
    write_shard(path, _episode(), scenario="cut_in", seed=3)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptShardError, match="cut_in-00003.npz"):
            read_shard(path)


def _dataset(tmp_path, episodes):
    entries = []
    for scen, seed in episodes:
        ep = fake_record_episode(scen, seed)
        entries.append(
            write_shard(
                tmp_path / shard_name(scen, seed),
                ep.frames,
                scenario=scen,
                seed=seed,
                outcome=ep.outcome,
            )
        )
    write_manifest(
        tmp_path, {"schema_version": SCHEMA_VERSION, "complete": True, "shards": entries}
    )
    return entries


def test_flipped_byte_is_caught_by_verify(tmp_path) -> None:
    entries = _dataset(tmp_path, [("a", 0), ("b", 1), ("a", 1)])
    assert verify(tmp_path, decode=True) == 3
    assert entries[1]["keyframes"] == 5
    path = tmp_path / entries[1]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=entries[1]["file"]):
        verify(tmp_path)
    store = FrameStore(tmp_path)
    with pytest.raises(CorruptShardError, match=entries[1]["file"]):
        store[store.index_of(entries[1]["frame_ids"][0])]


def test_frame_store_indexing(tmp_path) -> None:
    episodes = [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("c", 7), ("c", 8)]
    entries = _dataset(tmp_path, episodes)
    expected = [f for s, e in episodes for f in fake_record_episode(s, e).frames]
    # empty shards in the middle and at the end exercise the offsets
    assert [e["keyframes"] for e in entries] == [3, 0, 1, 5, 0, 4]
    store = FrameStore(tmp_path / MANIFEST_NAME, cache_shards=2)
    assert len(store) == len(expected)
    assert store.frame_ids == tuple(f.frame_id for f in expected)
    for i in [0, len(expected) - 1, 3, 1, len(expected) // 2]:
        assert_frames_equal(store[i], expected[i])
        assert store.index_of(expected[i].frame_id) == i
    assert_frames_equal(store[-1], expected[-1])
    assert [f.frame_id for f in store[2:5]] == [f.frame_id for f in expected[2:5]]
    assert [f.frame_id for f in store] == list(store.frame_ids)
    assert len(store._cache) <= 2
    assert expected[0].frame_id in store and "nope" not in store
    with pytest.raises(IndexError):
        store[len(expected)]
    with pytest.raises(KeyError, match="nope"):
        store.index_of("nope")
    clone = pickle.loads(pickle.dumps(store))  # DataLoader workers get a copy
    assert not clone._cache and clone[3].frame_id == expected[3].frame_id


def test_duplicate_frame_ids_are_refused(tmp_path) -> None:
    entries = _dataset(tmp_path, [("a", 0), ("a", 1)])
    entries = [e for e in entries if e["keyframes"]]
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    manifest["shards"] = entries + entries[:1]
    write_manifest(tmp_path, manifest)
    with pytest.raises(ValueError, match="more than once"):
        FrameStore(tmp_path)


def test_prepare_directory_guards_other_datasets(tmp_path) -> None:
    header = {"config": {"seed": 1, "episodes": 2}}
    assert prepare_directory(tmp_path / "new", header) == {}
    _dataset(tmp_path, [("a", 0), ("a", 1)])
    manifest = read_manifest(tmp_path)
    write_manifest(tmp_path, {**manifest, **header})
    assert sorted(prepare_directory(tmp_path, header)) == ["a-00000.npz", "a-00001.npz"]
    other = {"config": {"seed": 1, "episodes": 3}}
    with pytest.raises(ConfigError, match=r"differs in: episodes\)"):
        prepare_directory(tmp_path, other)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # refused: nothing deleted
    (tmp_path / "generate.yaml").write_text("seed: 1\n")
    assert prepare_directory(tmp_path, other, force=True, extra_files=["generate.yaml"]) == {}
    assert [p.name for p in tmp_path.iterdir()] == ["new"]  # only what was not the dataset's


def test_prepare_directory_refuses_shards_without_manifest(tmp_path) -> None:
    write_shard(tmp_path / "a-00000.npz", [], scenario="a", seed=0)
    with pytest.raises(ConfigError, match="no manifest"):
        prepare_directory(tmp_path, {"config": {}})


def test_remove_stale_temps_spares_other_writers(tmp_path) -> None:
    names = [".a-00000.npz.k2j_x.tmp", ".a-00001.npz.p9q.tmp", f".{MANIFEST_NAME}.zz1.tmp"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    remove_stale_temps(tmp_path, {"a-00000.npz"})  # another process may own a-00001
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    os.utime(tmp_path / names[2], (time.time() - 120, time.time() - 120))
    remove_stale_temps(tmp_path, {"a-00000.npz"})
    assert [p.name for p in tmp_path.iterdir()] == [names[1]]
    remove_stale_temps(tmp_path)
    assert not list(tmp_path.iterdir())


def test_inconsistent_or_incomplete_columns_are_corrupt(tmp_path) -> None:
    frames = _episode()
    cols = encode_frames(frames, {"scenario": "cut_in", "seed": 3})
    short = {**cols, "agent_x": cols["agent_x"][:-1]}  # one agent lost its x
    np.savez(tmp_path / "short.npz", **short)
    with pytest.raises(CorruptShardError, match=r"short\.npz.*agent_x"):
        read_shard(tmp_path / "short.npz")
    partial = {k: v for k, v in cols.items() if k != "lane_width"}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(CorruptShardError, match=r"partial\.npz.*lane_width"):
        read_shard(tmp_path / "partial.npz")
    np.savez(tmp_path / "whole.npz", **cols)  # the same columns, written plainly, do read
    assert [f.frame_id for f in read_shard(tmp_path / "whole.npz")] == [f.frame_id for f in frames]
