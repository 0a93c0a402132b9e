"""Validators for exported files, so users can trust an export before they train on it.

`validate_sft(path)`: the seek index points at every line start (bytes); every record parses and
has exactly VST's shape; the video resolves and the window fits its real length; VST's 2 fps
slice arithmetic gives every clip at least one frame; with a processor, the record renders into
the training conversation (labels on assistant turns only) and its token counts are reported.
`validate_rl(path)`: exactly VST's columns and types; duration > 0 and equal to the video's;
ground truth a one-element list; VST's reward gives `\\boxed{<truth>}` 1 and a wrong answer 0.
Each problem is a `Problem(where, code, message)`; a record with any problem is bad.
Token counts are the rendering processor's: `Report.counted_by` names it and says whether its
tokenizer has Qwen2.5's real vocabulary (the tiny offline one does not: its counts are not Qwen's).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from curation.formats.rewards import DATA_SOURCES, compute_reward, wrong_answer
from curation.formats.rl import RL_SCHEMA
from curation.formats.sft import seeks_path_for
from curation.video.segment import VST_FPS, VST_MAX_FRAMES, vst_frame_count

DURATION_TOLERANCE_S = 0.1


@dataclass
class Problem:
    where: str  # "line 3", "row 7", "file"
    code: str  # stable snake_case
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.code}]"


@dataclass
class RecordResult:
    where: str
    problems: list[Problem] = field(default_factory=list)
    tokens: int | None = None  # rendered tokens, text + visual (SFT, with a processor: Report.counted_by)
    label_tokens: int | None = None
    frames: int | None = None


# Qwen2.5's tokenizer puts its first added tokens right after its 151,643 learned ones; a
# tokenizer with these ids (and at least that many tokens) has Qwen's vocabulary.
QWEN_VOCAB_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}


@dataclass(frozen=True)
class TokenCounter:
    """Which processor counted a report's tokens: the counts mean nothing without it."""

    processor: str  # class name, e.g. Qwen2_5_VLProcessor
    tokenizer: str  # where the tokenizer came from (name or folder), or how it was made
    vocab_size: int
    qwen_vocabulary: bool  # True: text token counts are Qwen2.5-VL's
    max_pixels_per_frame: int | None  # the video processor's budget: sets the visual token count

    def __str__(self) -> str:
        vocab = "Qwen2.5's vocabulary" if self.qwen_vocabulary else "NOT Qwen's vocabulary: text token counts differ from Qwen2.5-VL's"
        pixels = f", at most {self.max_pixels_per_frame} pixels per frame" if self.max_pixels_per_frame else ""
        return f"{self.processor} with tokenizer {self.tokenizer} ({self.vocab_size} tokens, {vocab}){pixels}"


def describe_processor(processor) -> TokenCounter:
    tok = getattr(processor, "tokenizer", processor)
    qwen = len(tok) >= max(QWEN_VOCAB_IDS.values()) + 1 and all(tok.convert_tokens_to_ids(t) == i for t, i in QWEN_VOCAB_IDS.items())
    source = getattr(tok, "name_or_path", "") or "trained locally (curation/model/tiny.py)"
    video = getattr(processor, "video_processor", None)
    size = getattr(video, "size", None)
    pixels = getattr(video, "max_pixels", None) or (size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None))
    return TokenCounter(type(processor).__name__, source, len(tok), qwen, int(pixels) if pixels else None)


@dataclass
class Report:
    path: Path
    kind: str
    file_problems: list[Problem] = field(default_factory=list)
    records: list[RecordResult] = field(default_factory=list)
    counted_by: TokenCounter | None = None  # the processor that counted `tokens` (None: not rendered)

    @property
    def bad_records(self) -> list[RecordResult]:
        return [r for r in self.records if r.problems]

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.bad_records

    def problems(self) -> list[Problem]:
        return self.file_problems + [p for r in self.records for p in r.problems]


