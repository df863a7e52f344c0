"""The OpenAI-compatible backend against a real local HTTP server: payload, retries, back-off,
time-outs, structured-output fallback, concurrency bound, and an API key that never leaks."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import pytest

pytest.importorskip("openai")

from rsd.teacher.backends import VLMBackend, VLMRequest  # noqa: E402
from rsd.teacher.backends.openai_backend import OpenAIBackend, OpenAIConfig  # noqa: E402
from tests.teacher.chat_server import ChatServer, Reply, image_urls, user_text  # noqa: E402

KEY_ENV = "RSD_TEST_OPENAI_KEY"
KEY = "sk-test-Zq8VxDistinctive4242"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.fixture(autouse=True)
def api_key(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text  # whatever a test did, the key was never logged


def request(user: str = "speed 20.0 m/s", schema: dict | None = SCHEMA) -> VLMRequest:
    return VLMRequest(image_png=PNG, system="You judge risk.", user=user, json_schema=schema)


def backend(url: str, **kw) -> OpenAIBackend:
    kw = {"timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.01, "api_key_env": KEY_ENV} | kw
    b = OpenAIBackend(OpenAIConfig(base_url=url, model="test/vlm", **kw))
    b.waits = []
    b.sleep = lambda s: (b.waits.append(s), time.sleep(s))
    return b


def test_payload_image_schema_and_key():
    with ChatServer(Reply('{"a": 1}')) as srv:
        b = backend(srv.url)
        assert isinstance(b, VLMBackend) and b.name == "openai:test/vlm"
        [r] = b.generate([request()])
    assert r.ok and r.text == '{"a": 1}' and r.attempts == 1 and r.latency_s > 0
    body, headers = srv.bodies[0], srv.headers[0]
    assert body["model"] == "test/vlm" and body["temperature"] == 0.0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["messages"][0] == {"role": "system", "content": "You judge risk."}
    [url] = image_urls(body)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG
    assert user_text(body) == "speed 20.0 m/s"
    assert headers.get("authorization") == f"Bearer {KEY}"
    assert KEY not in repr(b) and KEY not in str(b.cfg) and KEY not in repr(request())


def test_no_key_in_env_sends_placeholder(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with ChatServer() as srv:
        b = backend(srv.url)
        b.generate([request(schema=None)])
    assert srv.headers[0]["authorization"] == "Bearer EMPTY"
    assert "response_format" not in srv.bodies[0]


def test_429_then_success_retries_with_retry_after():
    script = [Reply(status=429, headers={"Retry-After": "0.05"}), Reply("fine")]
    with ChatServer(script) as srv:
        b = backend(srv.url)
        [r] = b.generate([request()])
    assert r.text == "fine" and r.error is None and r.attempts == 2 and srv.count == 2
    assert len(b.waits) == 1 and 0.05 <= b.waits[0] < 0.1


def test_500s_exhaust_retries_with_exponential_backoff():
    with ChatServer(Reply(status=500, message=f"boom {KEY}")) as srv:
        b = backend(srv.url, max_retries=3, backoff_s=0.02)
        [r] = b.generate([request()])
    assert r.text is None and r.error == "http_500" and r.attempts == 4 and srv.count == 4
    assert len(b.waits) == 3
    for k, w in enumerate(b.waits):
        assert 0.02 * 2**k <= w < 0.02 * 2**k * 1.25
    assert KEY not in repr(r)


def test_jitter_is_seeded():
    def waits(seed: int) -> list[float]:
        with ChatServer(Reply(status=503)) as srv:
            b = backend(srv.url, max_retries=2, backoff_s=0.001, seed=seed)
            b.generate([request()])
        return b.waits

    assert waits(1) == waits(1) != waits(2)


def test_slow_answer_times_out():
    with ChatServer(Reply("late", delay_s=3.0)) as srv:
        b = backend(srv.url, max_retries=1)
        t0 = time.perf_counter()
        [r] = b.generate([request()])
        elapsed = time.perf_counter() - t0
    assert r.error == "timeout" and r.text is None and r.attempts == 2 and srv.count == 2
    assert elapsed < 2.0  # two 0.3 s time-outs and a short back-off, not a 3 s answer


def test_response_format_rejected_falls_back_once_and_remembers(caplog):
    def script(body: dict, n: int) -> Reply:
        if "response_format" in body:
            return Reply(status=400, message=f"response_format json_schema unsupported ({KEY})")
        return Reply("Sure: {'a': 1}")

    with ChatServer(script) as srv:
        b = backend(srv.url)
        [r] = b.generate([request()])
        assert r.text == "Sure: {'a': 1}" and r.attempts == 2 and not b.structured_output
        [r2] = b.generate([request()])
    assert r2.attempts == 1 and srv.count == 3 and "response_format" not in srv.bodies[2]
    assert "rejected response_format" in caplog.text and "***" in caplog.text


def test_other_client_errors_are_not_retried():
    script = lambda body, n: Reply(status=400 if "bad" in user_text(body) else 401)  # noqa: E731
    with ChatServer(script) as srv:
        b = backend(srv.url)
        r400, r401 = b.generate([request("bad model"), request("who")])
    assert (r400.error, r401.error) == ("http_400", "http_401") and srv.count == 2
    assert b.structured_output  # a 400 not about response_format changes nothing


def test_connection_refused_and_empty_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [r] = backend(f"http://127.0.0.1:{port}/v1", max_retries=1).generate([request()])
    assert r.error == "connection" and r.attempts == 2
    with ChatServer([Reply(None), Reply("   ")]) as srv:
        rs = backend(srv.url).generate([request(), request()])
    assert [r.error for r in rs] == ["empty", "empty"] and srv.count == 2


def test_concurrency_bound_and_order():
    def script(body: dict, n: int) -> Reply:
        return Reply(json.dumps({"echo": user_text(body)}), delay_s=0.08)

    with ChatServer(script) as srv:
        b = backend(srv.url, concurrency=3)
        reqs = [request(f"req {i}") for i in range(9)]
        t0 = time.perf_counter()
        rs = b.generate(reqs)
        elapsed = time.perf_counter() - t0
    assert [json.loads(r.text)["echo"] for r in rs] == [f"req {i}" for i in range(9)]
    assert srv.max_in_flight == 3 and elapsed < 9 * 0.08
    assert b.generate([]) == []


def test_generate_never_raises_on_garbage_from_the_server():
    with ChatServer(Reply("x")) as srv:
        b = backend(srv.url, max_retries=0)
        b._client.chat.completions.create = lambda **kw: (_ for _ in ()).throw(KeyError("k"))
        [r] = b.generate([request()])
    assert r.error == "error_KeyError" and r.text is None
    assert threading.active_count() < 50
