"""Subtitles: SubRip (.srt, through `srt`) and WebVTT (.vtt, through `webvtt-py`).

Each file is read block by block (a block = one cue, blank-line separated), so a malformed cue
costs that cue and is named, while both libraries would otherwise stop at it (`srt`) or skip it
without a word (`webvtt-py`). Cue text is cleaned (tags, [sound], music notes, dialogue dashes),
repeats and overlaps of the one track are tidied, and cues are joined or split into sentences
(curation.importers.cues).
"""

from __future__ import annotations

import re
from pathlib import Path

from curation.files import file_problem
from curation.importers.cues import Cue, Parsed, Problem, clean_text, tidy_stream, times_valid, to_sentences

_BLOCKS = re.compile(r"\n[ \t]*\n")
_VTT_META = ("NOTE", "STYLE", "REGION")


def decode(data: bytes) -> tuple[str, str | None]:
    """Text of a subtitle file and, when it was not UTF-8, the encoding used (old .srt files are
    often Windows-1252)."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _blocks(text: str) -> list[str]:
    return [b.strip("\n") for b in _BLOCKS.split(text.replace("\r\n", "\n").replace("\r", "\n").strip()) if b.strip()]


def _srt_block(block: str) -> tuple[float, float, str]:
    import srt

    subs = list(srt.parse(block + "\n"))
    if len(subs) != 1:
        raise ValueError(f"holds {len(subs)} cues")
    sub = subs[0]
    return sub.start.total_seconds(), sub.end.total_seconds(), sub.content


def _vtt_block(block: str) -> tuple[float, float, str] | None:
    """(start, end, text), or None for a block that is no cue (NOTE, STYLE, REGION)."""
    from webvtt import WebVTT

    if block.split(None, 1)[0] in _VTT_META:
        return None
    captions = WebVTT.from_string("WEBVTT\n\n" + block + "\n").captions
    if len(captions) != 1:
        raise ValueError(f"holds {len(captions)} cues")
    cap = captions[0]
    return cap.start_time.in_milliseconds() / 1000.0, cap.end_time.in_milliseconds() / 1000.0, cap.raw_text


def read_subtitle_file(path: Path, kind: str = "subtitle") -> tuple[list[Cue], list[Problem]]:
    """The cues of one .srt or .vtt file, in time order, as sentences."""
    problems: list[Problem] = []
    text, encoding = decode(path.read_bytes())
    if encoding:
        problems.append(Problem(path.name, "not_utf8", f"{path.name}: not UTF-8; read as {encoding}"))
    vtt = path.suffix.lower() == ".vtt"
    blocks = _blocks(text)
    if vtt:
        if not blocks or not blocks[0].startswith("WEBVTT"):
            return [], [*problems, Problem(path.name, "unreadable_source", f"{path.name}: not a WebVTT file (it must start with 'WEBVTT')", 0)]
        blocks = blocks[1:]
    cues: list[Cue] = []
    for n, block in enumerate(blocks, start=1):
        label = f"{path.name} cue {n}"
        try:
            got = _vtt_block(block) if vtt else _srt_block(block)
        except Exception:  # srt.SRTParseError, webvtt's errors: their messages name offsets, not the cue
            shape = "'HH:MM:SS.mmm --> HH:MM:SS.mmm' and text" if vtt else "a number, 'HH:MM:SS,mmm --> HH:MM:SS,mmm' and text"
            problems.append(Problem(label, "bad_cue", f"{label}: not a cue (expected {shape}; it reads {' / '.join(block.splitlines())[:100]!r})", 1))
            continue
        if got is None:
            continue
        start, end, raw = got
        why = times_valid(start, end)
        if why:
            problems.append(Problem(label, "bad_times", f"{label}: {why}", 1))
            continue
        words = clean_text(raw)
        if not words:
            problems.append(Problem(label, "empty_text", f"{label}: no words once tags and sound descriptions are out ({raw[:60]!r})", 1))
            continue
        cues.append(Cue(start, end, words, kind))
    cues, tidy = tidy_stream(cues, path.name)
    # Splitting can free a sentence that the next cue repeats ("... the view. A dog stays." then
    # "A dog stays."): the sentences are tidied once more.
    sentences, again = tidy_stream(to_sentences(cues), path.name, "sentence")
    return sentences, problems + tidy + again


def read_subtitles(source: Path, suffix: str, kind: str = "subtitle") -> Parsed:
    """Every `*<suffix>` file under `source` (a folder, searched recursively, or one file); a
    file's stem names its video."""
    parsed = Parsed.empty()
    files = [source] if source.is_file() else sorted(p for p in source.rglob(f"*{suffix}") if p.suffix.lower() == suffix)
    if not files:
        parsed.problems.append(Problem(str(source), "unreadable_source", f"{source}: no {suffix} files found", 0))
    for path in files:
        problem = file_problem(str(path), path)
        if problem is not None:
            parsed.problems.append(Problem(path.name, "unreadable_source", problem[1]))
            continue
        key = path.stem
        if key in parsed.cues:
            parsed.problems.append(Problem(str(path), "duplicate_source", f"{path}: another {suffix} file named {path.name} was read first ({parsed.origin[key]}); this one is skipped"))
            continue
        cues, problems = read_subtitle_file(path, kind)
        parsed.problems.extend(problems)
        parsed.cues[key] = cues
        parsed.origin[key] = str(path)
    return parsed
