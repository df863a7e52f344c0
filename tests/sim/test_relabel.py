"""DAgger data: student rollouts labelled by the privileged expert from the exact state."""

import numpy as np
import pytest

from rsd.scene import FUTURE_STEPS, KEYFRAME_DT, PAST_STEPS
from rsd.sim.planners import PlanOutput
from rsd.sim.recorder import record_episode
from rsd.sim.relabel import student_episode


class StraightOn:
    """A student that plans straight ahead at its current speed (ignores everything)."""

    def __init__(self, episode) -> None:
        self.ep = episode

    def plan(self, frame) -> PlanOutput:
        t = np.arange(1, FUTURE_STEPS + 1) * KEYFRAME_DT
        return PlanOutput(np.column_stack([frame.ego.speed * t, np.zeros_like(t)]))


def test_with_the_expert_driving_labels_equal_the_recorded_expert_future() -> None:
    """expert_prob = 1: the state at each keyframe is the recorder's, so the label from a copy
    of the episode driven by a copy of the expert must be the recorder's realised future."""
    rec = {f.step: f for f in record_episode("cut_in", 3).frames}
    ep = student_episode("cut_in", 3, StraightOn, expert_prob=1.0, tag="t")
    common = [f for f in ep.frames if f.step in rec]
    assert len(common) >= 0.9 * len(rec)
    for f in common:
        g = rec[f.step]
        assert f.frame_id == f"cut_in~t-00003-{f.step:04d}"
        np.testing.assert_array_equal(f.ego.future, g.ego.future)
        np.testing.assert_array_equal(f.ego.past, g.ego.past)
        assert f.command == g.command and f.ego.speed == g.ego.speed
        assert [a.id for a in f.agents] == [a.id for a in g.agents]
        for a, b in zip(f.agents, g.agents, strict=True):
            np.testing.assert_array_equal(a.future_valid, b.future_valid)
            np.testing.assert_allclose(a.future[a.future_valid], b.future[b.future_valid])


@pytest.fixture(scope="module")
def student():
    return student_episode("cut_in", 3, StraightOn, expert_prob=0.0, tag="t")


def test_student_states_get_expert_labels(student) -> None:
    """The student drives on its own (no expert step); keyframes from the first one on, each
    with the past it has (full from the fifth keyframe) and a full 3 s expert future leaving
    from the ego (first step about v x 0.5 s)."""
    assert student.outcome["expert_steps"] == 0
    assert student.frames
    rec = {f.step: f for f in record_episode("cut_in", 3).frames}
    moved = [
        f for f in student.frames if f.step in rec and abs(f.ego.speed - rec[f.step].ego.speed) > 1
    ]
    assert moved  # it visited states the expert never recorded
    assert student.frames[0].step == 0
    for f in student.frames:
        n = min(f.step // 5, PAST_STEPS)
        assert f.ego.past_valid.tolist() == [False] * (PAST_STEPS - n) + [True] * n
        assert f.ego.future_valid.all()
        assert f.ego.past.shape == (PAST_STEPS, 3)
        first = float(np.hypot(*f.ego.future[0, :2]))
        assert abs(first - f.ego.speed * KEYFRAME_DT) < 0.5 * KEYFRAME_DT * 6.0 + 0.1


def test_same_seed_same_data(student) -> None:
    again = student_episode("cut_in", 3, StraightOn, expert_prob=0.0, tag="t")
    assert [f.frame_id for f in again.frames] == [f.frame_id for f in student.frames]
    for f, g in zip(student.frames, again.frames, strict=True):
        np.testing.assert_array_equal(f.ego.future, g.ego.future)
