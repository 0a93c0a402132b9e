"""`vstw import`: annotations in a dataset's own format -> a manifest the recipes read.

1. read the source (curation.importers) into cues per video key;
2. find each key's video under `--videos` (by file stem; ActivityNet's `v_` prefix optional);
3. probe each matched video (the ingest stage's own probe) for its real length, and drop or
   clamp the cues outside it;
4. write one manifest row per video with annotations (`{"path", "id", "metadata",
   "annotations"}`), atomically, and a report beside it (`<out>.report.json`) with every problem.
Nothing here raises on a bad item: each is a `Problem` with a reason code, counted in the summary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curation.importers import Cue, Problem, fit_to_duration, read_source
from curation.storage import atomic_write_bytes
from curation.video.probe import probe_video

# Formats whose annotations are one file per video, named by its stem.
SIDECAR_SUFFIX = {"srt": ".srt", "vtt": ".vtt", "asr-words": ".json"}
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv"})


@dataclass
class ImportReport:
    format: str
    source: str
    videos_dir: str
    manifest: str
    rows: int = 0  # videos written (each with at least one annotation)
    annotations_read: int = 0
    annotations_kept: int = 0
    keys_without_video: int = 0
    videos_without_annotations: int = 0
    videos_unreadable: int = 0
    problems: list[Problem] = field(default_factory=list)

    def dropped_by_reason(self) -> Counter:
        out: Counter = Counter()
        for p in self.problems:
            if p.dropped:
                out[p.reason] += p.dropped
        return out

    def adjusted_by_reason(self) -> Counter:
        return Counter(p.reason for p in self.problems if not p.dropped)

    def as_json(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "problems"}
        data["dropped_by_reason"] = dict(sorted(self.dropped_by_reason().items()))
        data["noted_by_reason"] = dict(sorted(self.adjusted_by_reason().items()))
        data["problems"] = [asdict(p) for p in self.problems]
        return data


def index_videos(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Video files under `folder` by stem; a stem found twice keeps the first path (sorted)."""
    found: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file():
            continue
        if path.stem in found:
            problems.append(Problem(str(path), "ambiguous_video", f"{path}: another video is named {path.stem} ({found[path.stem]}); that one is used"))
            continue
        found[path.stem] = path
    return found, problems


def match_video(key: str, videos: dict[str, Path]) -> Path | None:
    """The video of a dataset key: its stem, or the key without / with ActivityNet's `v_`."""
    for candidate in (key, key[2:] if key.startswith("v_") else f"v_{key}"):
        if candidate in videos:
            return videos[candidate]
    return None


def manifest_path(video: Path, manifest_dir: Path) -> str:
    """The path as the manifest writes it: relative to the manifest when under its folder."""
    try:
        return os.path.relpath(video, manifest_dir) if manifest_dir in video.parents else str(video)
    except ValueError:
        return str(video)


def _probe(path: Path) -> dict:
    try:
        return probe_video(path)
    except Exception as err:  # probe_video reports bad files itself; this is a last guard
        return {"status": "failed", "reason": "corrupt", "error": f"{path}: {err}"}


def import_annotations(fmt: str, source: Path, videos_dir: Path, out: Path, workers: int = 2, progress=None) -> ImportReport:
    """Read, match, probe, fit, write. `progress(iterable, total)` wraps the probing loop."""
    source, videos_dir, out = Path(source).absolute(), Path(videos_dir).absolute(), Path(out).absolute()
    report = ImportReport(fmt, str(source), str(videos_dir), str(out))
    parsed = read_source(fmt, source)
    report.problems.extend(parsed.problems)
    report.annotations_read = sum(len(c) for c in parsed.cues.values()) + sum(p.dropped for p in parsed.problems)
    videos, problems = index_videos(videos_dir)
    report.problems.extend(problems)

    matched: dict[str, Path] = {}
    claimed: set[Path] = set()  # videos some key names, with usable cues or not
    for key, cues in parsed.cues.items():
        video = match_video(key, videos)
        if video is not None:
            claimed.add(video)
        if video is None:
            report.keys_without_video += 1
            report.problems.append(Problem(key, "no_video", f"{key}: no video named {key}.* under {videos_dir} ({len(cues)} annotations from {parsed.origin.get(key, source.name)})", len(cues)))
        elif not cues:
            report.problems.append(Problem(key, "no_annotations", f"{video.name}: its annotations ({parsed.origin.get(key)}) hold no usable cue"))
        else:
            matched[key] = video
    if fmt in SIDECAR_SUFFIX:  # a video beside the others with no file of its own
        for stem, video in videos.items():
            if video not in claimed:
                report.videos_without_annotations += 1
                report.problems.append(Problem(video.name, "no_annotations", f"{video.name}: no {stem}{SIDECAR_SUFFIX[fmt]} beside it; not in the manifest"))

    keys = sorted(matched)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        probes = pool.map(lambda k: _probe(matched[k]), keys)
        if progress is not None:
            probes = progress(probes, len(keys))
        probed = dict(zip(keys, probes))

    lines = []
    for key in keys:
        video, info, cues = matched[key], probed[key], parsed.cues[key]
        if info.get("status") != "ok":
            report.videos_unreadable += 1
            report.problems.append(Problem(video.name, "video_unreadable", f"{info.get('error') or video} ({info.get('reason')}); its {len(cues)} annotations are not used", len(cues)))
            continue
        kept, problems = fit_to_duration(sorted(cues, key=lambda c: (c.start_s, c.end_s)), float(info["duration_s"]), key)
        report.problems.extend(problems)
        if not kept:
            report.problems.append(Problem(video.name, "no_annotations", f"{video.name}: none of its annotations lies inside its {info['duration_s']:.2f} s"))
            continue
        report.annotations_kept += len(kept)
        lines.append(_row(fmt, key, video, out.parent, parsed.origin.get(key), kept))
    report.rows = len(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
    atomic_write_bytes(report_path(out), (json.dumps(report.as_json(), indent=1, ensure_ascii=False) + "\n").encode())
    return report


def report_path(out: Path) -> Path:
    return out.with_name(out.name.rsplit(".", 1)[0] + ".report.json")


def _row(fmt: str, key: str, video: Path, manifest_dir: Path, origin: str | None, cues: list[Cue]) -> dict:
    metadata = {"annotation_format": fmt}
    if origin:
        metadata["annotations_from"] = Path(origin).name
    return {"path": manifest_path(video, manifest_dir), "id": key, "metadata": metadata, "annotations": [c.as_annotation() for c in cues]}
