"""The tiny Qwen2.5-VL: built offline, saved in Hugging Face format, reloaded with from_pretrained."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from curation.model.tiny import QWEN_SPECIAL_TOKENS, init_tiny

torch.set_num_threads(1)  # on a shared, loaded machine one thread is several times faster than two


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("tiny") / "model")


def test_reloads_offline_with_the_real_classes(tiny):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    processor = AutoProcessor.from_pretrained(tiny, local_files_only=True)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny, local_files_only=True)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert isinstance(processor.video_processor, Qwen2VLVideoProcessor)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000  # really tiny
    tok = processor.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    assert len(set(ids.values())) == len(QWEN_SPECIAL_TOKENS) and tok.unk_token_id not in ids.values()
    assert model.config.video_token_id == ids["<|video_pad|>"] == processor.video_token_id
    assert model.config.image_token_id == ids["<|image_pad|>"]
    assert model.config.vision_start_token_id == ids["<|vision_start|>"]
    assert model.config.vision_end_token_id == ids["<|vision_end|>"]
    # special tokens are single tokens, and any text (here with non-ASCII) round-trips exactly
    text = "<|im_start|>user\nTime=12.0-20.4s garçon, 3 cubes \\boxed{B}<|im_end|>"
    encoded = tok(text, add_special_tokens=False)["input_ids"]
    assert encoded[0] == ids["<|im_start|>"] and encoded[-1] == ids["<|im_end|>"]
    assert tok.decode(encoded) == text


def test_same_seed_same_weights(tiny, tmp_path):
    again = init_tiny(tmp_path / "again")
    assert (tiny / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    assert (tiny / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_chat_template_renders_previous_text_after_the_default_system_prompt(tiny):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    memory = "[System]\nYou are a Streaming Video Analyst.\n"
    messages = [
        {"role": "previous text", "content": memory},
        {"role": "user", "content": [{"type": "text", "text": "Time=0.0-2.0s "}, {"type": "video"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>previous text\n[System]\nYou are a Streaming Video Analyst.\n<|im_end|>\n"
        "<|im_start|>user\nTime=0.0-2.0s <|vision_start|><|video_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_forward_and_generate_on_real_frames(tiny, samples):
    from transformers.video_utils import VideoMetadata

    from curation.model.tiny import load_model
    from curation.video.decode import read_frames

    model, processor = load_model(tiny, device="cpu")
    frames = read_frames(samples.parent / "synthetic" / "synthetic-7-000.mp4", [0, 12, 25, 37], target_width=128)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}], tokenize=False, add_generation_prompt=True
    )
    enc = processor(
        text=[text], videos=[frames], video_metadata=[VideoMetadata(total_num_frames=4, fps=2.0, frames_indices=[0, 1, 2, 3])], return_tensors="pt"
    )
    n_video = int((enc["input_ids"] == model.config.video_token_id).sum())
    assert n_video == int(enc["video_grid_thw"].prod()) // 4 > 0
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(processor.tokenizer)) and torch.isfinite(logits).all()
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert np.asarray(frames).shape[0] == 4


def test_cli_init_tiny(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["model", "init-tiny", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "processor_config.json"):
        assert (tmp_path / "m" / name).is_file(), name
