"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

``ChatServer(script)`` listens on a free port in a background thread
(``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive) and answers
``POST /v1/chat/completions`` with a proper ``chat.completion`` JSON, or with an OpenAI-style
error body, as the script says. The script is a :class:`Reply`, a list of replies (the n-th
request gets the n-th, the last one repeats), or a function ``(body, n) -> Reply``. Every
request body and its headers (names lower-cased) are kept, and the most requests in flight.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers to one request."""

    content: str | None = '{"scene_risk": 0.0, "objects": []}'
    status: int = 200
    delay_s: float = 0.0
    """Wait this long before answering (a slow model)."""
    message: str = "scripted error"
    """Error message for a non-200 status."""
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"


Script = Reply | Sequence[Reply] | Callable[[dict, int], Reply]


class ChatServer:
    """Context manager: ``with ChatServer(script) as srv: ... srv.url ... srv.count``."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = Reply() if script is None else script
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.bodies)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, body: dict, n: int) -> Reply:
        s = self.script
        if isinstance(s, Reply):
            return s
        if callable(s):
            return s(body, n)
        return s[min(n, len(s) - 1)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found", "code": 404}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "body is not JSON", "code": 400}})
                    return
                with server._lock:
                    n = len(server.bodies)
                    server.bodies.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    reply = server._reply_for(body, n)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._send(reply.status, _payload(reply, body, n), reply.headers)
                finally:
                    with server._lock:
                        server._in_flight -= 1

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (time-out)

        return Handler


def _payload(reply: Reply, body: dict, n: int) -> dict:
    if reply.status != 200:
        kind = "invalid_request_error" if reply.status < 500 else "server_error"
        return {"error": {"message": reply.message, "type": kind, "code": reply.status}}
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
    }


def user_text(body: dict) -> str:
    """The text parts of the request's user message."""
    for m in body.get("messages", []):
        if m.get("role") == "user":
            c = m["content"]
            if isinstance(c, str):
                return c
            return "\n".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


def image_urls(body: dict) -> list[str]:
    """The ``image_url`` URLs of the request's user message."""
    return [
        p["image_url"]["url"]
        for m in body.get("messages", [])
        if m.get("role") == "user" and isinstance(m["content"], list)
        for p in m["content"]
        if p.get("type") == "image_url"
    ]


def listed_ids(body: dict) -> list[int]:
    """Object ids in the prompt's object table (rows ``id | class | ...``)."""
    return [int(m) for m in re.findall(r"^(\d+) \|", user_text(body), flags=re.MULTILINE)]


def answer_for(body: dict) -> str:
    """A well-formed answer naming every listed object: risk falls with the row index."""
    ids = listed_ids(body)
    objs = [
        {
            "id": i,
            "risk": round(0.9 / (k + 1), 3),
            "rank": k + 1,
            "category": "following" if k == 0 else "none",
            "rationale": f"object {i}",
        }
        for k, i in enumerate(ids)
    ]
    return json.dumps({"scene_risk": 0.9 if ids else 0.0, "objects": objs})