@lru_cache(maxsize=4096)
def video_duration(path: str) -> float | None:
    """The real length of a video (where its last frame ends, as decord times it), or None if unreadable."""
    from curation.video.clock import FrameClock

    try:
        return FrameClock.of_path(path).duration_s
    except Exception:
        return None


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---- SFT ------------------------------------------------------------------------------------------
def check_seeks(data: bytes, seeks_path: Path, trailing: list | None) -> tuple[list[Problem], list[int]]:
    """The seek index against the real line starts of the JSONL bytes; returns (problems, starts)."""
    starts, pos = [], 0
    for line in data.split(b"\n"):
        if line.strip():
            starts.append(pos)
        pos += len(line) + 1
    if trailing is not None:
        starts = starts[:-1]  # the trailing line is the index itself, not a record
    problems = []
    if not seeks_path.exists():
        if trailing is None:
            problems.append(Problem("file", "seeks_missing", f"seek file {seeks_path.name} not found beside the JSONL"))
        offsets = trailing
    else:
        try:
            offsets = json.loads(seeks_path.read_text())
        except json.JSONDecodeError as err:
            return [Problem("file", "seeks_not_json", f"{seeks_path.name} is not one JSON array: {err}")], starts
    if offsets is None:
        return problems, starts
    if not isinstance(offsets, list) or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
        return problems + [Problem("file", "seeks_not_offsets", f"{seeks_path.name} must hold one JSON array of integer byte offsets")], starts
    if trailing is not None and seeks_path.exists() and trailing != offsets:
        problems.append(Problem("file", "seeks_disagree", "the trailing seek line and the seek file disagree"))
    if len(offsets) != len(starts):
        problems.append(Problem("file", "seeks_count_mismatch", f"{len(offsets)} offsets for {len(starts)} records"))
    for i, (got, want) in enumerate(zip(offsets, starts)):
        if got != want:
            at = "a line start" if got in set(starts) else ("inside a line" if 0 <= got < len(data) else "past the end of the file")
            problems.append(Problem(f"line {i + 1}", "seek_offset_wrong", f"seek offset {got} should be {want} (the byte where record {i + 1} starts); {got} is {at}"))
            break  # one shift moves every later offset: the first one says it all
    return problems, starts


def record_shape_problems(rec, where: str) -> list[Problem]:
    """Exactly VST's record shape (spec section 2); messages name the element that is wrong."""
    def bad(msg: str) -> list[Problem]:
        return [Problem(where, "record_shape", msg)]

    if not isinstance(rec, list) or len(rec) != 2:
        return bad(f"a record is a JSON list of exactly 2 messages, got {type(rec).__name__}{' of ' + str(len(rec)) if isinstance(rec, list) else ''}")
    user, assistant = rec
    if not isinstance(user, dict) or user.get("role") != "user" or not isinstance(user.get("content"), list) or len(user["content"]) != 2:
        return bad("message 1 must be {role: user, content: [video element, text element]}")
    video, text = user["content"]
    if not isinstance(video, dict) or video.get("type") != "video":
        return bad("user content[0] must be the video element (type video)")
    v = video.get("video")
    if not (isinstance(v, str) and v) and not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
        return bad("video element: `video` must be a path string or a list of frame paths")
    for key in ("video_start", "video_end"):
        if not _is_num(video.get(key)):
            return bad(f"video element: `{key}` must be a number (seconds), got {video.get(key)!r}")
    if not isinstance(text, dict) or text.get("type") != "text" or not isinstance(text.get("text"), str):
        return bad("user content[1] must be the text element {type: text, text: str}")
    if "previous" in text and not isinstance(text["previous"], str):
        return bad("text element: `previous` must be a string")
    if not isinstance(assistant, dict) or assistant.get("role") != "assistant" or not isinstance(assistant.get("content"), list) or len(assistant["content"]) != 1:
        return bad("message 2 must be {role: assistant, content: [text_stream element]}")
    stream = assistant["content"][0]
    if not isinstance(stream, dict) or stream.get("type") != "text_stream" or not isinstance(stream.get("text_stream"), list):
        return bad("assistant content[0] must be {type: text_stream, text_stream: [...]}")
    problems = []
    for i, item in enumerate(stream["text_stream"]):
        if not isinstance(item, list) or len(item) != 3:
            problems.append(Problem(where, "text_stream_item", f"text_stream[{i}] must be [start, end, thought] (3 items), got {json.dumps(item)[:80]}"))
        elif not (_is_num(item[0]) and _is_num(item[1]) and isinstance(item[2], str)):
            problems.append(Problem(where, "text_stream_item", f"text_stream[{i}] must be [number, number, string], got {json.dumps(item)[:80]}"))
    qa = stream.get("qa_stream", [])
    if not isinstance(qa, list):
        problems.append(Problem(where, "qa_stream_item", "qa_stream must be a list"))
        qa = []
    for i, item in enumerate(qa):
        if not isinstance(item, list) or len(item) != 4:
            problems.append(Problem(where, "qa_stream_item", f"qa_stream[{i}] must be [start, end, question, answer] (4 items), got {json.dumps(item)[:80]}"))
        elif not (_is_num(item[0]) and _is_num(item[1]) and isinstance(item[2], str) and isinstance(item[3], str)):
            problems.append(Problem(where, "qa_stream_item", f"qa_stream[{i}] must be [number, number, string, string]"))
    return problems


