"""An agent whose velocity cannot be computed (a lone annotation) is marked unknown, and the
loss, detection's AVE and the VLM prompt leave the made-up 0 out."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.data.targets import agent_targets
from rsd.datasets import open_source
from rsd.datasets.nuscenes import NuScenesReader
from rsd.geometry import BEVGrid
from rsd.losses.perception import detection_losses, detection_targets
from rsd.metrics.detection import cumulative_mean, detection_metrics, gts_from_targets
from rsd.teacher.prompt import object_line
from tests.datasets.nuscenes_fixture import write_fixture
from tests.datasets.test_bench2drive import _box, write_clip


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> NuScenesReader:
    root = tmp_path_factory.mktemp("nuscenes")
    write_fixture(root)
    return NuScenesReader(root)


def test_lone_nuscenes_annotation_has_unknown_velocity(reader) -> None:
    frame = reader[reader.index_of("s0_05")]  # car_once is annotated in this sample only
    by_source = {a.source_id: a for a in frame.agents}
    lone = by_source["inst_car_once_0"]
    assert not lone.velocity_valid and (lone.vx, lone.vy) == (0.0, 0.0)
    others = [a for a in frame.agents if a is not lone]
    assert others and all(a.velocity_valid for a in others)
    assert by_source["inst_car_moving_0"].speed == pytest.approx(10.0, abs=0.05)
    t = agent_targets(frame, BEVGrid())
    ids = sorted(frame.agents, key=lambda a: a.id)
    assert t["agent_vel_valid"].tolist() == [a is not lone for a in ids]


def test_lone_bench2drive_walker_has_unknown_velocity(tmp_path) -> None:
    clip = write_clip(tmp_path)
    path = clip / "anno" / "00005.json.gz"
    with gzip.open(path, "rt") as f:
        anno = json.load(f)
    pose = np.eye(4)
    pose[:3, 3] = [104.0, 230.0, 0.9]
    anno["bounding_boxes"].append(_box("walker", "12", pose, (0.3, 0.3, 0.9), speed=0.0))
    with gzip.open(path, "wt") as f:
        json.dump(anno, f)
    frame = open_source(f"bench2drive:{tmp_path}")[1]
    by_source = {a.source_id: a for a in frame.agents}
    assert not by_source["12"].velocity_valid and by_source["12"].speed == 0.0
    assert by_source["9"].velocity_valid and by_source["7"].velocity_valid  # tracked: known


def _targets(frames) -> dict[str, torch.Tensor]:
    from rsd.data.dataset import collate

    as_torch = lambda f: {k: torch.from_numpy(v) for k, v in agent_targets(f, BEVGrid()).items()}  # noqa: E731
    samples = [{"features": {}, "targets": as_torch(f)} for f in frames]
    for i, s in enumerate(samples):
        s["frame_id"], s["index"] = str(i), torch.tensor(i)
    return collate(samples)["targets"]


def test_unknown_velocity_is_left_out_of_the_loss_and_of_ave() -> None:
    a = synthetic_agent(1, 10.0, 0.0, vx=3.0)
    b = synthetic_agent(2, 20.0, 4.0, vx=0.0)
    b.velocity_valid = False
    targets = _targets([synthetic_frame([a, b])])
    # loss: the head predicts 4 m/s everywhere; only a's error (1 m/s) counts
    enc = detection_targets(targets, BEVGrid(), stride=4, n_classes=3)
    assert enc["vel_mask"].tolist() == [[True, False]] and enc["mask"].all()
    hf, wf = BEVGrid().height // 4, BEVGrid().width // 4
    outputs = {"det_vel": torch.zeros(1, 2, hf, wf)}
    outputs["det_vel"][:, 0] = 4.0
    assert detection_losses(outputs, enc)["det_vel"].item() == pytest.approx(1.0)
    # AVE: perfect positions, velocities off by 1 (a) and 9 (b): b's unknown truth is left out
    gts = gts_from_targets(targets)
    assert np.isnan(gts[0]["boxes"][1, 6:8]).all() and gts[0]["boxes"][0, 6] == 3.0
    boxes = targets["agent_boxes"][0].double().numpy().copy()
    boxes[:, 6] = [4.0, 9.0]
    preds = [{"boxes": boxes, "scores": np.array([0.9, 0.8]), "classes": np.zeros(2, int)}]
    for convention in ("nuscenes", "rsd"):
        out = detection_metrics(preds, gts, ("car",), convention=convention)
        assert out["AVE/car"] == pytest.approx(1.0), convention
        assert out["ATE/car"] == pytest.approx(0.0, abs=1e-9)


def test_cumulative_mean_skips_nan_like_the_devkit() -> None:
    np.testing.assert_allclose(cumulative_mean(np.array([np.nan, 2.0, np.nan, 4.0])), [0, 2, 2, 3])
    np.testing.assert_array_equal(cumulative_mean(np.array([np.nan, np.nan])), [1.0, 1.0])
    x = np.array([0.3, 1.7, 2.2])
    assert cumulative_mean(x).tobytes() == (np.cumsum(x) / np.arange(1, 4)).tobytes()


def test_prompt_says_unknown_instead_of_zero() -> None:
    a = synthetic_agent(4, 12.0, 3.0, vx=0.0)
    assert "unknown" not in object_line(a, 8.0)
    a.velocity_valid = False
    line = object_line(a, 8.0)
    assert line.split(" | ")[4:7] == ["unknown"] * 3 and "-8.0" not in line
