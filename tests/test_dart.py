"""The DART stage of an experiment: noisy-expert rollouts as shards of the store, resumed."""

from __future__ import annotations

import pytest
import yaml

from rsd.config import ConfigError, dump_yaml, to_dict
from rsd.data.store import FrameStore, read_manifest
from rsd.pipeline.dagger import dart_jobs, dart_stages
from rsd.pipeline.experiment import Experiment
from rsd.pipeline.experiment_config import load_experiment_config
from tests.test_dagger import generate_then

OVERRIDES = ["scenarios=[cut_in]", "episodes_per_scenario=1", "seeds=[0]", "workers=1"]


@pytest.fixture(scope="module")
def cfg():
    return load_experiment_config("quick", [*OVERRIDES, "dart_episodes=1", "dart_noise.p=0.5"])


def _data_and_dart(cfg, out) -> Experiment:
    return generate_then(cfg, out, dart_stages)


@pytest.fixture(scope="module")
def done(tmp_path_factory, cfg):
    out = tmp_path_factory.mktemp("dart")
    return out, _data_and_dart(cfg, out)


def test_jobs_take_the_training_seeds_in_turn_then_a_new_noise_pass(tmp_path):
    """Seeds 3 (train), 4 (validation), 5 (train): three episodes per scenario drive 3, 5 and
    3 again with the noise of pass 2, each its own shard and frame-id tag."""
    c = load_experiment_config(
        "quick", ["scenarios=[cut_in]", "episodes_per_scenario=3", "dart_episodes=3"]
    )
    jobs = dart_jobs(c, tmp_path)
    assert [(j.seed, j.mix_seed, j.tag) for j in jobs] == [
        (3, 1, "dart1"),
        (5, 1, "dart1"),
        (3, 2, "dart2"),
    ]
    assert [j.path.split("/")[-1] for j in jobs] == [
        "dart1-cut_in-00003.npz",
        "dart1-cut_in-00005.npz",
        "dart2-cut_in-00003.npz",
    ]
    assert {j.planner.mix_seed for j in jobs} == {1, 2} and jobs[0].expert_prob == 0.0
    assert (
        dart_stages(load_experiment_config("quick"), Experiment(c, tmp_path).layout, 0, print) == []
    )


def test_noise_keys_are_checked():
    with pytest.raises(ConfigError, match="dart_noise.p"):
        load_experiment_config("quick", ["dart_noise.p=2"])
    with pytest.raises(ConfigError, match="dart_episodes"):
        load_experiment_config("quick", ["dart_episodes=-1"])
    with pytest.raises(ConfigError, match="unknown config key dart_noise.nope"):
        load_experiment_config("quick", ["dart_noise.nope=1"])


def test_stage_writes_shards_with_their_origin(done, cfg):
    out, exp = done
    assert exp.ran == ["generate", "dart_collect"]
    entry = {e["file"]: e for e in read_manifest(out / "data")["shards"]}["dart1-cut_in-00003.npz"]
    assert entry["origin"]["kind"] == "dart" and entry["origin"]["pass"] == 1
    assert entry["origin"]["noise"]["p"] == 0.5
    store = FrameStore(out / "data")
    ids = [i for i in store.frame_ids if "~dart1-" in i]
    assert len(ids) == entry["keyframes"] > 0
    assert len(store) > len(ids)  # the expert's own episode is still there


def test_rerun_does_nothing(done, cfg):
    out, _ = done
    path = out / "data" / "dart1-cut_in-00003.npz"
    before = path.stat().st_mtime_ns
    again = _data_and_dart(cfg, out)
    assert again.ran == []
    assert path.stat().st_mtime_ns == before


def test_a_directory_made_before_dart_stays_compatible(tmp_path, cfg):
    """A stored config without the DART keys computed no DART: the same config with them off
    is accepted; with DART on it is another config."""
    off = load_experiment_config("quick", OVERRIDES)
    stored = to_dict(off)
    del stored["dart_episodes"], stored["dart_noise"]
    text = yaml.safe_dump(stored)
    assert Experiment(off, tmp_path)._compatible(text)
    assert not Experiment(cfg, tmp_path)._compatible(text)
    assert not Experiment(off, tmp_path)._compatible(dump_yaml(cfg))
