"""A tiny Qwen2.5-VL built locally: random weights, a locally trained tokenizer, the real processor.

Tests and the demo need a model that loads with `from_pretrained(path)` exactly like VST-3B/7B or
Qwen2.5-VL weights do, without a download. `init_tiny(path)` writes one in Hugging Face format:
- `Qwen2_5_VLForConditionalGeneration` from a small `Qwen2_5_VLConfig` (a few layers, hidden 64,
  a 2-block vision tower), weights drawn from a fixed seed;
- a byte-level BPE tokenizer trained here on the VST prompt texts and the synthetic captions'
  words, carrying Qwen's special tokens (same names, same relative order) and Qwen2.5-VL's chat
  template, so rendering code cannot tell it from the real one;
- the real `Qwen2_5_VLProcessor` (image + video processor + tokenizer), with small pixel budgets
  so a clip costs a handful of visual tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen2.5-VL-Instruct's chat template, verbatim: a first message that is not "system" gets the
# default system prompt; any other role name (VST's "previous text") is rendered as is.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's added tokens in Qwen's order (ids follow the learned vocabulary, as in Qwen's tokenizer).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_PLAIN_ADDED_TOKENS = ["<tool_call>", "</tool_call>"]  # added, but not "special" in Qwen

TINY_SEED = 1234
VOCAB_SIZE = 1024  # learned tokens (bytes + merges); special tokens come after

# Small pixel budgets: 56x56 (4x4 patches of 14) per frame -> 4 merged tokens per 2 frames.
TINY_MIN_PIXELS = 28 * 28
TINY_MAX_PIXELS = 56 * 56


def tokenizer_corpus() -> list[str]:
    """Texts the tokenizer is trained on: the VST prompt scaffolding, the synthetic videos'
    vocabulary, and typical thought/question phrasing (spec sections 2-4)."""
    from curation.synthetic import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES

    lines = [
        "[System]\nYou are a Streaming Video Analyst.\n",
        "You are a helpful assistant.",
        "Based on the provided Video Memory and the Current Video Clip, answer the following Problem.",
        "Output the final answer in \\boxed{}.\nYour answer:",
        "Answer with the option's letter from the given choices directly.",
        "How many objects appear? Which colour is the shape? Is there a",
        "What happens after the scene changes? Before the cut, which object moved first?",
        "Yes No yes no A B C D E (A) (B) (C) (D) (E) A. B. C. D. E.",
        "The camera shows a person, a car, a bike, a road, a street, a building, a rabbit, a tree.",
        "Someone rides a bike. A man talks on the phone in a car. A big rabbit walks on the grass.",
    ]
    for t in range(0, 200):
        lines.append(f"Time={t / 2:.1f}-{t / 2 + 2.5:.1f}s Timestamp={t / 2:.1f}s \\boxed{{{t}}} {t} objects")
    for bg in BACKGROUNDS:
        lines.append(f"Scene 1: a plain {bg} background. The scene cuts to a {bg} background.")
        for colour in COLOURS:
            for shape in SHAPES:
                for direction in DIRECTIONS:
                    lines.append(f"A {colour} {shape} appears and moves {direction}. The {colour} {shape} disappears.")
    return lines


def train_tokenizer(corpus: list[str]):
    """A byte-level BPE (lossless on any text, like Qwen's) with Qwen's added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_PLAIN_ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    fast.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    return fast


def tiny_config(tokenizer, hidden: int = 64, layers: int = 2):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden // heads
    half = head_dim // 2  # mrope splits the rotary half-dim over (time, height, width)
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=hidden,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[1],
        tokens_per_second=2,
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_processor(tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS}
    image = Qwen2VLImageProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2)
    # Frames are sampled by us (2 fps, spec section 2), never by the processor; the per-frame pixel
    # cap is the reference (qwen-vl-utils) behaviour that VST's own loader relies on.
    video = Qwen2VLVideoProcessor(size=size, patch_size=14, temporal_patch_size=2, merge_size=2, do_sample_frames=False, cap_pixels_per_frame=True)
    return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video, chat_template=QWEN2_5_VL_CHAT_TEMPLATE)


def init_tiny(path: str | Path, seed: int = TINY_SEED, hidden: int = 64, layers: int = 2) -> Path:
    """Write a tiny random Qwen2.5-VL (model + tokenizer + processor) to `path`; returns the path.
    Deterministic: the same seed gives the same tokenizer and the same weights."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(tokenizer_corpus())
    config = tiny_config(tokenizer, hidden=hidden, layers=layers)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(path)
    build_processor(tokenizer).save_pretrained(path)
    (path / "vstw_tiny.json").write_text(json.dumps({"seed": seed, "hidden": hidden, "layers": layers}) + "\n")
    return path


def load_model(path: str | Path, device: str | None = None, dtype=None):
    """(model, processor) from a local folder (tiny, VST or Qwen2.5-VL weights), offline."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), dtype=dtype, local_files_only=True).to(device).eval()
    processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
    return model, processor
