"""The privileged (physics) teacher on real recorded episodes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsd.scene import Frame
from rsd.sim.recorder import record_episode
from rsd.teacher.physics import agent_arrays, cv_departure
from rsd.teacher.privileged import PrivilegedConfig, PrivilegedTeacher
from rsd.teacher.schema import RiskAssessment, RiskCategory, Teacher
from tests.data.frames import make_frame


@pytest.fixture(scope="module")
def episodes() -> dict[str, list[Frame]]:
    # sudden_brake seed 25: the lead brakes to a stop in the ego lane and the expert brakes
    # behind it; cut_in seed 0: car 9 cuts in from the right at ~4 s.
    return {
        "sudden_brake": record_episode("sudden_brake", 25).frames,
        "cut_in": record_episode("cut_in", 0).frames,
    }


@pytest.fixture(scope="module")
def teacher() -> PrivilegedTeacher:
    return PrivilegedTeacher()


def _event_agent(frame: Frame, kind: str) -> int | None:
    for event in frame.events:
        name, _, agent_id = event.partition(":")
        if name == kind:
            return int(agent_id)
    return None


def _gap(frame: Frame, agent_id: int) -> float:
    a = frame.agent(agent_id)
    return a.x - (a.length + frame.ego.length) / 2


def _braking_frame(frames: list[Frame]) -> tuple[Frame, int]:
    """First keyframe with the scripted brake on and the lead 10-22 m ahead in the ego lane."""
    for f in frames:
        lead = _event_agent(f, "brake")
        if lead is not None and f.agent(lead).lane_relation == 0 and 10 <= _gap(f, lead) <= 22:
            return f, lead
    raise AssertionError("no braking keyframe with the lead 10-22 m ahead")


def test_is_a_teacher(teacher: PrivilegedTeacher) -> None:
    assert isinstance(teacher, Teacher)
    assert teacher.teacher_id == "privileged" and teacher.prompt_version == "intent-v2"


def test_braking_lead_is_the_top_risk(episodes, teacher: PrivilegedTeacher) -> None:
    frame, lead = _braking_frame(episodes["sudden_brake"])
    a = teacher.assess([frame])[0]
    obj = a.by_id()[lead]
    assert obj.rank == 1 and obj.risk > 0.7
    assert obj.category is RiskCategory.LEAD_BRAKING
    assert a.scene_risk == obj.risk
    # Hand-computed: at constant speeds the bumper gap closes at v_ego - v_lead; the lead
    # only slows down, so the teacher's TTC can be no longer than that.
    agent = frame.agent(lead)
    ttc_const = _gap(frame, lead) / (frame.ego.speed - agent.vx)
    ttc = teacher.features(frame)["ttc"][sorted(a.id for a in frame.agents).index(lead)]
    assert 0.5 < ttc <= ttc_const + 0.05
    assert "ego lane" in obj.rationale and f"TTC {ttc:.1f} s" in obj.rationale
    assert f"{_gap(frame, lead):.0f} m" in obj.rationale


def test_closer_lead_is_riskier(episodes, teacher: PrivilegedTeacher) -> None:
    frame, lead = _braking_frame(episodes["sudden_brake"])
    risks = []
    for shift in (8.0, 4.0, 0.0):
        agents = []
        for ag in frame.agents:
            if ag.id == lead:
                future = ag.future.copy()
                future[:, 0] += shift
                ag = dataclasses.replace(ag, x=ag.x + shift, future=future)
            agents.append(ag)
        moved = dataclasses.replace(frame, agents=agents)
        risks.append(teacher.assess([moved])[0].by_id()[lead].risk)
    assert risks[0] < risks[1] < risks[2]


def test_cars_behind_moving_away_are_low_risk(episodes, teacher: PrivilegedTeacher) -> None:
    seen = 0
    for frame in episodes["sudden_brake"] + episodes["cut_in"]:
        a = teacher.assess([frame])[0].by_id()
        for ag in frame.agents:
            if ag.x < -10 and ag.lane_relation != 0 and ag.vx < frame.ego.speed - 1.0:
                assert a[ag.id].risk < 0.2, (frame.frame_id, ag.id, a[ag.id])
                assert a[ag.id].category is RiskCategory.NONE
                seen += 1
    assert seen > 10


def test_cut_in_car_outranks_a_distant_car(episodes, teacher: PrivilegedTeacher) -> None:
    frame = next(f for f in episodes["cut_in"] if _event_agent(f, "cut_in") is not None)
    cutter = _event_agent(frame, "cut_in")
    a = teacher.assess([frame])[0].by_id()
    far = [ag.id for ag in frame.agents if np.hypot(ag.x, ag.y) > 40]
    assert far
    assert all(a[cutter].rank < a[i].rank for i in far)
    assert a[cutter].category is RiskCategory.CUT_IN and a[cutter].risk > 0.5
    assert a[cutter].rationale.startswith(f"Car {cutter} cuts in from the")


def test_output_is_well_formed(episodes, teacher: PrivilegedTeacher) -> None:
    frames = episodes["sudden_brake"] + episodes["cut_in"]
    for frame, a in zip(frames, teacher.assess(frames), strict=True):
        assert a.frame_id == frame.frame_id
        assert sorted(o.object_id for o in a.objects) == sorted(ag.id for ag in frame.agents)
        assert sorted(o.rank for o in a.objects) == list(range(1, len(frame.agents) + 1))
        by_rank = sorted(a.objects, key=lambda o: o.rank)
        assert all(x.risk >= y.risk for x, y in zip(by_rank, by_rank[1:], strict=False))
        assert a.scene_risk == max((o.risk for o in a.objects), default=0.0)
        assert all(o.rationale.endswith(".") and str(o.object_id) in o.rationale for o in a.objects)


def test_deterministic_and_batch_independent(episodes, teacher: PrivilegedTeacher) -> None:
    frames = episodes["cut_in"][10:20]
    once = [a.model_dump() for a in teacher.assess(frames)]
    again = [a.model_dump() for a in PrivilegedTeacher().assess(frames[::-1])][::-1]
    assert once == again


def test_json_round_trip(episodes, teacher: PrivilegedTeacher) -> None:
    frame, _ = _braking_frame(episodes["sudden_brake"])
    a = teacher.assess([frame])[0]
    back = RiskAssessment.model_validate_json(a.model_dump_json())
    assert back == a and back.objects[0].category is RiskCategory.LEAD_BRAKING


def test_frame_without_agents(episodes, teacher: PrivilegedTeacher) -> None:
    empty = dataclasses.replace(episodes["cut_in"][0], agents=[])
    a = teacher.assess([empty])[0]
    assert a.objects == [] and a.scene_risk == 0.0


def test_config_changes_the_judgement(episodes) -> None:
    frame, lead = _braking_frame(episodes["sudden_brake"])
    strict = PrivilegedTeacher(PrivilegedConfig(ttc_lo=0.5, ttc_hi=2.5, a_max=9.0))
    assert strict.assess([frame])[0].by_id()[lead].risk < (
        PrivilegedTeacher().assess([frame])[0].by_id()[lead].risk
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_agents=st.integers(0, 6),
    n_lanes=st.integers(0, 3),
    standing=st.booleans(),
)
def test_any_frame_gives_a_well_formed_assessment(seed, n_agents, n_lanes, standing) -> None:
    """Random poses, futures, validity masks and lane polylines (even a standing ego with a
    degenerate plan): the teacher never raises and its output stays within the schema."""
    frame = make_frame("fuzz", seed, seed % 7, np.random.default_rng(seed), n_agents, n_lanes)
    if standing:
        frame.ego.future[:] = 0.0
        frame.ego.speed = 0.0
    a = PrivilegedTeacher().assess([frame])[0]
    ids = sorted(ag.id for ag in frame.agents)
    assert sorted(o.object_id for o in a.objects) == ids
    assert sorted(o.rank for o in a.objects) == list(range(1, len(ids) + 1))
    assert all(np.isfinite(o.risk) and 0.0 <= o.risk <= 1.0 for o in a.objects)
    assert RiskAssessment.model_validate_json(a.model_dump_json()) == a


# -- intent (issue 12): the default teacher reads agents' logged futures, never the plan ------


def _with_cv_future(frame: Frame, agent_id: int) -> Frame:
    """``frame`` with agent ``agent_id``'s logged future replaced by its constant-velocity
    extrapolation (heading kept)."""
    agents = []
    for a in frame.agents:
        if a.id == agent_id:
            t = np.arange(1, len(a.future) + 1) * 0.5
            fut = np.column_stack([a.x + a.vx * t, a.y + a.vy * t, np.full(len(t), a.yaw)])
            a = dataclasses.replace(a, future=fut, future_valid=np.ones(len(t), bool))
        agents.append(a)
    return dataclasses.replace(frame, agents=agents)


def test_default_teacher_never_reads_the_expert_plan(episodes, teacher) -> None:
    for frame in episodes["sudden_brake"][::7] + episodes["cut_in"][::7]:
        ego = frame.ego
        swerved = np.asarray(ego.future).copy()
        swerved[:, 1] += 3.0  # a plan that changes lane and...
        swerved[:, 0] *= 0.3  # ...brakes hard
        other = dataclasses.replace(frame, ego=dataclasses.replace(ego, future=swerved))
        a, b = teacher.assess([frame])[0], teacher.assess([other])[0]
        assert a.model_dump(exclude={"latency_s"}) == b.model_dump(exclude={"latency_s"})
    with_plan = PrivilegedTeacher(PrivilegedConfig(use_plan=True))
    assert with_plan.prompt_version == "intent-v2+plan"
    changed = [
        with_plan.assess([f])[0].scene_risk
        != with_plan.assess(
            [dataclasses.replace(f, ego=dataclasses.replace(f.ego, future=f.ego.future * 0.3))]
        )[0].scene_risk
        for f in episodes["sudden_brake"][::7]
    ]
    assert any(changed)  # the comparison option does read the plan


def test_cut_in_intent_raises_the_risk_over_constant_velocity(episodes, teacher) -> None:
    """Before the cut-in, the cutter is in the next lane: only its logged future says it comes
    in. With that future replaced by constant velocity, its risk and departure drop."""
    first = next(i for i, f in enumerate(episodes["cut_in"]) if _event_agent(f, "cut_in"))
    cutter = _event_agent(episodes["cut_in"][first], "cut_in")
    gains = []
    for frame in episodes["cut_in"][max(first - 4, 0) : first + 1]:
        if frame.agent(cutter) is None:
            continue
        real = teacher.features(frame)
        cv = teacher.features(_with_cv_future(frame, cutter))
        i = int(np.flatnonzero(real["ids"] == cutter)[0])
        assert cv["dev"][i] == pytest.approx(0.0, abs=1e-9)
        gains.append(real["risk"][i] - cv["risk"][i])
    assert gains and max(gains) > 0.2


def test_cv_departure_hand_case() -> None:

    frame = make_frame("highway", 0, 0, np.random.default_rng(0), n_agents=2)
    a0, a1 = sorted(frame.agents, key=lambda a: a.id)
    t = np.arange(1, len(a0.future) + 1) * 0.5
    cv0 = np.column_stack([a0.x + a0.vx * t, a0.y + a0.vy * t, np.zeros(len(t))])
    cv1 = np.column_stack([a1.x + a1.vx * t, a1.y + a1.vy * t, np.zeros(len(t))])
    cv1[-1, 1] += 3.0  # swerves 3 m at the last keyframe
    cv1[2, 0] -= 4.0  # and lags 4 m at 1.5 s: the largest departure
    valid = np.ones(len(t), bool)
    frame = dataclasses.replace(
        frame,
        agents=[
            dataclasses.replace(a0, future=cv0, future_valid=valid),
            dataclasses.replace(a1, future=cv1, future_valid=valid),
        ],
    )
    assert cv_departure(agent_arrays(frame)) == pytest.approx([0.0, 4.0])
