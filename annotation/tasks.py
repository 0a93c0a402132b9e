"""Chains -> Label Studio tasks, each with the teacher's output as a prediction.

A task shows the whole source video; the chain's clips are timeline segments (integer frames,
1-based, converted from seconds with the video's fps) whose per-segment text is the thought. The
question, options and answer are pre-filled text areas. The task's data also records the
segments as pushed (`segments`), so that a pulled annotation can be matched to its thoughts even
after the run's chains change.

Names used here (`clips`, `thought`, `question`, ...) are those of labeling_config.xml.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

SEGMENT_LABEL = "clip"


class VideoNotServed(ValueError):
    """The chain's video is not under the document root Label Studio serves files from."""


def prompt_versions(chain: dict) -> dict[str, str]:
    """prompt_versions as a dict (Arrow maps read back as lists of pairs)."""
    value = chain.get("prompt_versions") or {}
    return dict(value) if not isinstance(value, dict) else value


def model_version(chain: dict) -> str:
    """Teacher + prompt versions, e.g. `gemma3-270m|qa=qa-v1,think=think-v1`."""
    versions = ",".join(f"{k}={v}" for k, v in sorted(prompt_versions(chain).items()))
    return f"{chain.get('teacher') or 'unknown'}|{versions}"


def frame_range(start_s: float, end_s: float, fps: float) -> tuple[int, int]:
    """Seconds [start, end) -> Label Studio timeline frames: 1-based, both ends inclusive."""
    first = int(round(start_s * fps)) + 1
    last = max(first, int(round(end_s * fps)))
    return first, last


def seconds_range(first: int, last: int, fps: float) -> tuple[float, float]:
    """The inverse of frame_range."""
    return (first - 1) / fps, last / fps


def video_url(video_path: str, document_root: Path) -> str:
    """`/data/local-files/?d=<path relative to the document root>`, or VideoNotServed."""
    path = Path(video_path).resolve()
    root = Path(document_root).resolve()
    if root not in path.parents:
        raise VideoNotServed(f"video {path} is outside the folder Label Studio serves ({root}); restart the server with --document-root covering it")
    if path.parent == root:
        # Label Studio refuses a storage that IS the document root: files need a sub-folder.
        raise VideoNotServed(f"video {path} lies directly in the served folder {root}; Label Studio only serves files from its sub-folders")
    if not path.is_file():
        raise VideoNotServed(f"video {path} does not exist")
    return "/data/local-files/?d=" + quote(path.relative_to(root).as_posix())


def options_text(options: list[str] | None) -> str:
    return "\n".join(options or [])


def _textarea(name: str, text: str, region_id: str | None = None, ranges: list | None = None) -> dict:
    value: dict = {"text": [text]}
    if ranges is not None:
        value["ranges"] = ranges
    return {"id": region_id or name, "from_name": name, "to_name": "video", "type": "textarea", "value": value}


def segments(chain: dict, fps: float) -> list[dict]:
    """The chain's thoughts as timeline segments (what the task shows and pull matches against)."""
    out = []
    for index, thought in enumerate(chain.get("thoughts") or []):
        first, last = frame_range(thought["start_s"], thought["end_s"], fps)
        out.append(
            {
                "id": f"seg{index}",
                "index": index,
                "clip_id": thought.get("clip_id"),
                "start": first,
                "end": last,
                "start_s": thought["start_s"],
                "end_s": thought["end_s"],
                "text": thought.get("text") or "",
            }
        )
    return out


def prediction_result(chain: dict, segs: list[dict]) -> list[dict]:
    """The teacher's output in the labeling config's terms."""
    result = []
    for seg in segs:
        ranges = [{"start": seg["start"], "end": seg["end"]}]
        result.append(
            {
                "id": seg["id"],
                "from_name": "clips",
                "to_name": "video",
                "type": "timelinelabels",
                "value": {"ranges": ranges, "timelinelabels": [SEGMENT_LABEL]},
            }
        )
        result.append(_textarea("thought", seg["text"], seg["id"], ranges))
    qa = chain.get("qa") or {}
    result.append(_textarea("question", qa.get("question") or ""))
    if qa.get("options"):
        result.append(_textarea("options", options_text(qa.get("options"))))
    result.append(_textarea("answer", qa.get("answer") or ""))
    return result


def chain_to_task(chain: dict, fps: float, document_root: Path) -> dict:
    """One Label Studio task (data + prediction) for a chain; VideoNotServed if it can't be shown."""
    if not fps or fps <= 0:
        raise ValueError(f"chain {chain['chain_id']}: video {chain.get('video_id')} has no fps")
    segs = segments(chain, fps)
    qa = chain.get("qa") or {}
    data = {
        "video": video_url(chain["video_path"], document_root),
        "fps": fps,
        "chain_id": chain["chain_id"],
        "run": chain.get("run"),
        "video_id": chain.get("video_id"),
        "window_id": chain.get("window_id"),
        "window_label": f"{chain['start_s']:.1f}-{chain['end_s']:.1f} s",
        "teacher": chain.get("teacher"),
        "question": qa.get("question") or "",
        "options": options_text(qa.get("options")),
        "answer": qa.get("answer") or "",
        "segments": segs,
    }
    return {"data": data, "predictions": [{"model_version": model_version(chain), "result": prediction_result(chain, segs)}]}
