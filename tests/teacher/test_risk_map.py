"""BEV risk targets: painted maps, per-agent targets and the dataset wrapper."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rsd.config import ConfigError
from rsd.data.dataset import BEVDataset, collate
from rsd.geometry import BEVGrid, BoxField
from rsd.scene import Frame
from rsd.sim.recorder import record_episode
from rsd.teacher.privileged import PrivilegedTeacher
from rsd.teacher.risk_map import (
    ORACLE_FEATURE,
    RiskMapConfig,
    RiskTargetDataset,
    object_targets,
    paint_risk,
    paint_space_time,
    risk_map,
    risk_maps,
)
from rsd.teacher.schema import ObjectRisk, RiskAssessment, Status

GRID = BEVGrid()
FLAT = RiskMapConfig(sweep_future=False, sigma_m=0.0, time_channels=0)
"""Footprints only: values can be checked cell by cell."""


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return record_episode("highway", 0).frames


def _assessment(frame: Frame, risks: dict[int, float]) -> RiskAssessment:
    order = sorted(frame.agents, key=lambda a: (-risks.get(a.id, 0.0), a.id))
    objects = [
        ObjectRisk(object_id=a.id, risk=risks.get(a.id, 0.0), rank=r + 1)
        for r, a in enumerate(order)
    ]
    return RiskAssessment(
        frame_id=frame.frame_id, teacher_id="t", prompt_version="v", objects=objects
    )


def _cell(xy: tuple[float, float]) -> tuple[int, int]:
    r, c = np.floor(GRID.world_to_pixel(np.array(xy))).astype(int)
    return int(r), int(c)


def _inside_agent(frame: Frame):
    """An agent whose whole box (plus 3 m) lies in the grid."""
    for a in sorted(frame.agents, key=lambda a: a.id):
        if GRID.x_min + 10 < a.x < GRID.x_max - 10 and abs(a.y) < GRID.y_max - 4:
            return a
    raise AssertionError("no agent well inside the grid")


def test_risk_one_paints_its_footprint(frames: list[Frame]) -> None:
    frame = frames[5]
    agent = _inside_agent(frame)
    heat = risk_map(frame, _assessment(frame, {agent.id: 1.0}), GRID, FLAT)
    assert heat.shape == GRID.shape and heat.dtype == np.float32
    assert heat[_cell((agent.x, agent.y))] == 1.0
    heading = np.array([np.cos(agent.yaw), np.sin(agent.yaw)])
    ahead = np.array([agent.x, agent.y]) + heading * (agent.length / 2 + 1.5)
    assert heat[_cell(tuple(ahead))] == 0.0
    cells = agent.length * agent.width / GRID.resolution**2
    assert 0.7 * cells < np.count_nonzero(heat) < 1.6 * cells
    assert set(np.unique(heat)) == {0.0, 1.0}


def test_risk_zero_paints_nothing(frames: list[Frame]) -> None:
    frame = frames[5]
    heat = risk_map(frame, _assessment(frame, {}), GRID, RiskMapConfig())
    assert not heat.any()
    assert not risk_map(frame, None, GRID).any()


def test_no_agents_no_risk(frames: list[Frame]) -> None:
    empty = dataclasses.replace(frames[5], agents=[])
    assert not risk_map(empty, _assessment(empty, {}), GRID).any()
    heat = paint_risk(np.zeros((0, 8)), np.zeros(0), GRID, RiskMapConfig(), np.zeros((0, 6, 3)))
    assert heat.shape == GRID.shape and not heat.any()


def test_overlap_keeps_the_maximum() -> None:
    boxes = np.zeros((2, len(BoxField)))
    boxes[:, [BoxField.LENGTH, BoxField.WIDTH]] = (4.0, 2.0)
    boxes[0, [BoxField.X, BoxField.Y]] = (10.0, 0.0)
    boxes[1, [BoxField.X, BoxField.Y]] = (12.0, 0.0)  # overlaps x in [10, 12]
    for risks in ([0.3, 0.8], [0.8, 0.3]):
        heat = paint_risk(boxes, np.array(risks), GRID, FLAT)
        low, high = (0, 1) if risks[0] < risks[1] else (1, 0)
        only_low = (boxes[low, 0] + (boxes[low, 0] - boxes[high, 0]) * 0.75, 0.25)
        assert heat[_cell((11.0, 0.25))] == pytest.approx(0.8)  # in both
        assert heat[_cell(only_low)] == pytest.approx(0.3)


def test_sweep_paints_the_near_future_with_decay() -> None:
    boxes = np.zeros((1, len(BoxField)))
    boxes[0, [BoxField.X, BoxField.LENGTH, BoxField.WIDTH]] = (0.0, 4.0, 2.0)
    future = np.zeros((1, 6, 3))
    future[0, :, 0] = 10.0 * np.arange(1, 7)  # 20 m/s forward
    valid = np.ones((1, 6), bool)
    cfg = RiskMapConfig(
        sweep_future=True, sweep_steps=2, sweep_decay=0.5, sigma_m=0.0, time_channels=0
    )
    heat = paint_risk(boxes, np.array([0.8]), GRID, cfg, future, valid)
    assert heat[_cell((0.25, 0.25))] == pytest.approx(0.8)
    assert heat[_cell((8.25, 0.25))] == pytest.approx(0.4)  # between now and 0.5 s
    assert heat[_cell((18.25, 0.25))] == pytest.approx(0.2)  # between 0.5 s and 1 s
    assert heat[_cell((30.25, 0.25))] == 0.0  # past the swept steps
    valid[0, 0] = False
    cut = paint_risk(boxes, np.array([0.8]), GRID, cfg, future, valid)
    assert cut[_cell((8.25, 0.25))] == 0.0


def test_smoothing_keeps_the_peak(frames: list[Frame]) -> None:
    frame = frames[5]
    agent = _inside_agent(frame)
    a = _assessment(frame, {agent.id: 1.0})
    smooth = risk_map(
        frame, a, GRID, RiskMapConfig(sweep_future=False, sigma_m=1.0, time_channels=0)
    )
    flat = risk_map(frame, a, GRID, FLAT)
    assert smooth[_cell((agent.x, agent.y))] == 1.0
    assert (smooth >= flat).all() and smooth.max() <= 1.0
    halo = (smooth > 0) & (flat == 0)
    assert halo.any() and smooth[halo].max() < 1.0


def test_object_targets_follow_the_dataset_order(frames: list[Frame]) -> None:
    frame = frames[8]
    a = PrivilegedTeacher().assess([frame])[0]
    t = object_targets(frame, a)
    ids = sorted(ag.id for ag in frame.agents)
    by_id = a.by_id()
    assert t["valid"].all() and t["risk"].dtype == np.float32
    np.testing.assert_allclose(t["risk"], [by_id[i].risk for i in ids], rtol=1e-6)
    assert t["rank"].tolist() == [by_id[i].rank for i in ids]
    missing = a.model_copy(update={"objects": a.objects[1:]})
    t2 = object_targets(frame, missing)
    gone = ids.index(a.objects[0].object_id)
    assert not t2["valid"][gone] and t2["rank"][gone] == 0 and t2["valid"].sum() == len(ids) - 1


def test_dataset_wrapper_batches(frames: list[Frame]) -> None:
    chosen = [frames[4], frames[9], frames[14]]
    teacher = PrivilegedTeacher()
    assessments = {a.frame_id: a for a in teacher.assess(chosen[:2])}
    failed = RiskAssessment(
        frame_id=chosen[1].frame_id, teacher_id="x", prompt_version="v", status=Status.FAILED
    )
    base = BEVDataset(chosen, rig="front_short")
    ds = RiskTargetDataset(base, assessments)
    batch = collate([ds[i] for i in range(3)])["targets"]  # teacher targets are targets
    k = max(len(f.agents) for f in chosen)
    h, w = GRID.shape
    assert batch["risk_map"].shape == (3, 6, h, w) and batch["risk_map"].dtype == torch.float32
    assert batch["agent_risk"].shape == (3, k) and batch["agent_rank"].shape == (3, k)
    assert batch["agent_risk_valid"].shape == (3, k)
    assert batch["risk_valid"].tolist() == [True, True, False]
    assert not batch["risk_map"][2].any() and batch["risk_map"][0].max() > 0
    assert (batch["agent_risk_valid"] <= batch["agent_mask"]).all()
    first = object_targets(chosen[0], assessments[chosen[0].frame_id])
    n = len(chosen[0].agents)
    np.testing.assert_allclose(batch["agent_risk"][0, :n].numpy(), first["risk"])
    expected = risk_maps(chosen[0], assessments[chosen[0].frame_id], GRID)
    np.testing.assert_allclose(batch["risk_map"][0].numpy(), expected, atol=1e-6)
    ds_failed = RiskTargetDataset(base, {**assessments, failed.frame_id: failed})
    failed_targets = ds_failed[1]["targets"]
    assert not failed_targets["risk_valid"] and not failed_targets["risk_map"].any()


def test_space_time_channels_follow_the_logged_future() -> None:
    """One 4 x 2 m box at (10, 0) whose future moves 5 m ahead and 1 m left per keyframe:
    channel k holds its footprint at (10 + 5 (k + 1), k + 1), painted with its risk, and
    nothing where it is now."""
    box = np.array([[10.0, 0.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]])
    k = np.arange(1, 7)
    future = np.stack([10 + 5.0 * k, 1.0 * k, np.zeros(6)], axis=-1)[None]
    valid = np.ones((1, 6), bool)
    valid[0, 5] = False  # the last step unknown: paints nothing
    cfg = RiskMapConfig(sigma_m=0.0)
    maps = paint_space_time(box, np.array([0.7]), GRID, cfg, future, valid)
    assert maps.shape == (6, *GRID.shape)
    for step in range(5):
        assert maps[step][_cell((15.0 + 5 * step, 1.0 + step))] == pytest.approx(0.7)
        assert maps[step][_cell((10.0, 0.0))] == 0.0
        # 4 x 2 m is 8 x 4 cells of 0.5 m; PIL fills the outline too (at most 9 x 5)
        assert 0.7 * 32 <= maps[step].sum() <= 0.7 * 45 + 1e-4
    assert not maps[5].any()
    single = paint_space_time(box, np.array([0.7]), GRID, FLAT, future, valid)
    assert single.shape == (1, *GRID.shape) and single[0][_cell((10.0, 0.0))] == pytest.approx(0.7)


def test_occupancy_target_and_oracle_input(frames: list[Frame]) -> None:
    chosen = [frames[4], frames[9]]
    base = BEVDataset(chosen, rig="front_short")
    occ = RiskTargetDataset(base, {}, target="occupancy", oracle_input=True)
    sample = occ[0]
    t = sample["targets"]
    assert bool(t["risk_valid"]) and float(t["scene_risk"]) == 0.0
    assert t["agent_risk"].eq(1).all() and t["agent_rank"].eq(0).all()
    assert t["risk_map"].max() == 1.0  # every agent painted with 1, whatever its risk
    assert torch.equal(sample["features"][ORACLE_FEATURE], t["risk_map"])
    with pytest.raises(ConfigError, match="occupancy"):
        RiskTargetDataset(base, {}, target="speed")
