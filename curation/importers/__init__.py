"""Importers: timestamped annotations a researcher already has, read into cues per video.

`read_source(format, source)` -> `Parsed` (cues per video key, problems, where each came from).
Matching the keys to video files, checking the times against each video's real length and
writing the manifest is the pipeline's job (pipelines/importer.py); these readers only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from curation.importers.cues import KINDS, Cue, Parsed, Problem, fit_to_duration
from curation.importers.datasets import read_activitynet, read_asr_words, read_charades_sta, read_ego4d, read_youcook2
from curation.importers.subtitles import read_subtitle_file, read_subtitles

# format -> (reader, what SOURCE is). Subtitles and ASR word lists sit beside the videos (same
# stem) or in a folder of their own; the datasets ship one annotation file for all their videos.
FORMATS: dict[str, tuple[Callable[[Path], Parsed], str]] = {
    "srt": (lambda source: read_subtitles(source, ".srt"), "a folder of <video stem>.srt files (or one .srt)"),
    "vtt": (lambda source: read_subtitles(source, ".vtt"), "a folder of <video stem>.vtt files (or one .vtt)"),
    "activitynet": (read_activitynet, "ActivityNet Captions JSON (train.json, val_1.json, ...)"),
    "youcook2": (read_youcook2, "YouCook2 annotations JSON (youcookii_annotations_trainval.json)"),
    "charades-sta": (read_charades_sta, "Charades-STA text file (charades_sta_train.txt)"),
    "ego4d": (read_ego4d, "Ego4D narration JSON (narration.json)"),
    "asr-words": (read_asr_words, "a folder of <video stem>.json word lists, or one JSON"),
}


def read_source(fmt: str, source: Path) -> Parsed:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt][0](Path(source))


__all__ = ["FORMATS", "KINDS", "Cue", "Parsed", "Problem", "fit_to_duration", "read_source", "read_subtitle_file"]
