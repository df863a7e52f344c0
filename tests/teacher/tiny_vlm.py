"""Build a tiny, randomly initialised Qwen2.5-VL model and its processor, fully offline.

No weights can be downloaded here, so tests of the ``transformers`` backend run on a model of
the real architecture shrunk to about 100 k parameters: a byte-level BPE tokenizer
trained on a few sentences (plus the special tokens the Qwen-VL processor needs), our own chat
template, the PIL image processor with a pixel budget that turns an image into a handful of
patches, and a one-layer text and vision stack. Everything is written with ``save_pretrained``
so that the backend loads it through its ordinary ``from_pretrained`` code path.
"""

from __future__ import annotations

import json
from pathlib import Path

# The special tokens a Qwen2.5-VL chat template and processor rely on.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# A minimal chat template in the Qwen-VL layout (written for this test, not taken from a model):
# each turn is ``<|im_start|>role\n...<|im_end|>\n``; an image part becomes the vision start /
# image pad / vision end triple that the processor expands to one pad per merged patch.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_CORPUS = (
    "You judge driving risk from a bird's-eye image of the scene.",
    'Answer with JSON: {"scene_risk": 0.4, "objects": [{"id": 3, "risk": 0.8, "rank": 1}]}',
    "The ego drives at 25.0 m/s, 0.3 m left of the lane centre. Objects: car 1, truck 2.",
    "lead_braking cut_in merging_conflict crossing_conflict following rear none rationale",
)

PATCH_SIZE = 14
MERGE_SIZE = 2
MAX_PIXELS = 112 * 112
"""Pixel budget: at most 8 x 8 patches of 14 px, i.e. at most 16 image tokens after merging."""
MIN_PIXELS = 56 * 56


def build_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer (Qwen2 pre-tokenisation) trained on a few sentences.

    Byte-level means every string round-trips, so random generations always decode.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [
        tuple(pair) if isinstance(pair, list) else tuple(pair.split(" "))
        for pair in model["merges"]
    ]
    tokenizer = Qwen2Tokenizer(
        vocab=dict(model["vocab"]),
        merges=merges,
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_image_processor():
    """The Qwen2-VL image processor (PIL backend: no torchvision) with a tiny pixel budget."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=2,
    )


def build_model(tokenizer, hidden: int = 32, seed: int = 0):
    """A one-layer Qwen2.5-VL for conditional generation with random weights."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 2
    head_dim = hidden // heads
    # Multimodal RoPE splits the rotary half-dimension over (time, height, width).
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": 1,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "max_position_embeddings": 1024,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_heads": heads,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": MERGE_SIZE,
            "temporal_patch_size": 2,
            "window_size": PATCH_SIZE * MERGE_SIZE * 2,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    return model


def build_tiny_vlm(out_dir: str | Path) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint to ``out_dir``; return the directory.

    The layout is that of a hub snapshot: ``config.json`` + weights, tokenizer files,
    ``chat_template.jinja`` and ``preprocessor_config.json`` naming ``Qwen2_5_VLProcessor``.
    The components are saved one by one because ``transformers`` 5.x cannot build a
    ``Qwen2_5_VLProcessor`` object without torchvision (its video processor needs it).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    build_model(tokenizer).save_pretrained(out)
    tokenizer.save_pretrained(out)
    build_image_processor().save_pretrained(out)
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    pre = out / "preprocessor_config.json"
    config = json.loads(pre.read_text(encoding="utf-8"))
    config["processor_class"] = "Qwen2_5_VLProcessor"
    pre.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out
