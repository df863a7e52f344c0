"""A tiny DAgger round of an experiment: labelled student frames in the store, resumed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rsd.data.store import FrameStore, read_manifest
from rsd.pipeline.dagger import dagger_stages, round_jobs, shard_file, student_dir
from rsd.pipeline.experiment import Experiment
from rsd.pipeline.experiment_config import load_experiment_config
from rsd.pipeline.stages import Stage
from rsd.policy import PlannerSpec
from rsd.scene import FUTURE_STEPS
from rsd.sim.controller import ego_pose
from rsd.sim.convert import EgoTransform
from rsd.sim.episode import make_episode
from rsd.sim.recorder import KEY_EVERY
from rsd.sim.relabel import StudentRollout


@pytest.fixture(scope="module")
def cfg():
    return load_experiment_config(
        "quick",
        [
            "scenarios=[cut_in]",
            "episodes_per_scenario=1",
            "seeds=[0]",
            "train.max_samples=16",
            "dagger_rounds=1",
            "dagger_episodes=1",
            "dagger_beta=0.5",
            "workers=1",
        ],
    )


def generate_then(cfg, out, stages) -> Experiment:
    """An experiment in ``out`` with its data generated, then the stages that
    ``stages(cfg, layout, force, say)`` gives (DAgger's or DART's) run."""
    exp = Experiment(cfg, out, progress=False)
    exp.run_stage(Stage("generate", exp.generate, lambda: (out / "data/manifest.json").exists()))
    for stage in stages(cfg, exp.layout, False, exp.say):
        exp.run_stage(stage)
    return exp


def _data_and_dagger(cfg, out) -> Experiment:
    return generate_then(cfg, out, dagger_stages)


@pytest.fixture(scope="module")
def done(tmp_path_factory, cfg):
    out = tmp_path_factory.mktemp("dagger")
    return out, _data_and_dagger(cfg, out)


def test_round_adds_labelled_frames_with_their_origin(done, cfg):
    out, exp = done
    assert exp.ran == ["generate", "dagger1_train", "dagger1_collect"]
    (scenario, seed) = round_jobs(cfg, 1)[0]
    assert (scenario, seed) == ("cut_in", 3)  # the dataset's training seed, not a val seed
    entry = {e["file"]: e for e in read_manifest(out / "data")["shards"]}[
        shard_file(1, "cut_in", 3)
    ]
    assert entry["origin"]["kind"] == "dagger" and entry["origin"]["round"] == 1
    assert entry["origin"]["expert_prob"] == 0.5
    store = FrameStore(out / "data")
    ids = [i for i in store.frame_ids if "~dagger1-" in i]
    assert len(ids) == entry["keyframes"] > 0
    assert len(store) > len(ids)  # the expert's own episode is still there


def test_labels_are_a_fresh_expert_rollout_from_the_visited_state(done):
    """Re-drive the student to a labelled keyframe, copy the state, let the expert drive the
    copy 3 s: its poses, seen from the ego then, are the stored future."""
    out, _ = done
    store = FrameStore(out / "data")
    frame = store[store.index_of(next(i for i in store.frame_ids if "~dagger1-" in i))]
    student = str(student_dir(Experiment(load_experiment_config("quick"), out).layout, 1))
    ep = make_episode("cut_in", 3)
    run = StudentRollout(ep, PlannerSpec("model", student).factory()(ep), 0.5, 1, "dagger1")
    while ep.step_count < frame.step:
        run.step()
    cp, cx = copy.deepcopy((ep, run.expert))
    tf = EgoTransform(*ego_pose(cp.ego))
    poses = []
    for _ in range(FUTURE_STEPS):
        for _ in range(KEY_EVERY):
            cp.step(*cx.act())
        poses.append(tf.poses(ego_pose(cp.ego)[None])[0])
    np.testing.assert_allclose(frame.ego.future, np.array(poses), atol=1e-4)


def test_rerun_skips_the_done_round(done, cfg):
    out, _ = done
    path = out / "data" / shard_file(1, "cut_in", 3)
    before = path.stat().st_mtime_ns
    again = _data_and_dagger(cfg, out)
    assert again.ran == []
    assert path.stat().st_mtime_ns == before
