"""The VLM teacher end to end on recorded frames, through a scripted local server."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from rsd.data.synthetic import synthetic_agent, synthetic_frame
from rsd.teacher.backends import VLMRequest, VLMResponse
from rsd.teacher.prompt import ANSWER_SCHEMA, PROMPT_VERSION, build_prompt
from rsd.teacher.render import RenderConfig, make_transform
from rsd.teacher.schema import RiskCategory, Status, Teacher
from rsd.teacher.vlm import VLMTeacher, make_request


@pytest.fixture(scope="module")
def frames():
    from rsd.sim.recorder import record_episode

    return record_episode("cut_in", 1).frames[::8][:5]


def test_prompt_carries_ego_speed_offset_and_objects():
    frame = synthetic_frame(
        [
            synthetic_agent(4, 12.0, 3.5, vx=18.0, lane_relation=1),
            synthetic_agent(9, -20.0, 0.0, vx=30.0),
        ],
        ego_speed=22.5,
    )
    frame.ego.lane_offset = -0.42
    system, user = build_prompt(frame)
    assert "JSON" in system
    assert "22.5 m/s (81 km/h)" in user and "-0.42 m" in user
    rows = re.findall(r"^(\d+) \| (\w+) \| ([-+\d.]+) \| ([-+\d.]+) \|", user, re.MULTILINE)
    assert rows == [("4", "car", "+12.0", "+3.5"), ("9", "car", "-20.0", "+0.0")]
    assert "1 lane to the left" in user and "ego lane" in user
    for c in RiskCategory:
        assert c.value in user
    assert PROMPT_VERSION == "risk-v1"
    items = ANSWER_SCHEMA["properties"]["objects"]["items"]
    assert items["properties"]["category"]["enum"] == [c.value for c in RiskCategory]
    assert "no other road users" in build_prompt(synthetic_frame([]))[1]


class ListBackend:
    """In-process backend answering from a list (no HTTP)."""

    name = "list:test"

    def __init__(self, answers):
        self.answers = answers
        self.seen: list[VLMRequest] = []

    def generate(self, requests):
        self.seen += requests
        if not self.answers:
            return []
        return [self.answers[i % len(self.answers)] for i in range(len(requests))]


def test_teacher_protocol_and_failure_mapping():
    frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0, vx=15.0)])
    good = json.dumps({"scene_risk": 0.4, "objects": [{"id": 1, "risk": 0.4, "rank": 1}]})
    backend = ListBackend([VLMResponse(good, latency_s=0.2), VLMResponse(None, "http_429")])
    teacher = VLMTeacher(backend)
    assert isinstance(teacher, Teacher) and teacher.teacher_id == "vlm:list:test"
    assert teacher.prompt_version == PROMPT_VERSION and teacher.assess([]) == []
    ok, failed = teacher.assess([frame, frame])
    assert ok.usable and ok.by_id()[1].risk == 0.4 and ok.latency_s == 0.2
    assert failed.status is Status.FAILED and failed.failure_reason == "http_429"
    assert backend.seen[0].json_schema == ANSWER_SCHEMA
    with pytest.raises(RuntimeError):
        VLMTeacher(ListBackend([])).assess([frame])  # a broken backend is a bug, not data


def test_make_request_png_matches_transform():
    frame = synthetic_frame([synthetic_agent(1, 10.0, 0.0)])
    req, tf = make_request(frame, RenderConfig(size_px=200))
    img = Image.open(io.BytesIO(req.image_png))
    assert img.size == (tf.width, tf.height) and tf.height == 200


def test_end_to_end_on_recorded_frames(frames, monkeypatch):
    pytest.importorskip("openai")
    from rsd.teacher.backends.openai_backend import OpenAIBackend, OpenAIConfig
    from tests.teacher.chat_server import ChatServer, Reply, answer_for, image_urls, user_text

    monkeypatch.setenv("RSD_TEST_VLM_KEY", "sk-vlm-test-key")
    tf = make_transform(RenderConfig())

    def script(body: dict, n: int) -> Reply:
        text = user_text(body)
        idx = speeds.index(re.search(r"speed: ([\d.]+) m/s", text)[1])
        if idx == 0:
            return Reply(answer_for(body))
        if idx == 1:
            return Reply(f"Here you go:\n```json\n{answer_for(body)}\n```\nDrive safe!")
        if idx == 2:
            return Reply("I am unable to assess this scene.")
        if idx == 3:
            return Reply(status=500)
        rows = re.findall(r"^(\d+) \| \w+ \| ([-+\d.]+) \| ([-+\d.]+) \|", text, re.MULTILINE)
        objs = []  # answer by position: box of +-1 m around each centre, in pixels
        for rank, (_, x, y) in enumerate(rows, start=1):
            (u0, v0), (u1, v1) = tf.to_pixel(
                np.array([[float(x) + 1, float(y) + 1], [float(x) - 1, float(y) - 1]])
            )
            objs.append({"bbox_2d": [u0, v0, u1, v1], "risk": 0.1 * rank, "rank": rank})
        return Reply(json.dumps({"scene_risk": 0.5, "objects": objs}))

    speeds = [f"{f.ego.speed:.1f}" for f in frames]
    assert len(set(speeds)) == len(frames)
    cfg = OpenAIConfig(
        max_retries=1, backoff_s=0.01, timeout_s=2.0, concurrency=4, api_key_env="RSD_TEST_VLM_KEY"
    )
    with ChatServer(script) as srv:
        backend = OpenAIBackend(dataclasses.replace(cfg, base_url=srv.url))
        teacher = VLMTeacher(backend)
        out = teacher.assess(frames)
    assert [a.frame_id for a in out] == [f.frame_id for f in frames]
    assert all(a.teacher_id == f"vlm:openai:{cfg.model}" for a in out)
    ok, fenced, prose, err, by_pos = out
    for a, f in ((ok, frames[0]), (fenced, frames[1])):
        assert a.status is Status.OK, a.counters
        assert sorted(a.by_id()) == sorted(ag.id for ag in f.agents)
    assert prose.status is Status.FAILED and prose.failure_reason == "not_json"
    assert err.failure_reason == "http_500" and err.raw_text is None
    listed = {ag.id for ag in frames[4].agents}  # boxes off the image map back too
    assert by_pos.counters.get("by_position", 0) == len(listed) and by_pos.usable
    assert srv.count == len(frames) + 1  # the 500 was retried once
    for body in srv.bodies:
        [url] = image_urls(body)
        png = base64.b64decode(url.removeprefix("data:image/png;base64,"))
        assert Image.open(io.BytesIO(png)).size == (tf.width, tf.height)
        assert body["response_format"]["json_schema"]["schema"] == ANSWER_SCHEMA
    texts = [user_text(b) for b in srv.bodies]
    for f in frames:
        offset = f"{f.ego.lane_offset:+.2f} m".replace("-0.00", "+0.00")
        assert any(f"{f.ego.speed:.1f} m/s" in t and offset in t for t in texts)
