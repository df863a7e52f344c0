"""The closed-loop oracle (:class:`rsd.policy.ModelPlanner` with a teacher) reads the teacher's
space-time maps of the live frame, which has no logged future."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from rsd.data.rigs import load_rig
from rsd.policy import ModelPlanner
from rsd.scene import Frame
from rsd.sim.recorder import record_episode
from rsd.teacher.physics import constant_velocity_frame
from rsd.teacher.privileged import PrivilegedTeacher
from rsd.teacher.risk_map import risk_maps


class _Recorder:
    """A stand-in oracle model: records the maps it is handed, plans standing still."""

    oracle_key = "oracle_risk"

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def eval(self) -> _Recorder:
        return self

    def __call__(self, features: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.seen.append(features[self.oracle_key][0])
        return {"plan": torch.zeros(1, 6, 2)}


def _live(frame: Frame) -> Frame:
    """What the closed loop hands a planner: the agents' futures unknown (all invalid)."""
    agents = [
        dataclasses.replace(a, future_valid=np.zeros_like(a.future_valid)) for a in frame.agents
    ]
    return dataclasses.replace(frame, agents=agents)


def test_live_oracle_maps_are_painted() -> None:
    teacher = PrivilegedTeacher()
    frames = record_episode("cut_in", 0).frames
    risky = max(frames, key=lambda f: teacher.assess([_live(f)])[0].scene_risk)
    model = _Recorder()
    ModelPlanner(model, load_rig("dense360"), teacher=teacher).plan(_live(risky))
    (maps,) = model.seen
    # the live teacher's risk is painted (before: all zero, no valid future to paint on) ...
    assert maps.shape[0] == 6 and float(maps.max()) > 0.3
    # ... where the agents would be at constant velocity
    now = constant_velocity_frame(risky)
    expected = risk_maps(now, teacher.assess([now])[0])
    np.testing.assert_allclose(maps.numpy(), expected, atol=1e-6)
