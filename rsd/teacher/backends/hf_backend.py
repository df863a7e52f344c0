"""A local ``transformers`` VLM (a Qwen2.5-VL-class model) loaded from a directory.

:class:`HFBackend` loads the processor and the image-text-to-text model from a local directory
(``local_files_only=True``: nothing is downloaded), turns each :class:`VLMRequest` into a chat
(system turn + user turn with the image), generates a batch at a time with left padding and
decodes only the new tokens. Model trouble (a tokenizer or generation error, an undecodable
image) comes back as ``VLMResponse(error=...)``; a missing or unloadable model directory raises
at construction.

``transformers`` is imported lazily (it is in the ``vlm`` extra), so ``rsd`` works without it.

Images without torchvision: in ``transformers`` 5.x the Qwen-VL processors also carry a video
processor that needs torchvision, so ``AutoProcessor`` fails where torchvision is missing (as on
CPU-only machines without a torchvision build). We only send images, so the backend then falls
back to :class:`_ImageTextProcessor`: the checkpoint's own tokenizer, chat template and image
processor, with the image placeholder expanded to one token per merged patch as the Qwen-VL
processors do.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rsd.teacher.backends.base import VLMRequest, VLMResponse

log = logging.getLogger(__name__)

DType = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class HFConfig:
    """How to load and run a local ``transformers`` VLM."""

    model_dir: str
    """Directory written by ``save_pretrained`` (or a downloaded hub snapshot)."""
    device: str = "auto"
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``..."""
    dtype: DType = "auto"
    """``auto``: float32 on CPU, the checkpoint's own dtype on an accelerator."""
    batch_size: int = 4
    max_new_tokens: int = 512
    do_sample: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"unknown dtype {self.dtype!r}")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_dtype(dtype: DType, device: str) -> Any:
    """The ``dtype`` argument for ``from_pretrained``."""
    import torch

    if dtype == "auto":
        return torch.float32 if device == "cpu" else "auto"
    return getattr(torch, dtype)


def _dtype_kwarg(transformers: Any) -> str:
    """``from_pretrained`` takes ``dtype`` since 4.56, ``torch_dtype`` before."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _model_class(transformers: Any) -> Any:
    """The auto class for image-text-to-text models (``AutoModelForVision2Seq`` on old versions)."""
    cls = getattr(transformers, "AutoModelForImageTextToText", None)
    if cls is None:  # transformers < 4.46
        cls = transformers.AutoModelForVision2Seq
    return cls


class _ImageTextProcessor:
    """Images-and-text stand-in for a Qwen-VL processor (see the module docstring).

    Callable like the real processor for what the backend needs: ``apply_chat_template`` to a
    prompt string and ``__call__(text=, images=, padding=True, return_tensors="pt")`` to model
    inputs (``input_ids``, ``attention_mask``, ``pixel_values``, ``image_grid_thw``,
    ``mm_token_type_ids``).
    """

    def __init__(self, tokenizer: Any, image_processor: Any, chat_template: str | None) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            raise ValueError("the checkpoint has no chat template")
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no image token {self.image_token!r}")
        self.merge_size = int(getattr(image_processor, "merge_size", 1) or 1)

    @classmethod
    def from_dir(cls, model_dir: Path, transformers: Any, **kwargs: Any) -> _ImageTextProcessor:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
        image_processor = transformers.AutoImageProcessor.from_pretrained(str(model_dir), **kwargs)
        return cls(tokenizer, image_processor, _read_chat_template(model_dir))

    def apply_chat_template(self, messages: list[dict], **kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, **kwargs
        )

    def __call__(
        self,
        *,
        text: list[str],
        images: list[Any],
        padding: bool = True,
        return_tensors: str = "pt",
    ) -> dict[str, Any]:
        import torch

        vision = self.image_processor(images=images, return_tensors=return_tensors)
        grid = vision.get("image_grid_thw")
        if grid is None:
            raise ValueError("the image processor gives no image_grid_thw (not a Qwen-VL model?)")
        per_image = [int(g.prod()) // self.merge_size**2 for g in grid]
        expanded, k = [], 0
        for prompt in text:  # one placeholder per image, in order, as the chat template wrote
            pieces = prompt.split(self.image_token)
            out = pieces[0]
            for piece in pieces[1:]:
                out += self.image_token * per_image[k] + piece
                k += 1
            expanded.append(out)
        if k != len(per_image):
            raise ValueError(f"{len(per_image)} images but {k} image placeholders in the prompts")
        enc = self.tokenizer(expanded, padding=padding, return_tensors=return_tensors)
        enc = dict(enc)
        enc["mm_token_type_ids"] = (enc["input_ids"] == self.image_token_id).to(torch.int32)
        enc.update(vision)
        return enc

    def batch_decode(self, ids: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(ids, **kwargs)


def _read_chat_template(model_dir: Path) -> str | None:
    """The processor chat template saved next to the model, if any (``.jinja`` or ``.json``)."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    js = model_dir / "chat_template.json"
    if js.is_file():
        return json.loads(js.read_text(encoding="utf-8")).get("chat_template")
    return None


