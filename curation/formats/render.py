"""An SFT record -> the training conversation VST's loader builds from it (spec section 2).

1. frames between video_start and video_end at exactly 2 fps, at most `max_frames` (tail
   dropped), padded to an even count;
2. per text_stream item: user turn = text `Time={s:.1f}-{e:.1f}s `, the clip's frames
   `[int(N*(s-vs)/(ve-vs)) : int(N*(e-vs)/(ve-vs))]` (left out when empty), the instruction;
   assistant turn = the thought, verbatim;
3. per qa_stream item, after all thoughts: the frames of [s, e] (if any), then text
   `Timestamp={s:.1f}s {question}`; assistant turn = the answer;
4. a `{"role": "previous text", "content": previous}` message first (the chat template puts the
   default system prompt before it);
5. labels on every assistant turn's content and its `<|im_end|>`, -100 elsewhere.
`render_record` works with any Qwen2.5-VL processor (the tiny offline one, VST's, Qwen's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curation.video.segment import VST_FPS, VST_MAX_FRAMES, vst_window_frames

IGNORE_INDEX = -100


class RenderError(ValueError):
    """The record cannot become a training conversation (the message says why)."""


@dataclass
class RenderedConversation:
    text: str  # the chat-template text (one <|video_pad|> per clip, before expansion)
    input_ids: "object"  # 1-D LongTensor
    labels: "object"  # 1-D LongTensor, IGNORE_INDEX outside assistant turns
    pixel_values_videos: "object | None"
    video_grid_thw: "object | None"
    second_per_grid_ts: "object | None"  # seconds per temporal grid step (positions of video tokens)
    mm_token_type_ids: "object | None"
    frames_decoded: int  # N, the window's frames at 2 fps (after cap and padding)
    clip_frames: list[int] = field(default_factory=list)  # frames per text_stream / qa_stream turn
    messages: list[dict] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return int(self.input_ids.shape[-1])

    @property
    def label_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def clip_slice(n: int, vs: float, ve: float, s: float, e: float) -> tuple[int, int]:
    return int(n * (s - vs) / (ve - vs)), int(n * (e - vs) / (ve - vs))


def resolve_video(video: str, video_root: Path | str | None) -> Path:
    path = Path(video)
    if not path.is_absolute() and video_root is not None:
        path = Path(video_root) / path
    return path


def decode_window(path: Path, vs: float, ve: float, max_frames: int, frame_width: int) -> np.ndarray:
    from curation.video.clock import FrameClock
    from curation.video.decode import read_frames

    indices = vst_window_frames(vs, ve, FrameClock.of_path(path).ends, max_frames)
    return read_frames(path, indices, target_width=frame_width)


def build_messages(record: list[dict], frames: np.ndarray) -> tuple[list[dict], list[np.ndarray], list[int]]:
    """(chat messages, clip videos in order, frames per turn) for one record and its window frames."""
    video_el, text_el = record[0]["content"]
    stream = record[1]["content"][0]
    vs, ve = float(video_el["video_start"]), float(video_el["video_end"])
    n = len(frames)
    instruction = text_el.get("text") or ""
    messages: list[dict] = []
    if text_el.get("previous") is not None:
        messages.append({"role": "previous text", "content": text_el["previous"]})
    videos, counts = [], []
    for s, e, thought in stream["text_stream"]:
        lo, hi = clip_slice(n, vs, ve, s, e)
        content = [{"type": "text", "text": f"Time={s:.1f}-{e:.1f}s "}]
        if hi > lo:
            content.append({"type": "video"})
            videos.append(frames[lo:hi])
        content.append({"type": "text", "text": instruction})
        counts.append(max(0, hi - lo))
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": thought}]}]
    for s, e, question, answer in stream.get("qa_stream") or []:
        lo, hi = clip_slice(n, vs, ve, s, e)
        content = []
        if hi > lo:
            content.append({"type": "video"})
            videos.append(frames[lo:hi])
        content.append({"type": "text", "text": f"Timestamp={s:.1f}s {question}"})
        counts.append(max(0, hi - lo))
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return messages, videos, counts


def assistant_labels(input_ids, tokenizer):
    """Labels: the ids of each assistant turn's content and its <|im_end|>; IGNORE_INDEX elsewhere."""
    import torch

    start, end = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = input_ids.tolist()
    labels = [IGNORE_INDEX] * len(ids)
    i = 0
    while i < len(ids):
        if ids[i] != start:
            i += 1
            continue
        # The role header runs up to the first newline after <|im_start|>.
        j, header = i + 1, ""
        while j < len(ids) and not header.endswith("\n") and ids[j] not in (start, end):
            header += tokenizer.decode([ids[j]])
            j += 1
        k = j
        while k < len(ids) and ids[k] != end:
            k += 1
        if header.strip() == "assistant":
            for p in range(j, min(k + 1, len(ids))):
                labels[p] = ids[p]
        i = k + 1
    return torch.tensor(labels, dtype=input_ids.dtype)


def render_record(
    record: list[dict],
    processor,
    video_root: Path | str | None = None,
    fps: float = VST_FPS,
    max_frames: int = VST_MAX_FRAMES,
    frame_width: int = 224,
    frames: np.ndarray | None = None,
) -> RenderedConversation:
    """Render one SFT record with a Qwen2.5-VL processor into ids, labels and video tensors.

    `frames`: the window's frames already decoded (else decoded from the video with decord, at
    most `frame_width` wide; the processor then resizes them to its own pixel budget).
    """
    if fps != VST_FPS:
        raise RenderError(f"VST's loader samples at {VST_FPS} fps; got fps={fps}")
    video_el = record[0]["content"][0]
    vs, ve = float(video_el["video_start"]), float(video_el["video_end"])
    if ve <= vs:
        raise RenderError(f"video_end {ve} is not after video_start {vs}")
    if frames is None:
        if not isinstance(video_el["video"], str):
            raise RenderError("a list of frame images as `video` is not supported by this renderer")
        path = resolve_video(video_el["video"], video_root)
        if not path.is_file():
            raise RenderError(f"video not found: {path}")
        frames = decode_window(path, vs, ve, max_frames, frame_width)
    messages, videos, counts = build_messages(record, frames)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    video_kwargs = {}
    if videos:
        from transformers.video_utils import VideoMetadata

        # Without metadata the processor assumes 24 fps and mis-times every video token.
        video_kwargs["video_metadata"] = [
            VideoMetadata(total_num_frames=len(v), fps=fps, frames_indices=list(range(len(v)))) for v in videos
        ]
    inputs = processor(text=[text], videos=videos or None, return_tensors="pt", **video_kwargs)
    input_ids = inputs["input_ids"][0]
    labels = assistant_labels(input_ids, processor.tokenizer)
    return RenderedConversation(
        text=text,
        input_ids=input_ids,
        labels=labels,
        pixel_values_videos=inputs.get("pixel_values_videos"),
        video_grid_thw=inputs.get("video_grid_thw"),
        second_per_grid_ts=inputs.get("second_per_grid_ts"),
        mm_token_type_ids=inputs.get("mm_token_type_ids"),
        frames_decoded=len(frames),
        clip_frames=counts,
        messages=messages,
    )
