"""The ``transformers`` backend on a tiny random Qwen2.5-VL built by the test (no downloads).

The model is built once per module (:mod:`tests.teacher.tiny_vlm`) and loaded through the
backend's ordinary ``from_pretrained`` code; random weights answer garbage, which is exactly
what the parser must survive.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsd.data.synthetic import random_frame
from rsd.teacher.backends.base import VLMBackend, VLMRequest
from rsd.teacher.backends.hf_backend import HFBackend, HFConfig, resolve_device
from rsd.teacher.render import RenderConfig, render_scene
from rsd.teacher.schema import Status
from tests.teacher.tiny_vlm import MERGE_SIZE, build_tiny_vlm

pytest.importorskip("transformers")  # the vlm extra; the modules above import it lazily

SYSTEM = "You judge driving risk from a top-down picture. Answer with JSON only."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        t0 = time.perf_counter()
        out = build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2.5-vl")
        print(f"tiny VLM built in {time.perf_counter() - t0:.2f} s")
    return out


@pytest.fixture(scope="module")
def backend(tiny_dir: Path) -> HFBackend:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        t0 = time.perf_counter()
        be = HFBackend(HFConfig(str(tiny_dir), device="cpu", batch_size=2, max_new_tokens=16))
        print(f"tiny VLM loaded in {time.perf_counter() - t0:.2f} s")
    return be


@pytest.fixture(scope="module")
def frames() -> list:
    return [random_frame(seed, n_agents=2 + 3 * seed) for seed in range(3)]


@pytest.fixture(scope="module")
def requests_(frames) -> list[VLMRequest]:
    out = []
    for i, frame in enumerate(frames):
        png, _ = render_scene(frame, RenderConfig(size_px=128))
        user = f"Ego speed {frame.ego.speed:.1f} m/s. " + "Rank every numbered object. " * (
            1 + 3 * i
        )
        out.append(VLMRequest(image_png=png, system=SYSTEM, user=user))
    return out


def test_loads_a_real_qwen25_vl_through_the_normal_path(backend: HFBackend, tiny_dir: Path):
    assert isinstance(backend, VLMBackend)
    assert backend.name == "transformers:tiny-qwen2.5-vl"
    assert backend.device == "cpu"
    assert type(backend.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert not backend.model.training
    assert str(backend.model.dtype) == "torch.float32"  # dtype "auto" on the CPU
    assert backend.processor.tokenizer.padding_side == "left"
    n_params = sum(p.numel() for p in backend.model.parameters())
    assert n_params < 1_000_000
    print(f"tiny VLM: {n_params} parameters, {len(backend.processor.tokenizer)} tokens")


def test_prompt_is_a_chat_with_one_image(backend: HFBackend, requests_):
    prompt = backend.processor.apply_chat_template(
        backend.messages(requests_[0]), tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>system\n" + SYSTEM)
    assert prompt.count("<|image_pad|>") == 1
    assert prompt.endswith("<|im_start|>assistant\n")


def test_image_placeholder_expands_to_merged_patches(backend: HFBackend, requests_):
    from rsd.teacher.backends.hf_backend import _decode_png

    images = [_decode_png(r.image_png) for r in requests_[:2]]
    prompts = [
        backend.processor.apply_chat_template(
            backend.messages(r), tokenize=False, add_generation_prompt=True
        )
        for r in requests_[:2]
    ]
    inputs = backend.processor(text=prompts, images=images, padding=True, return_tensors="pt")
    image_id = backend.model.config.image_token_id
    per_row = (inputs["input_ids"] == image_id).sum(dim=1).tolist()
    expected = [int(g.prod()) // MERGE_SIZE**2 for g in inputs["image_grid_thw"]]
    assert per_row == expected
    assert all(0 < n <= 16 for n in expected)  # the tiny pixel budget: a handful of tokens
    mask = inputs["attention_mask"]
    assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).any()  # left padding


def test_generate_batch(backend: HFBackend, requests_):
    t0 = time.perf_counter()
    responses = backend.generate(requests_)  # 3 requests, batch_size 2: two generate calls
    print(f"generated {len(requests_)} answers in {time.perf_counter() - t0:.2f} s")
    assert len(responses) == len(requests_)
    for r in responses:
        assert r.error is None
        assert isinstance(r.text, str)
        assert r.latency_s > 0.0
        assert r.attempts == 1
    assert backend.generate([]) == []


def test_dtype_is_applied(tiny_dir: Path, requests_):
    be = HFBackend(HFConfig(str(tiny_dir), device="cpu", dtype="bfloat16", max_new_tokens=4))
    assert str(be.model.dtype) == "torch.bfloat16"
    (r,) = be.generate(requests_[:1])
    assert r.error in (None, "empty") and isinstance(r.text, str)


def test_batching_does_not_change_greedy_answers(tiny_dir: Path, backend: HFBackend, requests_):
    """Left padding and the padded position ids must leave each answer as if generated alone."""
    one_by_one = HFBackend(HFConfig(str(tiny_dir), device="cpu", batch_size=1, max_new_tokens=16))
    together = HFBackend(HFConfig(str(tiny_dir), device="cpu", batch_size=3, max_new_tokens=16))
    assert [r.text for r in together.generate(requests_)] == [
        r.text for r in one_by_one.generate(requests_)
    ]


def test_garbage_answers_parse_without_raising(backend: HFBackend, requests_, frames):
    parse = pytest.importorskip("rsd.teacher.parse")
    for frame, resp in zip(frames, backend.generate(requests_), strict=True):
        assessment = parse.parse_assessment(
            resp.text,
            frame,
            teacher_id=backend.name,
            prompt_version="test",
            error=resp.error,
            latency_s=resp.latency_s,
        )
        assert assessment.status in (Status.FAILED, Status.PARTIAL)
        assert assessment.raw_text == resp.text or not resp.text
        assert assessment.teacher_id == backend.name


def test_generation_error_becomes_a_response(backend: HFBackend, requests_, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(backend.model, "generate", boom)
    responses = backend.generate(requests_)  # batches of 2 and 1
    assert len(responses) == len(requests_)
    for r in responses:
        assert r.text is None and not r.ok
        assert r.error.startswith("generate_error:RuntimeError")
        assert "out of memory" in r.error
        assert r.latency_s > 0.0
    # a failed batch is retried one request at a time before giving up
    assert [r.attempts for r in responses] == [2, 2, 1]


def test_failed_batch_is_retried_one_by_one(backend: HFBackend, requests_, monkeypatch):
    """A batch too large for memory still answers, one request at a time."""
    real = backend.model.generate

    def small_batches_only(*args, **kwargs):
        if kwargs["input_ids"].shape[0] > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    expected = [r.text for r in backend.generate(requests_[:2])]
    monkeypatch.setattr(backend.model, "generate", small_batches_only)
    responses = backend.generate(requests_[:2])
    assert [r.text for r in responses] == expected
    assert all(r.ok and r.attempts == 2 for r in responses)


def test_bad_image_fails_only_its_request(backend: HFBackend, requests_):
    bad = VLMRequest(image_png=b"not a png", system=SYSTEM, user="?")
    responses = backend.generate([requests_[0], bad, requests_[1]])
    assert [r.error is None for r in responses] == [True, False, True]
    assert responses[1].text is None and responses[1].error.startswith("bad_image")
    assert isinstance(responses[0].text, str) and isinstance(responses[2].text, str)


def test_missing_model_dir_names_it(tmp_path: Path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        HFBackend(HFConfig(str(missing)))
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty-model"):
        HFBackend(HFConfig(str(empty)))


def test_invalid_model_dir_names_it(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    with pytest.raises(RuntimeError, match="broken-model"):
        HFBackend(HFConfig(str(broken)))


def test_config_validation_and_device(monkeypatch):
    with pytest.raises(ValueError):
        HFConfig("x", batch_size=0)
    with pytest.raises(ValueError):
        HFConfig("x", dtype="int8")  # type: ignore[arg-type]
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_importing_the_backend_does_not_import_transformers():
    code = (
        "import sys, rsd.teacher.backends.hf_backend as m; "
        "assert 'transformers' not in sys.modules, 'eager import'; print(m.HFConfig('d').device)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "auto"
