"""Any OpenAI-compatible chat endpoint as a VLM backend (vLLM, SGLang, Ollama, LM Studio,
hosted APIs), through the ``openai`` package.

* The scene PNG goes as a base64 data URL in an ``image_url`` content part, before the text.
* Structured output: ``response_format={"type": "json_schema", ...}`` when the config and the
  request ask for it. A server that rejects it (HTTP 400/422 naming ``response_format``,
  ``json_schema``, ``guided``...) gets the same request once more without it, and this backend
  remembers not to send it again; the parser then extracts JSON from plain text.
* Retries are ours, not the client's (``max_retries=0`` there), so that they are testable:
  time-outs, connection errors, HTTP 408/429/5xx are retried up to ``max_retries`` times with
  exponential back-off ``backoff_s * 2**k`` (capped at ``max_backoff_s``) times a jitter
  factor in [1, 1.25) from a seeded RNG; a ``Retry-After`` header lengthens the wait.
* At most ``concurrency`` requests are in flight (a thread pool; the client is thread-safe).
* Nothing raises on server trouble: failures come back as ``VLMResponse(text=None,
  error=reason)`` with reasons ``timeout``, ``connection``, ``http_<code>``, ``empty``,
  ``bad_response``.

The API key is read from the environment variable named by ``api_key_env`` (``"EMPTY"`` when
unset, which local servers accept). It is never logged, and never part of a repr or an error.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rsd.teacher.backends.base import VLMRequest, VLMResponse

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "EMPTY"
"""API key sent when the configured environment variable is unset (local servers)."""
JITTER = 0.25
"""Back-off waits are multiplied by a factor drawn uniformly from [1, 1 + JITTER)."""
_SCHEMA_COMPLAINT = re.compile(
    r"response_format|json_schema|guided|structured|grammar|schema", re.IGNORECASE
)


@dataclass(frozen=True)
class OpenAIConfig:
    """Where the server is and how to talk to it."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""
    timeout_s: float = 60.0
    """Per-request time-out (connect, and each wait for data from the server)."""
    max_retries: int = 4
    """Retries after the first attempt, on time-outs, connection errors, 408/429/5xx."""
    backoff_s: float = 0.5
    """First back-off wait; doubles with every retry."""
    concurrency: int = 8
    """Requests in flight at most."""
    json_schema: bool = True
    """Ask for structured output (falls back to plain text if the server refuses)."""
    temperature: float = 0.0
    max_tokens: int = 1024
    max_backoff_s: float = 30.0
    """Cap on one back-off wait (a Retry-After header included)."""
    seed: int = 0
    """Seed of the jitter RNG."""


