"""The current-state view of a frame (:func:`rsd.teacher.physics.constant_velocity_frame`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, Frame
from rsd.sim.recorder import record_episode
from rsd.teacher.physics import agent_arrays, constant_velocity_frame, cv_departure
from rsd.teacher.privileged import PrivilegedTeacher


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    # cut_in seed 0: car 9 cuts in from the right at ~4 s (a departure from constant velocity)
    return record_episode("cut_in", 0).frames


def _live(frame: Frame) -> Frame:
    """``frame`` as a closed-loop planner sees it: no logged future (all steps invalid)."""
    agents = [
        dataclasses.replace(
            a, future=np.zeros_like(a.future), future_valid=np.zeros_like(a.future_valid)
        )
        for a in frame.agents
    ]
    return dataclasses.replace(frame, agents=agents)


def test_futures_are_constant_velocity(frames: list[Frame]) -> None:
    frame = frames[len(frames) // 2]
    cv = constant_velocity_frame(frame)
    assert [a.id for a in cv.agents] == [a.id for a in frame.agents] and cv.ego is frame.ego
    a = cv.agents[0]
    k = 3  # the 4th keyframe, 2 s ahead
    t = (k + 1) * KEYFRAME_DT
    assert a.future[k, 0] == pytest.approx(a.x + a.vx * t, abs=1e-4)
    assert a.future[k, 1] == pytest.approx(a.y + a.vy * t, abs=1e-4)
    assert a.future[k, 2] == pytest.approx(a.yaw, abs=1e-6)
    assert all(b.future_valid.all() and b.future.shape == (FUTURE_STEPS, 3) for b in cv.agents)
    # the recorded frame is left as it was
    assert not np.allclose(frame.agents[0].future, a.future) or frame.agents[0].speed < 0.1
    assert cv_departure(agent_arrays(cv)) == pytest.approx(0.0, abs=1e-3)


def test_teacher_sees_what_it_sees_live(frames: list[Frame]) -> None:
    """On the current-state frame, the teacher answers as it does on the live frame (whose
    missing future it fills at constant velocity itself)."""
    teacher = PrivilegedTeacher()
    some = frames[::3]
    cv = teacher.assess([constant_velocity_frame(f) for f in some])
    live = teacher.assess([_live(f) for f in some])
    for a, b in zip(cv, live, strict=True):
        assert [o.object_id for o in a.objects] == [o.object_id for o in b.objects]
        assert [o.risk for o in a.objects] == pytest.approx([o.risk for o in b.objects], abs=1e-6)


def test_intent_is_what_the_current_state_lacks(frames: list[Frame]) -> None:
    """In the 2 s before car 9 cuts in, its logged future makes it risky while its present
    alone does not; once the cut-in is under way, the present shows it too."""
    teacher = PrivilegedTeacher()
    start = next(i for i, f in enumerate(frames) if "cut_in:9" in f.events)
    before, during = frames[start - 4 : start], frames[start : start + 3]
    full = [a.by_id()[9].risk for a in teacher.assess(before + during)]
    now = teacher.assess([constant_velocity_frame(f) for f in before + during])
    now = [a.by_id()[9].risk for a in now]
    assert min(np.subtract(full, now)[: len(before)]) > 0.3
    assert np.subtract(full, now)[len(before) :] == pytest.approx(0.0, abs=0.05)
