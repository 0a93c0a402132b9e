"""VST RL Parquet (spec section 3): exactly these columns and types, nothing else.

`prompt` is the question as shown (options included), `question` the question alone,
`video_context` the video path as the RL trainer opens it (from its working directory),
`data_source` picks the reward, `reward_model.ground_truth` is a ONE-element list of strings and
`extra_info.duration` the real video length in seconds.

The RL trainer shows the model the whole file named by `video_context`, while a chain's question
and answer were made from one window of its video ("...in the video so far?"). So a row points at
the window itself: the source video when the window is the whole video, else a cut of the window
(`videos/<video_id>-w<start_ms>-<end_ms>.mp4`, written by the export with curation/video/cut.py)
whose probed length is the row's duration.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.formats.question import DATA_SOURCE, ground_truth, prompt_text

RL_SCHEMA = pa.schema(
    [
        pa.field("prompt", pa.string()),
        pa.field("question", pa.string()),
        pa.field("video_context", pa.string()),
        pa.field("data_source", pa.string()),
        pa.field("reward_model", pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.list_(pa.string()))])),
        pa.field("extra_info", pa.struct([pa.field("index", pa.int64()), pa.field("duration", pa.float64())])),
    ]
)


# A window within this of both ends of its video is the whole video (less than a frame at 100 fps).
WHOLE_VIDEO_TOLERANCE_S = 0.01


class RLExportError(ValueError):
    """A chain that cannot become an RL row (the message names the chain and the reason)."""


def rl_row(chain: dict, video_context: str, duration_s: float, index: int = 0) -> dict:
    qa = chain.get("qa") or {}
    kind = qa.get("type")
    if kind not in DATA_SOURCE:
        raise RLExportError(f"chain {chain.get('chain_id')}: question type {kind!r} has no VST reward")
    truth = ground_truth(qa)
    if truth is None:
        raise RLExportError(f"chain {chain.get('chain_id')}: answer {qa.get('answer')!r} does not fit type {kind}")
    if not duration_s or duration_s <= 0:
        raise RLExportError(f"chain {chain.get('chain_id')}: video duration {duration_s!r} (0 makes every timestamp 0)")
    return {
        "prompt": prompt_text(qa),
        "question": (qa.get("question") or "").strip(),
        "video_context": video_context,
        "data_source": DATA_SOURCE[kind],
        "reward_model": {"style": "rule", "ground_truth": [truth]},
        "extra_info": {"index": int(index), "duration": float(duration_s)},
    }


def is_whole_video(start_s: float, end_s: float, duration_s: float | None) -> bool:
    """Whether a window [start_s, end_s] is its whole video (then the row keeps the source)."""
    if not duration_s:
        return False
    return start_s <= WHOLE_VIDEO_TOLERANCE_S and end_s >= duration_s - WHOLE_VIDEO_TOLERANCE_S


def window_cut_name(video_id: str, start_s: float, end_s: float) -> str:
    """The file name of a window's cut under exports/videos/ (milliseconds: unique per window)."""
    return f"{video_id}-w{int(round(start_s * 1000))}-{int(round(end_s * 1000))}.mp4"


def rl_table(rows: list[dict]) -> pa.Table:
    """Rows to a table of exactly RL_SCHEMA; extra_info.index is the row's position."""
    for i, row in enumerate(rows):
        row["extra_info"] = {**row["extra_info"], "index": i}
    return pa.Table.from_pylist(rows, schema=RL_SCHEMA)


def write_rl(rows: list[dict], path: Path | str) -> Path:
    pq.write_table(rl_table(rows), str(path))
    return Path(path)