def _safe_url(url: str) -> str:
    """``url`` without user info (``user:password@``), for logs and reprs."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=host))
    except ValueError:
        return "<url>"


def data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def build_messages(req: VLMRequest) -> list[dict[str, Any]]:
    """Chat messages for one request: the system text, then the image and the user text."""
    return [
        {"role": "system", "content": req.system},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_url(req.image_png)}},
                {"type": "text", "text": req.user},
            ],
        },
    ]


class OpenAIBackend:
    """:class:`~rsd.teacher.backends.base.VLMBackend` over an OpenAI-compatible server."""

    def __init__(self, cfg: OpenAIConfig | None = None) -> None:
        try:
            import openai
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the OpenAI backend needs `pip install 'rsd[vlm]'`") from e
        cfg = cfg or OpenAIConfig()
        if cfg.concurrency < 1 or cfg.max_retries < 0 or cfg.timeout_s <= 0:
            raise ValueError("concurrency >= 1, max_retries >= 0 and timeout_s > 0 are needed")
        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        self._openai = openai
        key = os.environ.get(cfg.api_key_env) or PLACEHOLDER_KEY
        self._redact: Callable[[str], str] = (
            (lambda s: s) if key == PLACEHOLDER_KEY else (lambda s: s.replace(key, "***"))
        )
        self._client = openai.OpenAI(
            base_url=cfg.base_url, api_key=key, timeout=cfg.timeout_s, max_retries=0
        )
        self._schema_ok = cfg.json_schema
        self._rng = random.Random(cfg.seed)
        self._lock = threading.Lock()
        self.sleep: Callable[[float], None] = time.sleep
        """How back-off waits are spent (replaceable in tests)."""

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(name={self.name!r}, base_url={_safe_url(self.cfg.base_url)!r}, "
            f"concurrency={self.cfg.concurrency}, structured_output={self._schema_ok})"
        )

    @property
    def structured_output(self) -> bool:
        """Whether requests still carry ``response_format`` (false after a fallback)."""
        return self._schema_ok

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate(self, requests: Sequence[VLMRequest]) -> list[VLMResponse]:
        """One response per request, same order; at most ``concurrency`` in flight."""
        n = len(requests)
        if n == 0:
            return []
        workers = min(self.cfg.concurrency, n)
        if workers == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rsd-vlm") as pool:
            return list(pool.map(self._one, requests))

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        with self._lock:
            u = self._rng.random()
        delay = min(self.cfg.backoff_s * 2.0 ** (retry - 1), self.cfg.max_backoff_s)
        delay *= 1.0 + JITTER * u
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cfg.max_backoff_s))
        return delay

    def _classify(self, e: Exception) -> tuple[str, bool, float | None]:
        """``(reason, retryable, retry_after_s)`` for an exception from the client."""
        oa = self._openai
        if isinstance(e, oa.APITimeoutError):
            return "timeout", True, None
        if isinstance(e, oa.APIConnectionError):
            return "connection", True, None
        if isinstance(e, oa.APIStatusError):
            code = int(e.status_code)
            retry_after = None
            try:
                value = e.response.headers.get("retry-after")
                retry_after = float(value) if value is not None else None
            except (AttributeError, TypeError, ValueError):
                pass
            return f"http_{code}", code in (408, 429) or code >= 500, retry_after
        if isinstance(e, oa.APIResponseValidationError | ValueError):
            return "bad_response", False, None
        return f"error_{type(e).__name__}", False, None

    def _one(self, req: VLMRequest) -> VLMResponse:
        """One request with retries; never raises."""
        t0 = time.perf_counter()
        attempts = retries = 0
        while True:
            attempts += 1
            use_schema = req.json_schema is not None and self._schema_ok
            kwargs: dict[str, Any] = {
                "model": self.cfg.model,
                "messages": build_messages(req),
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens,
            }
            if use_schema:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": req.json_schema, "strict": True},
                }
            try:
                completion = self._client.chat.completions.create(**kwargs)
            except Exception as e:  # classified below; nothing escapes
                reason, retryable, retry_after = self._classify(e)
                if use_schema and reason in ("http_400", "http_422"):
                    message = str(getattr(e, "message", "") or e)
                    if _SCHEMA_COMPLAINT.search(message):
                        self._fall_back(message)
                        continue
                if retryable and retries < self.cfg.max_retries:
                    retries += 1
                    delay = self._backoff(retries, retry_after)
                    log.debug("%s: %s, retry %d in %.2f s", self.name, reason, retries, delay)
                    self.sleep(delay)
                    continue
                log.warning(
                    "%s: request failed (%s) after %d attempt(s)", self.name, reason, attempts
                )
                return VLMResponse(None, reason, time.perf_counter() - t0, attempts)
            text, reason = self._text_of(completion)
            return VLMResponse(text, reason, time.perf_counter() - t0, attempts)

    def _fall_back(self, message: str) -> None:
        with self._lock:
            first = self._schema_ok
            self._schema_ok = False
        if first:
            log.warning(
                "%s: server rejected response_format (%s); continuing with plain-text answers",
                self.name,
                self._redact(message)[:200],
            )

    def _text_of(self, completion: Any) -> tuple[str | None, str | None]:
        try:
            choice = completion.choices[0]
            text = choice.message.content
        except (AttributeError, IndexError, TypeError):
            return None, "bad_response"
        if not isinstance(text, str) or not text.strip():
            return None, "empty"
        if getattr(choice, "finish_reason", None) == "length":
            log.debug("%s: answer cut at max_tokens=%d", self.name, self.cfg.max_tokens)
        return text, None
