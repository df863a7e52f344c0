"""Real-data frames through the model input: unknown values reach no model as NaN, and the
simulator's features are unchanged by the validity flag."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rsd.data.features import batch_of_one, build_features
from rsd.data.rigs import load_rig
from rsd.datasets.nuscenes import NuScenesReader
from rsd.geometry import EgoStatusField
from rsd.models import BackboneConfig, ModelConfig, build_model
from rsd.scene import AgentClass, lane_offset_known
from tests.datasets.nuscenes_fixture import write_fixture


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    write_fixture(root)  # no map expansion: no lanes, lane offset unknown
    return NuScenesReader(root)[2]


def test_unknown_lane_offset_is_zero_with_a_flag_and_the_model_output_is_finite(frame) -> None:
    assert not lane_offset_known(frame.ego) and np.isnan(frame.ego.lane_offset)
    rig = load_rig("dense360")
    feats = build_features(frame, rig)
    status, valid = feats["ego_status"], feats["ego_status_valid"]
    assert status[EgoStatusField.LANE_OFFSET] == 0.0
    assert valid[EgoStatusField.LANE_OFFSET] == 0.0 and valid.sum() == len(EgoStatusField) - 1
    for key, value in feats.items():
        assert np.isfinite(value).all(), key
    torch.manual_seed(0)
    cfg = ModelConfig(kind="vad", backbone=BackboneConfig(channels=16, n_classes=len(AgentClass)))
    model = build_model(cfg, feats["bev"].shape[0], risk_head=True).eval()
    with torch.no_grad():
        out = model(batch_of_one(feats))
    for key, value in out.items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert torch.isfinite(value).all(), key


def test_known_lane_offset_passes_through_and_is_flagged_known(frame) -> None:
    frame = copy.deepcopy(frame)
    frame.ego.lane_offset = -0.7
    feats = build_features(frame, load_rig("dense360"))
    assert feats["ego_status"][EgoStatusField.LANE_OFFSET] == np.float32(-0.7)
    assert (feats["ego_status_valid"] == 1.0).all()


def test_simulator_features_keep_their_values() -> None:
    from rsd.sim.recorder import record_episode

    rig = load_rig("dense360")
    for f in record_episode("cut_in", 0).frames[::8]:
        feats = build_features(f, rig)
        ego = f.ego
        # the ego status as it was before unknown offsets existed, bit for bit
        before = np.array([ego.speed, ego.target_speed, ego.yaw_rate, ego.lane_offset], np.float32)
        assert feats["ego_status"].tobytes() == before.tobytes()
        assert (feats["ego_status_valid"] == 1.0).all()
