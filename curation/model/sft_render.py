"""An SFT record -> the training sample VST's loader makes of it (spec section 2), in one place.

1. frames between video_start and video_end at 2 fps (at most 384, padded to an even count);
2. per text_stream item, a user turn `Time={s:.1f}-{e:.1f}s ` + the clip's frames (left out when
   the slice is empty) + the instruction, and an assistant turn: the thought;
3. per qa_stream item (after all thoughts), a user turn with the clip's frames (if any) then
   `Timestamp={s:.1f}s {question}`, and an assistant turn: the answer;
4. `{"role": "previous text", "content": previous}` first (rendered after the default system
   prompt by Qwen2.5-VL's chat template);
5. labels on every assistant turn (its content and `<|im_end|>`), -100 everywhere else.

The text is rendered with the processor's chat template, labels are placed by character spans of
the assistant turns, then each video placeholder is expanded to its visual tokens exactly as
`Qwen2_5_VLProcessor` does (tests check the ids against the processor's own). Issue 4's
`curation/formats/render.py` can replace this module behind `render_sft_record`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from curation.video.segment import VST_MAX_FRAMES, vst_frame_indices

IGNORE = -100
VST_FPS = 2.0


class RecordError(ValueError):
    """A record VST's loader would skip; the message names the problem."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Sample:
    input_ids: "object"  # LongTensor (L,)
    labels: "object"  # LongTensor (L,)
    mm_token_type_ids: "object"  # IntTensor (L,): 2 on video tokens
    pixel_values_videos: "object | None"
    video_grid_thw: "object | None"
    second_per_grid_ts: "object | None"
    text: str  # the rendered chat text, one <|video_pad|> per clip

    def model_inputs(self) -> dict:
        out = {
            "input_ids": self.input_ids[None],
            "labels": self.labels[None],
            "mm_token_type_ids": self.mm_token_type_ids[None],
        }
        if self.pixel_values_videos is not None:
            out |= {
                "pixel_values_videos": self.pixel_values_videos,
                "video_grid_thw": self.video_grid_thw,
                "second_per_grid_ts": self.second_per_grid_ts,
            }
        return out


# ---- record -> conversation --------------------------------------------------------------------
def parse_record(record) -> tuple[dict, dict, list, list]:
    """(video element, text element, text_stream, qa_stream), or RecordError naming what is wrong."""
    if not (isinstance(record, list) and len(record) == 2):
        raise RecordError("sft_bad_record", "a record is a list of exactly two messages")
    user, assistant = record
    content = user.get("content") if isinstance(user, dict) else None
    if not (isinstance(content, list) and len(content) == 2 and content[0].get("type") == "video" and content[1].get("type") == "text"):
        raise RecordError("sft_bad_record", "the user message must hold a video element then a text element")
    stream = (assistant.get("content") or [{}])[0] if isinstance(assistant, dict) else {}
    thoughts, qas = stream.get("text_stream") or [], stream.get("qa_stream") or []
    if any(len(t) != 3 or not isinstance(t[2], str) for t in thoughts) or any(len(q) != 4 for q in qas):
        raise RecordError("sft_bad_record", "text_stream items are [s, e, thought], qa_stream items [s, e, question, answer]")
    video = content[0]
    if not float(video["video_end"]) > float(video["video_start"]):
        raise RecordError("sft_bad_record", f"video_end {video['video_end']} is not after video_start {video['video_start']}")
    return video, content[1], thoughts, qas


def conversation(record) -> tuple[list[dict], list[tuple[float, float]]]:
    """(chat messages, [s, e] of each video element in order) of a record, per VST's loader."""
    video, text, thoughts, qas = parse_record(record)
    vs, ve = float(video["video_start"]), float(video["video_end"])
    instruction = text.get("text") or ""
    messages: list[dict] = []
    if text.get("previous") is not None:
        messages.append({"role": "previous text", "content": text["previous"]})
    spans: list[tuple[float, float]] = []

    def clip(s: float, e: float) -> list[dict]:
        if _frame_count(vs, ve, s, e) == 0:
            return []
        spans.append((s, e))
        return [{"type": "video"}]

    for s, e, thought in thoughts:
        s, e = float(s), float(e)
        user = [{"type": "text", "text": f"Time={s:.1f}-{e:.1f}s "}, *clip(s, e)]
        if instruction:
            user.append({"type": "text", "text": instruction})
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": thought}]
    for s, e, question, answer in qas:
        s, e = float(s), float(e)
        user = [*clip(s, e), {"type": "text", "text": f"Timestamp={s:.1f}s {question}"}]
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": str(answer)}]
    return messages, spans


def _frame_count(vs: float, ve: float, s: float, e: float) -> int:
    from curation.video.segment import vst_frame_count

    n = vst_frame_count(vs, ve, VST_MAX_FRAMES)
    span = ve - vs
    return max(0, int(n * (e - vs) / span) - int(n * (s - vs) / span))


# ---- frames -----------------------------------------------------------------------------------
def resolve_video(path: str, roots: list[Path]) -> Path:
    candidate = Path(path)
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
    else:
        for root in roots:
            if (root / candidate).is_file():
                return root / candidate
    raise RecordError("sft_video_missing", f"video not found: {path} (looked in {', '.join(str(r) for r in roots) or 'absolute path'})")