def _decode_png(data: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def _short_error(code: str, exc: BaseException) -> str:
    """``<code>:<ExceptionType>: <first line of the message>``, at most 200 characters: a
    machine-readable prefix (what parsers keep as the failure reason) plus the detail."""
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else ""
    return f"{code}:{type(exc).__name__}: {msg}"[:200]


class HFBackend:
    """A :class:`~rsd.teacher.backends.base.VLMBackend` running a local ``transformers`` VLM.

    Raises at construction when ``transformers`` is missing (``ImportError``), the directory
    or its ``config.json`` does not exist (``FileNotFoundError``) or the model or processor
    cannot be loaded from it (``RuntimeError``); every message names the directory.
    Requests go to the model ``cfg.batch_size`` at a time; a request's ``latency_s`` is the
    wall time of its batch, and a batch whose ``generate`` fails is retried one request at a
    time (``attempts`` = 2), so that one bad request or a batch too large for memory does not
    fail the others. ``VLMRequest.json_schema`` is not enforced (plain ``generate`` has no
    constrained decoding); the prompt must ask for JSON itself.
    """

    def __init__(self, cfg: HFConfig) -> None:
        self.cfg = cfg
        model_dir = Path(cfg.model_dir).expanduser()
        self.name = f"transformers:{model_dir.name}"
        try:
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the transformers backend needs the 'vlm' extra: pip install 'rsd[vlm]'"
            ) from exc
        if not model_dir.is_dir():
            raise FileNotFoundError(f"VLM model directory not found: {model_dir}")
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a transformers model directory (no config.json)"
            )
        self.model_dir = model_dir
        self.device = resolve_device(cfg.device)
        kwargs = {"local_files_only": True, "trust_remote_code": cfg.trust_remote_code}
        self.processor = self._load_processor(transformers, kwargs)
        dtype = _resolve_dtype(cfg.dtype, self.device)
        try:
            model = _model_class(transformers).from_pretrained(
                str(model_dir), **{_dtype_kwarg(transformers): dtype}, **kwargs
            )
            self.model = model.to(self.device).eval()
        except Exception as exc:
            raise RuntimeError(f"could not load the VLM from {model_dir}: {exc}") from exc
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # decoder-only batch generation: pad on the left
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _load_processor(self, transformers: Any, kwargs: dict[str, Any]) -> Any:
        """``AutoProcessor``; the images-only fallback where that cannot be built."""
        first: Exception | None = None
        try:
            processor = transformers.AutoProcessor.from_pretrained(str(self.model_dir), **kwargs)
            if hasattr(processor, "image_processor") and hasattr(processor, "tokenizer"):
                return processor
            first = TypeError(f"AutoProcessor gave a {type(processor).__name__}")
        except Exception as exc:  # e.g. ImportError: the video processor needs torchvision
            first = exc
        try:
            processor = _ImageTextProcessor.from_dir(self.model_dir, transformers, **kwargs)
        except Exception as exc:
            raise RuntimeError(
                f"could not load a processor from {self.model_dir}: {first}; "
                f"images-only fallback: {exc}"
            ) from exc
        log.info(
            "AutoProcessor unavailable for %s (%s); using the images-only processor",
            self.model_dir,
            first,
        )
        return processor

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[VLMRequest]) -> list[VLMResponse]:
        """One response per request, in order, ``cfg.batch_size`` requests per ``generate``."""
        out: list[VLMResponse] = []
        for start in range(0, len(requests), self.cfg.batch_size):
            out.extend(self._generate_batch(requests[start : start + self.cfg.batch_size]))
        return out

    def messages(self, request: VLMRequest) -> list[dict[str, Any]]:
        """The chat for one request: a system turn and a user turn with the image first."""
        return [
            {"role": "system", "content": [{"type": "text", "text": request.system}]},
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": request.user}],
            },
        ]

    def _generate_batch(self, batch: Sequence[VLMRequest]) -> list[VLMResponse]:
        """One ``generate`` call for the batch; if it fails, one call per request, so that a
        request that breaks the model (or a batch too large for memory) fails alone."""
        t0 = time.perf_counter()
        responses: list[VLMResponse] = [VLMResponse(text=None) for _ in batch]
        prepared: dict[int, tuple[str, Any]] = {}
        for i, req in enumerate(batch):
            try:
                image = _decode_png(req.image_png)
            except Exception as exc:  # a bad image fails its own request only
                responses[i].error = _short_error("bad_image", exc)
                continue
            try:
                prompt = self.processor.apply_chat_template(
                    self.messages(req), tokenize=False, add_generation_prompt=True
                )
            except Exception as exc:
                responses[i].error = _short_error("template_error", exc)
                continue
            prepared[i] = (prompt, image)
        groups = [list(prepared)] if prepared else []
        while groups:
            slots = groups.pop(0)
            try:
                texts = self._run([prepared[i][0] for i in slots], [prepared[i][1] for i in slots])
            except Exception as exc:  # model trouble never raises out of generate()
                log.warning("generation failed for %d request(s): %s", len(slots), exc)
                if len(slots) > 1:
                    groups.extend([i] for i in slots)
                    for i in slots:
                        responses[i].attempts += 1
                else:
                    responses[slots[0]].error = _short_error("generate_error", exc)
                continue
            for i, text in zip(slots, texts, strict=True):
                responses[i].text = text
                if not text.strip():
                    responses[i].error = "empty"
        latency = time.perf_counter() - t0
        for r in responses:
            r.latency_s = latency
        return responses

    def _run(self, prompts: list[str], images: list[Any]) -> list[str]:
        """Tokenise, generate, decode the new tokens only."""
        import torch

        inputs = self.processor(text=prompts, images=images, padding=True, return_tensors="pt")
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": self.cfg.max_new_tokens,
            "do_sample": self.cfg.do_sample,
        }
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token_id is not None:
            gen_kwargs["pad_token_id"] = tokenizer.pad_token_id
        with torch.inference_mode():
            ids = self.model.generate(**inputs, **gen_kwargs)
        new = ids[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(
            new, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