def timing_problems(rec: list, where: str, duration: float | None, max_frames: int) -> list[Problem]:
    """The silent-misalignment cases of spec section 2, for a record of the right shape."""
    video = rec[0]["content"][0]
    vs, ve = float(video["video_start"]), float(video["video_end"])
    out = []
    if ve <= vs:
        return [Problem(where, "window_empty", f"video_end {ve} is not after video_start {vs}")]
    if ve - vs > max_frames / VST_FPS + 1e-9:
        out.append(Problem(where, "window_too_long", f"window {vs:.1f}-{ve:.1f}s is longer than {max_frames / VST_FPS:.0f}s: the loader keeps {max_frames} frames and misaligns every later thought"))
    if duration is not None:
        if vs >= duration:
            out.append(Problem(where, "window_start_past_video_end", f"video_start {vs:.2f}s is past the video's end ({duration:.2f}s)"))
        elif ve > duration + DURATION_TOLERANCE_S:
            out.append(Problem(where, "window_past_video_end", f"video_end {ve:.2f}s is past the video's real end ({duration:.2f}s)"))
    n = vst_frame_count(vs, ve, max_frames)
    stream = rec[1]["content"][0]
    prev_e = None
    for i, (s, e, _) in enumerate(stream["text_stream"]):
        if s < vs - 1e-6 or e > ve + 1e-6:
            out.append(Problem(where, "thought_outside_window", f"text_stream[{i}] {s:.2f}-{e:.2f}s is outside the window {vs:.2f}-{ve:.2f}s"))
        if e <= s:
            out.append(Problem(where, "thought_span_empty", f"text_stream[{i}] {s:.2f}-{e:.2f}s is empty"))
        if prev_e is not None and s < prev_e - 1e-6:
            out.append(Problem(where, "thoughts_overlap", f"text_stream[{i}] starts at {s:.2f}s, before text_stream[{i - 1}] ends ({prev_e:.2f}s): out of order or overlapping"))
        lo, hi = int(n * (s - vs) / (ve - vs)), int(n * (e - vs) / (ve - vs))
        if hi <= lo and e > s:
            out.append(Problem(where, "clip_gets_no_frames", f"text_stream[{i}] {s:.2f}-{e:.2f}s gets no frame at 2 fps (slice {lo}:{hi} of {n} frames)"))
        prev_e = e
    for i, (s, e, _, _) in enumerate(stream.get("qa_stream") or []):
        if s < vs - 1e-6 or e > ve + 1e-6 or e < s:
            out.append(Problem(where, "qa_outside_window", f"qa_stream[{i}] {s:.2f}-{e:.2f}s is outside the window {vs:.2f}-{ve:.2f}s"))
    return out


def label_problems(rendered, rec: list, tokenizer, where: str) -> list[Problem]:
    """The labelled tokens are exactly the assistant turns (content + <|im_end|>), in order."""
    from curation.formats.render import IGNORE_INDEX

    stream = rec[1]["content"][0]
    answers = [t[2] for t in stream["text_stream"]] + [q[3] for q in stream.get("qa_stream") or []]
    want = "".join(a + "<|im_end|>" for a in answers)
    got = tokenizer.decode([i for i in rendered.labels.tolist() if i != IGNORE_INDEX], skip_special_tokens=False)
    if got != want:
        return [Problem(where, "labels_wrong", f"labelled tokens decode to {got[:80]!r}..., expected the assistant turns {want[:80]!r}...")]
    return []


