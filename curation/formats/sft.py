"""VST SFT records and their seek index (spec section 2), byte for byte.

A record is a JSON list of exactly two messages: the user message (video element, then text element
carrying the instruction and the `previous` memory), and the assistant message (one `text_stream`
element: [start, end, thought] per clip, and `qa_stream`: [start, end, question, answer]).
The seek index is ONE JSON array of the byte offset of every record line, in a file beside the
JSONL (`counting_with_seeks.jsonl` -> `counting_seeks.jsonl`).
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Literal

from curation.formats.question import boxed, ground_truth, prompt_text

PREVIOUS = "[System]\nYou are a Streaming Video Analyst.\n"  # VST's initial text memory
QASpan = Literal["window_end", "last_clip"]


def sft_record(
    chain: dict,
    video: str,
    instruction: str = "",
    previous: str | None = PREVIOUS,
    qa_span: QASpan = "window_end",
) -> list[dict]:
    """The SFT record of one chain. `video`: the path as the trainer will see it.

    qa_span "window_end": the question is asked at the window's end (no extra frames, the way the
    teacher wrote a thought for every clip); "last_clip": the question comes with the last clip's
    frames and that clip gets no thought (the way VST's inference runs, spec section 4).
    """
    vs, ve = float(chain["start_s"]), float(chain["end_s"])
    thoughts = list(chain.get("thoughts") or [])
    if qa_span == "last_clip" and len(thoughts) > 1:
        last = thoughts.pop()
        qs, qe = float(last["start_s"]), float(last["end_s"])
    else:
        qs = qe = ve
    text = {"type": "text", "text": instruction}
    if previous is not None:
        text["previous"] = previous
    stream = {"type": "text_stream", "text_stream": [[float(t["start_s"]), float(t["end_s"]), t["text"]] for t in thoughts]}
    qa = chain.get("qa")
    if qa:
        truth = ground_truth(qa)
        answer = boxed(truth) if truth is not None else (chain.get("final_answer") or "")
        stream["qa_stream"] = [[qs, qe, prompt_text(qa), answer]]
    return [
        {"role": "user", "content": [{"type": "video", "video": video, "video_start": vs, "video_end": ve}, text]},
        {"role": "assistant", "content": [stream]},
    ]


def dumps_record(record: list[dict]) -> str:
    """One JSONL line (no newline inside: json escapes them). UTF-8, so offsets are in bytes."""
    return json.dumps(record, ensure_ascii=False)


def seeks_path_for(jsonl: Path | str) -> Path:
    """`x_with_seeks.jsonl` -> `x_seeks.jsonl`; `x.jsonl` -> `x_seeks.jsonl` (VST's naming)."""
    jsonl = Path(jsonl)
    stem = jsonl.name.removesuffix(".jsonl").removesuffix("_with_seeks")
    return jsonl.with_name(stem + "_seeks.jsonl")


def encode_lines(lines: list[str]) -> tuple[bytes, list[int]]:
    """The JSONL bytes and the byte offset of every line start."""
    chunks, offsets, pos = [], [], 0
    for line in lines:
        data = (line + "\n").encode("utf-8")
        offsets.append(pos)
        chunks.append(data)
        pos += len(data)
    return b"".join(chunks), offsets


def write_sft(lines: list[str], jsonl: Path | str, trailing_seeks: bool = False, write=None) -> tuple[Path, Path, list[int]]:
    """Write the records and their seek file (both from the same offsets, so they never disagree).

    trailing_seeks: also append the offsets as the JSONL's last line (the old LiveCC convention,
    which breaks JSON readers such as DuckDB's read_json_auto: only when a user asks for it).
    `write(path, bytes)`: how to write a file (default: plain write; the export passes an atomic one).
    """
    write = write or (lambda p, b: Path(p).write_bytes(b))
    jsonl = Path(jsonl)
    data, offsets = encode_lines(lines)
    seeks = json.dumps(offsets).encode() + b"\n"
    if trailing_seeks:
        data += seeks
    write(jsonl, data)
    write(seeks_path_for(jsonl), seeks)
    return jsonl, seeks_path_for(jsonl), offsets


def seeks_json(offsets) -> bytes:
    """`json.dumps(list(offsets)).encode() + b"\\n"`, made a slice at a time."""
    parts = [", ".join(map(str, offsets[i : i + 100_000])) for i in range(0, len(offsets), 100_000)]
    return ("[" + ", ".join(parts) + "]\n").encode()


class SftFileWriter:
    """One SFT JSONL and its seek index written a line at a time: the bytes `write_sft` writes for
    all the lines at once (each offset counted as the bytes are written). Both files appear whole
    (temp file + rename) on `commit`; `discard` leaves nothing behind."""

    def __init__(self, jsonl: Path, trailing_seeks: bool = False):
        from curation.storage import AtomicFile

        self.path, self.trailing_seeks = Path(jsonl), trailing_seeks
        self.out = AtomicFile(self.path)
        self.offsets = array("q")
        self.position = 0

    def add(self, line: str) -> int:
        """Append a record line; returns its line number."""
        data = (line + "\n").encode("utf-8")
        self.offsets.append(self.position)
        self.out.write(data)
        self.position += len(data)
        return len(self.offsets) - 1

    def commit(self) -> Path:
        """Write the seek index and put both files in place; returns the seek index's path."""
        from curation.storage import atomic_writer

        seeks = seeks_json(self.offsets)
        if self.trailing_seeks:
            self.out.write(seeks)
        with atomic_writer(seeks_path_for(self.path)) as fh:
            fh.write(seeks)
        self.out.commit()
        return seeks_path_for(self.path)

    def discard(self) -> None:
        self.out.discard()
