"""VLM backends: the request/response types and the backend protocol (:mod:`.base`), an
OpenAI-compatible HTTP client (:mod:`.openai_backend`) and a local ``transformers`` model
(:mod:`.hf_backend`). Backend modules import their heavy dependencies lazily."""

from rsd.teacher.backends.base import VLMBackend, VLMRequest, VLMResponse

__all__ = ["VLMBackend", "VLMRequest", "VLMResponse"]