def validate_sft(
    path: Path | str,
    video_root: Path | str | None = None,
    processor=None,
    max_frames: int = VST_MAX_FRAMES,
    check_videos: bool = True,
    limit: int | None = None,
) -> Report:
    """Validate one SFT JSONL (and its seek file). `video_root`: what relative video paths are
    joined to (default: the folder above the JSONL's folder, i.e. the export root)."""
    from curation.formats.render import render_record, resolve_video

    path = Path(path)
    report = Report(path, "sft")
    if not path.is_file():
        report.file_problems.append(Problem("file", "file_missing", f"{path} not found"))
        return report
    root = Path(video_root) if video_root is not None else path.resolve().parent.parent
    if processor is not None and check_videos:
        report.counted_by = describe_processor(processor)
    data = path.read_bytes()
    lines = data.split(b"\n")
    trailing = None
    nonempty = [l for l in lines if l.strip()]
    if nonempty:
        try:
            last = json.loads(nonempty[-1])
            if isinstance(last, list) and last and all(isinstance(x, int) for x in last):
                trailing = last  # the old LiveCC trailing seek line
        except json.JSONDecodeError:
            pass
    problems, starts = check_seeks(data, seeks_path_for(path), trailing)
    # A wrong offset makes its record unreadable for VST's loader: it is that record's problem.
    report.file_problems += [p for p in problems if p.where == "file"]
    for i, start in enumerate(starts[:limit] if limit else starts):
        where = f"line {i + 1}"
        result = RecordResult(where, [p for p in problems if p.where == where])
        report.records.append(result)
        end = data.find(b"\n", start)
        raw = data[start : end if end >= 0 else len(data)]
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            result.problems.append(Problem(where, "record_not_json", f"does not parse as JSON: {err}"))
            continue
        shape = record_shape_problems(rec, where)
        result.problems += shape
        if shape:
            continue
        video = rec[0]["content"][0]["video"]
        duration = None
        if check_videos and isinstance(video, str):
            vpath = resolve_video(video, root)
            if not vpath.is_file():
                result.problems.append(Problem(where, "video_missing", f"video {video!r} does not resolve (looked for {vpath}; set the video root)"))
            else:
                duration = video_duration(str(vpath))
                if duration is None:
                    result.problems.append(Problem(where, "video_unreadable", f"video {vpath} cannot be decoded"))
        result.problems += timing_problems(rec, where, duration, max_frames)
        if result.problems or processor is None or not check_videos:
            continue
        try:
            rendered = render_record(rec, processor, root, max_frames=max_frames)
        except Exception as err:  # RenderError or the processor's own: either way this record's problem
            result.problems.append(Problem(where, "render_failed", f"does not render with the processor: {str(err).splitlines()[0][:200]}"))
            continue
        result.tokens, result.label_tokens, result.frames = rendered.tokens, rendered.label_tokens, rendered.frames_decoded
        result.problems += label_problems(rendered, rec, processor.tokenizer, where)
        empty = [k for k, c in enumerate(rendered.clip_frames[: len(rec[1]["content"][0]["text_stream"])]) if c == 0]
        if empty:
            result.problems.append(Problem(where, "clip_gets_no_frames", f"decoded at 2 fps, text_stream items {empty} get no frame"))
    return report


# ---- RL -------------------------------------------------------------------------------------------
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[\.\)]\s+\S", re.MULTILINE)


def rl_schema_problems(schema) -> list[Problem]:
    problems = []
    names = list(schema.names)
    for f in RL_SCHEMA:
        if f.name not in names:
            problems.append(Problem("file", "rl_column_missing", f"column {f.name!r} is missing"))
        elif not schema.field(f.name).type.equals(f.type):
            problems.append(Problem("file", "rl_column_type", f"column {f.name!r} is {schema.field(f.name).type}, VST needs {f.type}"))
    for name in names:
        if name not in RL_SCHEMA.names:
            problems.append(Problem("file", "rl_column_extra", f"column {name!r} is not one of VST's RL columns"))
    return problems