def clip_frames(video_path: Path, vs: float, ve: float, spans: list[tuple[float, float]], frame_width: int = 0) -> list[np.ndarray]:
    """The 2 fps frames of each clip span, exactly the slices VST's loader takes."""
    from curation.video.clock import FrameClock

    clock = FrameClock.of_path(video_path)
    if vs >= clock.duration_s:
        raise RecordError("sft_bad_record", f"video_start {vs} is past the end of {video_path} ({clock.duration_s:.2f} s)")
    per_clip = [vst_frame_indices(vs, ve, s, e, clock.fps, clock.frame_count, frame_times=clock.ends) for s, e in spans]
    wanted = sorted({i for idx in per_clip for i in idx})
    if not wanted:
        return []
    frames = _read_frames_cached(str(video_path), tuple(wanted), frame_width)
    where = {index: k for k, index in enumerate(wanted)}
    return [frames[[where[i] for i in idx]] for idx in per_clip]


@lru_cache(maxsize=8)
def _read_frames_cached(path: str, indices: tuple[int, ...], frame_width: int) -> np.ndarray:
    """Several records often share a window (one per question): decode it once."""
    from curation.video.decode import read_frames

    frames = read_frames(path, list(indices), target_width=frame_width)
    frames.setflags(write=False)
    return frames


# ---- conversation -> ids and labels -------------------------------------------------------------
def assistant_spans(processor, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The chat text and the character spans of each assistant turn's content + <|im_end|>."""
    text = processor.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(processor.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
        end = start + len(message["content"]) + len("<|im_end|>")
        if text[start:end] != message["content"] + "<|im_end|>":
            raise ValueError("the chat template does not render assistant turns as content + <|im_end|>")
        spans.append((start, end))
    return text, spans


def render_sft_record(record, processor, video_roots: list[Path], frame_width: int = 0) -> Sample:
    """The training sample of one SFT record (ids, labels, video tensors)."""
    import torch
    from transformers.video_utils import VideoMetadata

    messages, spans = conversation(record)
    video = record[0]["content"][0]
    vs, ve = float(video["video_start"]), float(video["video_end"])
    frames = clip_frames(resolve_video(video["video"], video_roots), vs, ve, spans, frame_width) if spans else []
    text, label_spans = assistant_spans(processor, messages)

    tokenizer = processor.tokenizer
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [tok if any(a <= s and e <= b for a, b in label_spans) else IGNORE for tok, (s, e) in zip(ids, offsets)]

    video_pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    pixel_values = grid = seconds = None
    counts: list[int] = []
    if frames:
        metadata = [VideoMetadata(total_num_frames=len(f), fps=VST_FPS, frames_indices=list(range(len(f)))) for f in frames]
        out = processor.video_processor(videos=frames, video_metadata=metadata, return_tensors="pt")
        pixel_values, grid = out["pixel_values_videos"], out["video_grid_thw"]
        merge = processor.video_processor.merge_size**2
        counts = [int(g.prod()) // merge for g in grid]
        seconds = torch.tensor([processor.video_processor.temporal_patch_size / VST_FPS] * len(frames))
    if ids.count(video_pad) != len(counts):
        raise ValueError(f"{ids.count(video_pad)} video placeholders for {len(counts)} clips")
    full_ids, full_labels, types = [], [], []
    clip = 0
    for tok, lab in zip(ids, labels):
        if tok == video_pad:
            full_ids += [video_pad] * counts[clip]
            full_labels += [IGNORE] * counts[clip]
            types += [2] * counts[clip]
            clip += 1
        else:
            full_ids.append(tok)
            full_labels.append(lab)
            types.append(0)
    return Sample(
        torch.tensor(full_ids),
        torch.tensor(full_labels),
        torch.tensor(types, dtype=torch.int32),
        pixel_values,
        grid,
        seconds,
        text,
    )


# ---- files ------------------------------------------------------------------------------------
def sft_files(path: Path) -> list[Path]:
    """The record files of an SFT export: a .jsonl file, or every .jsonl under a folder (seek
    index files excluded)."""
    path = Path(path)
    if path.is_file():
        return [path]
    # the export writes `<subset>_provenance.jsonl` beside each SFT file: not training records
    files = sorted(p for p in path.rglob("*.jsonl") if not _is_seek_index(p) and not p.name.endswith("_provenance.jsonl"))
    if not files:
        raise FileNotFoundError(f"no .jsonl SFT files under {path}")
    return files


def _is_seek_index(path: Path) -> bool:
    """`x_seeks.jsonl` beside `x.jsonl` or `x_with_seeks.jsonl` (VST's naming)."""
    return path.name.endswith("_seeks.jsonl") and not path.name.endswith("_with_seeks.jsonl")


def read_records(path: Path) -> list[tuple[Path, list]]:
    """(file, record) for every record line; a trailing seek-offset line (LiveCC style) is skipped."""
    out = []
    for file in sft_files(path):
        for line in file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record, list) and record and all(isinstance(x, int) for x in record):
                continue  # the trailing seek index
            out.append((file, record))
    return out
