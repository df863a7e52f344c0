"""Recovery augmentation: the displaced frame is the same scene seen from another pose, and
its label leads back to the expert's path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rsd.config import ConfigError
from rsd.data.augment import AugmentConfig, Augmenter, perturb_frame
from rsd.data.dataset import BEVDataset
from rsd.data.features import build_features
from rsd.data.rigs import load_rig
from rsd.data.synthetic import random_frame, synthetic_agent, synthetic_frame
from rsd.geometry import EgoStatusField


def _pairwise(frame) -> np.ndarray:
    pts = np.array([[a.x, a.y] for a in frame.agents] + [[0.0, 0.0]])
    return np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))


def test_zero_displacement_is_the_identity():
    f = random_frame(3)
    g = perturb_frame(f, 0.0, 0.0)
    assert np.allclose(g.ego.future, f.ego.future, atol=1e-5)
    for a, b in zip(f.agents, g.agents, strict=True):
        assert (a.x, a.y, a.vx, a.vy) == pytest.approx((b.x, b.y, b.vx, b.vy), abs=1e-6)
        assert np.allclose(a.future, b.future, atol=1e-5)


def test_the_scene_is_rigidly_re_expressed_in_the_displaced_ego_frame():
    f = random_frame(5)
    dy, dyaw = 0.8, 0.07
    g = perturb_frame(f, dy, dyaw)
    # agents keep their distances to each other; the old ego origin is now at tf(0)
    d_old = _pairwise(f)[:-1, :-1]
    d_new = _pairwise(g)[:-1, :-1]
    assert np.allclose(d_old, d_new, atol=1e-6)
    # an agent's distance to the *displaced* ego equals its old distance to (0, dy)
    for a, b in zip(f.agents, g.agents, strict=True):
        assert np.hypot(b.x, b.y) == pytest.approx(np.hypot(a.x, a.y - dy), abs=1e-6)
        assert b.yaw == pytest.approx(a.yaw - dyaw, abs=1e-6)
        assert np.hypot(b.vx, b.vy) == pytest.approx(np.hypot(a.vx, a.vy), abs=1e-6)
    # lanes along +x in the old frame now run at -dyaw; the ego's lane centre is dy to its right
    centre = next(lane for lane in g.lanes if lane.relation == 0).centre
    heading = np.arctan2(*(centre[-1] - centre[0])[::-1])
    assert heading == pytest.approx(-dyaw, abs=1e-6)
    assert g.ego.lane_offset == pytest.approx(f.ego.lane_offset + dy)
    assert f.ego.lane_offset == 0.0  # the input is not modified


def test_label_starts_ahead_and_rejoins_the_expert_path():
    f = synthetic_frame(ego_speed=20.0)  # expert: straight along y = 0 of the old frame
    dy, dyaw = 1.0, 0.05
    g = perturb_frame(f, dy, dyaw, recover_s=2.0)
    fut = g.ego.future
    # by 2 s (index 3) the label is on the old centreline: old-frame y == 0
    c, s = np.cos(dyaw), np.sin(dyaw)
    old_y = s * fut[:, 0] + c * fut[:, 1] + dy  # back to the old frame
    assert np.allclose(old_y[3:], 0.0, atol=1e-5)
    # at 0.5 s it is still much nearer the displaced heading's straight line (y = 0) than
    # the expert's path (old-frame y = 0, i.e. new-frame y = -(dy + x sin dyaw) / cos dyaw)
    expert_y0 = -(dy + fut[0, 0] * s) / c
    assert abs(fut[0, 1]) < 0.25 * abs(expert_y0)
    # it keeps the displaced heading at first (old-frame y grows by at most 10 m * sin dyaw
    # in the first 0.5 s), then heads back to the centreline monotonically
    assert old_y[0] <= dy + 10.0 * s + 1e-6
    assert np.all(np.diff(old_y) <= 1e-6)
    # the speed profile is the expert's
    steps = np.hypot(*np.diff(np.vstack([[0, 0], fut[:, :2]]), axis=0).T)
    assert steps.sum() == pytest.approx(20.0 * 3.0, rel=0.02)


def test_raster_sees_the_displacement():
    f = synthetic_frame(ego_speed=20.0)
    rig = load_rig("dense360")
    a, b = build_features(f, rig), build_features(perturb_frame(f, 1.0, 0.0), rig)
    assert b["ego_status"][EgoStatusField.LANE_OFFSET] == pytest.approx(1.0)
    assert not np.array_equal(a["bev"], b["bev"])


def test_augmenter_is_a_function_of_seed_epoch_index_and_keeps_its_rate():
    aug = Augmenter(AugmentConfig(prob=0.5, max_lateral=1.0, max_yaw=0.1), seed=0)
    draws = [aug.draw(i, 0) for i in range(2000)]
    assert draws == [aug.draw(i, 0) for i in range(2000)]
    assert draws != [aug.draw(i, 1) for i in range(2000)]
    assert draws != [Augmenter(aug.cfg, seed=1).draw(i, 0) for i in range(2000)]
    hit = [d for d in draws if d is not None]
    assert 0.45 < len(hit) / len(draws) < 0.55
    assert max(abs(d[0]) for d in hit) <= 1.0 and max(abs(d[1]) for d in hit) <= 0.1
    off = Augmenter(AugmentConfig(prob=0.0), seed=0)
    assert all(off.draw(i, 0) is None for i in range(100))


def test_augmenter_never_displaces_a_stopped_ego_or_into_a_neighbour():
    aug = Augmenter(AugmentConfig(prob=1.0, max_lateral=1.2), seed=0)
    stopped = synthetic_frame(ego_speed=0.5)
    assert all(aug(stopped, i, 0) is stopped for i in range(20))
    # a car right beside the ego, 0.3 m of clearance: any leftward shift > 0.3 m overlaps
    side = synthetic_frame([synthetic_agent(1, 0.0, 2.2, vx=20.0)], ego_speed=20.0)
    for i in range(40):
        out = aug(side, i, 0)
        dy = aug.draw(i, 0)[0]
        if dy > 0.5:
            assert out is side


def test_dataset_draws_per_epoch():
    frames = [random_frame(s, n_agents=4) for s in range(4)]
    ds = BEVDataset(frames, augment=Augmenter(AugmentConfig(prob=1.0), seed=0))
    plain = BEVDataset(frames)
    a0 = ds[0]["targets"]["ego_future"].clone()
    assert torch_equal(ds[0]["targets"]["ego_future"], a0)  # same epoch: same sample
    ds.set_epoch(1)
    assert not torch_equal(ds[0]["targets"]["ego_future"], a0)
    assert not torch_equal(plain[0]["targets"]["ego_future"], a0)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="augment.prob"):
        AugmentConfig(prob=1.5)
    with pytest.raises(ConfigError, match="augment.recover_s"):
        dataclasses.replace(AugmentConfig(), recover_s=0.0)
