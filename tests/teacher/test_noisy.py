"""The noisy teacher: reproducible corruption that grows with the rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rsd.scene import Frame
from rsd.sim.recorder import record_episode
from rsd.teacher.noisy import INVENTED_OFFSET, NoisyTeacher
from rsd.teacher.privileged import PrivilegedTeacher
from rsd.teacher.schema import RiskAssessment, Status, Teacher


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    return record_episode("highway", 1).frames


@pytest.fixture(scope="module")
def base(frames: list[Frame]) -> list[RiskAssessment]:
    return PrivilegedTeacher().assess(frames)


class _Fixed:
    """A teacher that answers with given assessments (counts its calls)."""

    teacher_id = "fixed"
    prompt_version = "v0"

    def __init__(self, answers: Sequence[RiskAssessment]) -> None:
        self.by_frame = {a.frame_id: a for a in answers}

    def assess(self, frames: Sequence[Frame]) -> list[RiskAssessment]:
        return [self.by_frame[f.frame_id] for f in frames]


def _avg_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _avg_ranks(a), _avg_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float((ra == rb).all())
    return float(np.corrcoef(ra, rb)[0, 1])


def _agreement(frames, base, noisy) -> float:
    """Mean Spearman correlation of the teachers' rankings over each frame's agents (an agent
    an assessment misses ranks last)."""
    out = []
    for f, a, n in zip(frames, base, noisy, strict=True):
        ids = sorted(ag.id for ag in f.agents)
        if len(ids) < 2:
            continue
        ba, na = a.by_id(), n.by_id()
        rx = np.array([ba[i].rank if i in ba else len(ids) + 1 for i in ids])
        ry = np.array([na[i].rank if i in na else len(ids) + 1 for i in ids])
        out.append(_spearman(rx, ry))
    return float(np.mean(out))


def test_is_a_teacher_with_its_id(base) -> None:
    t = NoisyTeacher(_Fixed(base), 0.25)
    assert isinstance(t, Teacher)
    assert t.teacher_id == "noisy(0.25,seed=0,fixed)" and t.prompt_version == "v0"
    with pytest.raises(ValueError):
        NoisyTeacher(_Fixed(base), 1.5)


def test_rate_zero_is_the_identity(frames, base) -> None:
    out = NoisyTeacher(_Fixed(base), 0.0, seed=3).assess(frames)
    for a, n in zip(base, out, strict=True):
        assert n.teacher_id == "noisy(0.0,seed=3,fixed)"
        assert n.model_dump(exclude={"teacher_id"}) == a.model_dump(exclude={"teacher_id"})


def test_reproducible_per_frame_and_seed(frames, base) -> None:
    t = NoisyTeacher(_Fixed(base), 0.4, seed=7)
    once = [a.model_dump() for a in t.assess(frames)]
    shuffled = [a.model_dump() for a in t.assess(frames[::-1])][::-1]
    again = [a.model_dump() for a in NoisyTeacher(_Fixed(base), 0.4, seed=7).assess(frames)]
    other = [a.model_dump() for a in NoisyTeacher(_Fixed(base), 0.4, seed=8).assess(frames)]
    assert once == shuffled == again
    assert once != other


def test_corruption_grows_with_the_rate(frames, base) -> None:
    rates = (0.0, 0.1, 0.3, 0.6)
    agreement, dropped = [], []
    for rate in rates:
        outs = [NoisyTeacher(_Fixed(base), rate, seed=s).assess(frames) for s in range(3)]
        agreement.append(np.mean([_agreement(frames, base, out) for out in outs]))
        dropped.append(sum(a.counters.get("noisy_dropped", 0) for a in outs[0]))
    assert agreement[0] == pytest.approx(1.0)
    assert all(x > y for x, y in zip(agreement, agreement[1:], strict=False)), agreement
    assert dropped == sorted(dropped) and dropped[0] == 0 and dropped[-1] > 0


def test_output_stays_valid(frames, base) -> None:
    for rate in (0.3, 1.0):
        out = NoisyTeacher(_Fixed(base), rate, seed=1).assess(frames)
        invented_fake = invented_real = 0
        for f, n in zip(frames, out, strict=True):
            assert sorted(o.rank for o in n.objects) == list(range(1, len(n.objects) + 1))
            assert all(0.0 <= o.risk <= 1.0 for o in n.objects)
            assert n.scene_risk == max((o.risk for o in n.objects), default=0.0)
            real = {ag.id for ag in f.agents}
            for o in n.objects:
                if "invented" in o.flags:
                    assert o.risk >= 0.7
                    if o.object_id in real:
                        invented_real += 1
                    else:
                        assert o.object_id >= max(real | {0}) + INVENTED_OFFSET
                        invented_fake += 1
                else:
                    assert o.object_id in real
            RiskAssessment.model_validate_json(n.model_dump_json())
        if rate == 1.0:
            assert invented_real > 0 and invented_fake > 0


def test_failed_assessments_pass_through(frames) -> None:
    failed = [
        RiskAssessment(
            frame_id=f.frame_id,
            teacher_id="fixed",
            prompt_version="v0",
            status=Status.FAILED,
            failure_reason="timeout",
        )
        for f in frames[:3]
    ]
    out = NoisyTeacher(_Fixed(failed), 1.0).assess(frames[:3])
    assert all(n.status is Status.FAILED and n.objects == [] for n in out)
    assert [n.failure_reason for n in out] == ["timeout"] * 3
