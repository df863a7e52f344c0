"""The VLM answer parser: repairs, flags, counters, failures, position matching, fuzz."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.teacher.match import as_int, entry_pixel, nearest_agent
from rsd.teacher.parse import as_score, extract_json, parse_assessment
from rsd.teacher.render import RenderConfig, make_transform
from rsd.teacher.schema import RiskAssessment, RiskCategory, Status

FRAME = synthetic_frame(
    [
        synthetic_agent(2, 20.0, 0.0, vx=10.0),
        synthetic_agent(5, 8.0, 3.5, vx=22.0),
        synthetic_agent(7, -15.0, -3.5, vx=28.0),
        synthetic_agent(11, 45.0, 3.5, vx=20.0),
    ]
)
IDS = {2, 5, 7, 11}
GOOD = {
    "scene_risk": 0.6,
    "objects": [
        {"id": 2, "risk": 0.8, "rank": 1, "category": "lead_braking", "rationale": "slow ahead"},
        {"id": 5, "risk": 0.4, "rank": 2, "category": "cut_in", "rationale": "close left"},
        {"id": 7, "risk": 0.2, "rank": 3, "category": "rear", "rationale": "fast behind"},
        {"id": 11, "risk": 0.05, "rank": 4, "category": "none", "rationale": "far"},
    ],
}


def parse(text, **kw) -> RiskAssessment:
    return parse_assessment(text, FRAME, teacher_id="vlm:test", prompt_version="risk-v1", **kw)


def check_invariants(ra: RiskAssessment) -> None:
    assert ra.frame_id == FRAME.frame_id and 0.0 <= ra.scene_risk <= 1.0
    RiskAssessment.model_validate_json(ra.model_dump_json())
    if ra.status is Status.FAILED:
        assert ra.failure_reason and not ra.objects
        return
    assert sorted(o.object_id for o in ra.objects) == sorted(IDS)
    assert sorted(o.rank for o in ra.objects) == list(range(1, len(IDS) + 1))
    assert all(0.0 <= o.risk <= 1.0 for o in ra.objects)


def test_good_answer_is_ok():
    text = json.dumps(GOOD)
    ra = parse(text, latency_s=1.5)
    check_invariants(ra)
    assert ra.status is Status.OK and ra.counters == {} and ra.raw_text == text
    assert ra.latency_s == 1.5 and ra.scene_risk == 0.6 and ra.teacher_id == "vlm:test"
    by = ra.by_id()
    assert by[2].rank == 1 and by[2].category is RiskCategory.LEAD_BRAKING
    assert by[5].rationale == "close left" and by[11].risk == 0.05
    assert [o.object_id for o in ra.objects] == [2, 5, 7, 11]  # ordered by rank


@pytest.mark.parametrize(
    "wrap",
    [
        "```json\n{}\n```",
        "Here is my assessment:\n```\n{}\n```\nLet me know if you need more.",
        "Sure! The risks are {} -- hope this helps.",
        "<think>object {{2}} is slow</think>\n{}",
    ],
)
def test_wrapped_answers(wrap):
    ra = parse(
        wrap.replace("{}", json.dumps(GOOD), 1)
        if "{{" not in wrap
        else wrap.format(json.dumps(GOOD))
    )
    check_invariants(ra)
    assert ra.status is Status.OK and ra.by_id()[2].risk == 0.8


def test_syntax_repairs():
    text = json.dumps(GOOD).replace("}]", "},]").replace('"', "'")
    ra = parse(text)
    check_invariants(ra)
    assert ra.status is Status.OK and ra.counters == {"json_repairs": 1}


def test_unknown_duplicate_and_bad_entries():
    ans = json.loads(json.dumps(GOOD))
    ans["objects"] += [{"id": 99, "risk": 0.9, "rank": 5}, dict(ans["objects"][0]), "junk"]
    ra = parse(json.dumps(ans))
    check_invariants(ra)
    assert ra.status is Status.PARTIAL
    assert ra.counters["unknown_ids"] == 1 and ra.counters["duplicate_ids"] == 1
    assert ra.counters["bad_entries"] == 1 and 99 not in ra.by_id()


def test_missing_objects_get_zero_risk_and_lowest_ranks():
    ans = {"scene_risk": 0.5, "objects": GOOD["objects"][:2]}
    ra = parse(json.dumps(ans))
    check_invariants(ra)
    by = ra.by_id()
    assert ra.status is Status.PARTIAL and ra.counters["missing"] == 2
    assert by[7].risk == 0.0 and by[7].flags == ["missing"] and {by[7].rank, by[11].rank} == {3, 4}
    assert by[2].rank == 1 and by[2].flags == []


def test_scores_clamped_strings_percentages_words():
    objs = [
        {"id": 2, "risk": 1.7, "rank": 1, "category": "Lead Braking"},
        {"id": 5, "risk": "45%", "rank": 2, "category": "CUT-IN"},
        {"id": 7, "risk": "0.3", "rank": 3, "category": "tailgating"},
        {"id": 11, "risk": -0.2, "rank": 4, "category": "none"},
    ]
    ra = parse(json.dumps({"scene_risk": "high", "objects": objs}))
    check_invariants(ra)
    by = ra.by_id()
    assert by[2].risk == 1.0 and "clamped" in by[2].flags and by[11].risk == 0.0
    assert by[5].risk == pytest.approx(0.45) and by[7].risk == pytest.approx(0.3)
    assert by[2].category is RiskCategory.LEAD_BRAKING and by[5].category is RiskCategory.CUT_IN
    assert by[7].category is RiskCategory.NONE and ra.counters["unknown_categories"] == 1
    assert ra.counters["clamped"] == 2 and ra.scene_risk == 0.8 and ra.status is Status.PARTIAL
    bad = parse(json.dumps({"objects": [{"id": 2, "risk": None}, {"id": 5, "risk": True}]}))
    assert bad.by_id()[2].flags[0] == "invalid_risk" and bad.counters["invalid_risk"] == 2
    assert bad.counters["scene_risk_missing"] == 1


@pytest.mark.parametrize(
    "ranks", [[1, 1, 2, 3], [None, None, None, None], [2, 3, 4, 5], ["1", "x", 3, 4], [1, 2, 3, 9]]
)
def test_bad_ranks_are_reranked_by_risk(ranks):
    objs = [dict(o) for o in GOOD["objects"]]
    for o, r in zip(objs, ranks, strict=True):
        o["rank"] = r
    objs[0]["risk"], objs[1]["risk"] = 0.1, 0.9  # 5 is now the riskiest
    ra = parse(json.dumps({"scene_risk": 0.5, "objects": objs}))
    check_invariants(ra)
    assert ra.by_id()[5].rank == 1 and "reranked" in ra.by_id()[5].flags
    assert ra.status is Status.PARTIAL and ra.counters["reranked"] == 4


def test_valid_ranks_over_a_subset_are_kept():
    objs = [dict(GOOD["objects"][1], rank=2), dict(GOOD["objects"][0], rank=1, risk=0.1)]
    ra = parse(json.dumps({"scene_risk": 0.5, "objects": objs}))
    assert ra.by_id()[2].rank == 1 and ra.by_id()[5].rank == 2 and "reranked" not in ra.counters


def test_failures_keep_raw_text():
    ra = parse("I cannot see any cars in this image.")
    assert ra.status is Status.FAILED and ra.failure_reason == "not_json"
    assert ra.raw_text.startswith("I cannot") and not ra.usable
    assert parse('{"verdict": "fine"}').failure_reason == "bad_schema"
    ra = parse(None, error="timeout", latency_s=0.3)
    assert ra.failure_reason == "timeout" and ra.raw_text is None and ra.latency_s == 0.3
    assert parse(None).failure_reason == "no_answer"
    assert parse("", error="http_500").failure_reason == "http_500"
    odd = parse(b"bytes", latency_s=None)  # type: ignore[arg-type]
    assert odd.failure_reason == "not_text" and odd.latency_s is None


def test_nested_answer_is_found():
    ra = parse(json.dumps({"answer": {"result": GOOD}, "note": {"objects": "n/a"}}))
    check_invariants(ra)
    assert ra.status is Status.OK and ra.scene_risk == 0.6


def test_top_level_list_and_aliases():
    ra = parse(json.dumps([{"object_id": "#2", "score": 0.5, "rank": 1}]))
    check_invariants(ra)
    assert ra.by_id()[2].risk == 0.5 and ra.counters["missing"] == 3


def test_position_answers_match_through_the_transform():
    tf = make_transform(RenderConfig())
    u, v = tf.to_pixel(np.array([20.5, 0.4]))  # near agent 2
    bu0, bv0 = tf.to_pixel(np.array([10.0, 4.5]))  # box around agent 5 (8, 3.5)
    bu1, bv1 = tf.to_pixel(np.array([6.0, 2.5]))
    far_u, far_v = tf.to_pixel(np.array([0.0, -20.0]))
    objs = [
        {"x": u, "y": v, "risk": 0.7, "rank": 1},
        {"bbox_2d": [bu0, bv0, bu1, bv1], "risk": 0.5, "rank": 2},
        {"x": far_u, "y": far_v, "risk": 0.4, "rank": 3},
        {"id": 99, "point": [u + 1, v], "risk": 0.3, "rank": 4},  # unknown id -> position -> dup
    ]
    ra = parse(json.dumps({"scene_risk": 0.7, "objects": objs}), transform=tf)
    check_invariants(ra)
    by = ra.by_id()
    assert by[2].risk == 0.7 and "by_position" in by[2].flags and by[5].risk == 0.5
    assert ra.counters["unknown_ids"] == 1 and ra.counters["duplicate_ids"] == 1
    no_tf = parse(json.dumps({"scene_risk": 0.7, "objects": objs}))
    assert no_tf.counters["unknown_ids"] == 4


def test_match_helpers():
    ids = [as_int(v) for v in (3, 3.0, "3", "#3", "car 3", 3.5, "1 2", True, None, "3.0", "1e30")]
    assert ids == [3, 3, 3, 3, 3, None, None, None, None, 3, None]
    assert [as_score(v) for v in ("50%", " 0.2 ", "nan", float("inf"), [], "x")] == [
        0.5,
        0.2,
        None,
        None,
        None,
        None,
    ]
    assert entry_pixel({"box": [0, 0, 10, "20"]}).tolist() == [5.0, 10.0]
    assert entry_pixel({"x": "a", "y": 1}) is None
    assert nearest_agent(FRAME, np.array([21.0, 1.0])) == 2
    assert nearest_agent(FRAME, np.array([21.0, 5.0])) is None
    assert nearest_agent(synthetic_frame([]), np.array([0.0, 0.0])) is None


def test_extract_json_prefers_the_answer():
    value, _ = extract_json('note {"a": 1} then {"objects": [], "scene_risk": 0}')
    assert value == {"objects": [], "scene_risk": 0}
    assert extract_json("[[[[" * 5000) is None
    assert extract_json("no json here") is None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_TREES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["id", "risk", "rank", "category", "objects", "scene_risk", "x", "y", "box", "z"]
            )
            | st.text(max_size=4),
            c,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_arbitrary_text(text):
    check_invariants(parse(text))


@FUZZ
@given(JSON_TREES)
def test_fuzz_arbitrary_json(tree):
    text = json.dumps(tree)
    check_invariants(parse(text, transform=make_transform(RenderConfig())))


SCALARS = st.none() | st.booleans() | st.floats() | st.integers(-5, 120) | st.text(max_size=6)


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "id": st.sampled_from([2, 5, 7, 11, 99, "5", "x", None, 2.0]),
                "risk": st.floats(-1, 2) | SCALARS | st.just("70%"),
                "rank": st.integers(-1, 6) | SCALARS,
                "category": st.sampled_from([c.value for c in RiskCategory]) | SCALARS,
                "rationale": SCALARS,
            }
        ),
        max_size=7,
    ),
    st.floats(-1, 2) | SCALARS,
    st.sampled_from(["{}", "```json\n{}\n```", "Answer: {} Done.", "{}\n\n{{}}", "{}]"]),
    st.booleans(),
)
def test_fuzz_near_valid_answers(objects, scene, wrap, trailing_comma):
    body = json.dumps({"scene_risk": scene, "objects": objects})
    if trailing_comma:
        body = body.replace("}]", "},]")
    check_invariants(parse(wrap.replace("{}", body, 1)))