def rl_row_problems(row: dict, where: str, video_root: Path | None, check_videos: bool) -> list[Problem]:
    out = []
    for key in ("prompt", "question", "video_context"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            out.append(Problem(where, f"{key}_missing", f"`{key}` must be a non-empty string, got {row.get(key)!r}"))
    source = row.get("data_source")
    if source == "yes or no val":
        out.append(Problem(where, "data_source_unsupported", "data_source 'yes or no val' has no handler in VST's code (misspelt there); use 'yes or no'"))
    elif not isinstance(source, str) or source.removesuffix(" val") not in DATA_SOURCES:
        out.append(Problem(where, "data_source_unknown", f"data_source {source!r}; VST rewards: {', '.join(DATA_SOURCES)}"))
    rm = row.get("reward_model") or {}
    truth = rm.get("ground_truth") if isinstance(rm, dict) else None
    if not isinstance(rm, dict) or rm.get("style") != "rule":
        out.append(Problem(where, "reward_style", f"reward_model.style must be 'rule', got {rm.get('style') if isinstance(rm, dict) else rm!r}"))
    if isinstance(truth, str):
        out.append(Problem(where, "ground_truth_not_list", f"ground_truth is the bare string {truth!r}: VST indexes it [0] and grades against {truth[:1]!r}; store [{truth!r}]"))
    elif not isinstance(truth, list) or len(truth) != 1 or not isinstance(truth[0], str):
        out.append(Problem(where, "ground_truth_not_one", f"ground_truth must be a list of ONE string, got {truth!r}"))
    info = row.get("extra_info") or {}
    duration = info.get("duration") if isinstance(info, dict) else None
    if not _is_num(duration) or duration <= 0:
        out.append(Problem(where, "duration_invalid", f"extra_info.duration must be > 0 (the video's real length), got {duration!r}"))
    if isinstance(source, str) and source.startswith("multiple choice") and isinstance(row.get("prompt"), str):
        letters = _OPTION_LINE.findall(row["prompt"])
        beyond = [l for l in letters if l > "E"]
        if beyond:
            out.append(Problem(where, "option_beyond_e", f"options {beyond} lie beyond E: VST's multiple-choice reward can never give them credit"))
    if check_videos and isinstance(row.get("video_context"), str) and row["video_context"]:
        vpath = Path(row["video_context"])
        if not vpath.is_absolute() and video_root is not None:
            vpath = video_root / vpath
        if not vpath.is_file():
            out.append(Problem(where, "video_missing", f"video_context {row['video_context']!r} does not resolve (looked for {vpath})"))
        elif _is_num(duration) and duration > 0:
            real = video_duration(str(vpath))
            if real is None:
                out.append(Problem(where, "video_unreadable", f"video {vpath} cannot be decoded"))
            elif abs(real - duration) > max(DURATION_TOLERANCE_S, 0.01 * real):
                out.append(Problem(where, "duration_mismatch", f"extra_info.duration {duration:.2f}s but the video lasts {real:.2f}s"))
    if not any(p.code in ("data_source_unknown", "data_source_unsupported", "ground_truth_not_one") for p in out) and truth is not None:
        answer = truth if isinstance(truth, str) else truth[0]
        right = compute_reward(source, "\\boxed{" + answer + "}", truth)
        wrong = compute_reward(source, wrong_answer(source, answer), truth)
        if right != 1.0:
            out.append(Problem(where, "reward_rejects_truth", f"VST's {source!r} reward gives \\boxed{{{answer}}} {right:g}, not 1: the ground truth cannot be rewarded"))
        if wrong != 0.0:
            out.append(Problem(where, "reward_accepts_wrong", f"VST's {source!r} reward gives the wrong answer {wrong_answer(source, answer)!r} {wrong:g}, not 0"))
    return out


def validate_rl(path: Path | str, video_root: Path | str | None = None, check_videos: bool = True) -> Report:
    """Validate an RL Parquet. `video_root`: the RL trainer's working directory (default: the
    folder above the Parquet's folder, i.e. the export root)."""
    import pyarrow.parquet as pq

    path = Path(path)
    report = Report(path, "rl")
    if not path.is_file():
        report.file_problems.append(Problem("file", "file_missing", f"{path} not found"))
        return report
    root = Path(video_root) if video_root is not None else path.resolve().parent.parent
    try:
        table = pq.read_table(path)
    except Exception as err:
        report.file_problems.append(Problem("file", "rl_not_parquet", f"cannot read as Parquet: {err}"))
        return report
    report.file_problems += rl_schema_problems(table.schema)
    for i, row in enumerate(table.to_pylist()):
        where = f"row {i}"
        report.records.append(RecordResult(where, rl_row_problems(row, where, root, check_videos)))
    return report
