"""Timestamped text as the workbench reads it: cues, what went wrong with them, and the clean-up
every importer shares (text, sentences, overlaps, a video's real length).

A `Cue` is one annotation: a span of the video and what a person (or an ASR system) said of it.
A `Problem` is one thing an importer could not take as it was: dropped (`dropped` > 0: that many
annotations are not in the manifest) or adjusted (`dropped` == 0: kept, changed as the message
says). Reason codes are stable (docs/reason-codes.md, "Importers"): users count them.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, replace

KINDS = ("caption", "narration", "asr", "subtitle")
# Kinds that are one stream in time (one speaker track, one narrator): an overlap there is a
# mistake to tidy. Dense captions (ActivityNet, YouCook2, Charades-STA) overlap by design.
STREAM_KINDS = frozenset({"narration", "asr", "subtitle"})

JOIN_GAP_S = 1.0  # a cue that ends mid-sentence joins the next one if it starts within this
MAX_SENTENCE_S = 12.0  # ... and the two together last at most this long (a clip is 2-10 s)
MIN_CUE_S = 0.05  # a cue trimmed shorter than this is gone


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    kind: str
    open_end: bool = False  # the end was not given (a point narration's span runs to the next one)

    def as_annotation(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "text": self.text, "kind": self.kind}


@dataclass(frozen=True)
class Problem:
    item: str  # where: "a.srt cue 12", "activitynet.json v_abc sentence 3", "b.mp4"
    reason: str
    message: str
    dropped: int = 0  # annotations this costs (0: kept, adjusted)


@dataclass
class Parsed:
    """What a reader got from a source: cues per video key (an id or a file stem), in file order."""

    cues: dict[str, list[Cue]]
    problems: list[Problem]
    origin: dict[str, str]  # video key -> the file they came from

    @classmethod
    def empty(cls) -> "Parsed":
        return cls({}, [], {})


# ---- text ---------------------------------------------------------------------------------------------
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-ish and VTT tags, ASS overrides ({\an8})
_SOUND = re.compile(r"\[[^\]]*\]")  # [music], [door slams]: what is heard, not seen
_NOTES = re.compile(r"[♪♫#]+")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?%)])")


def clean_text(text: str) -> str:
    """A cue's words as one line: tags, sound descriptions, music notes and dialogue dashes out."""
    text = html.unescape(_TAGS.sub(" ", text or ""))
    lines = [re.sub(r"^\s*[-–—]\s*", "", line) for line in text.splitlines()]
    text = _SOUND.sub(" ", " ".join(lines))
    text = _NOTES.sub(" ", text)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACE.sub(" ", text)).strip()


def ends_sentence(text: str) -> bool:
    return bool(re.search(r"[.!?…][\"'”’)\]]*$", text.strip()))


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    return parts or ([text.strip()] if text.strip() else [])


def times_valid(start: float, end: float) -> str | None:
    """Why (start, end) cannot be a cue's span, or None."""
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end)):
        return f"times are not numbers ({start!r}, {end!r})"
    if not (math.isfinite(start) and math.isfinite(end)):
        return f"times are not finite ({start!r}, {end!r})"
    if start < 0:
        return f"starts before the video ({start:.3f} s)"
    if end <= start:
        return f"ends at {end:.3f} s, not after its start {start:.3f} s"
    return None


# ---- one stream: duplicates, roll-ups, overlaps ---------------------------------------------------------
def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def tidy_stream(cues: list[Cue], where: str, unit: str = "cue") -> tuple[list[Cue], list[Problem]]:
    """Cues of one speaker / narrator track in time order, with no repeats and no overlaps.
    A roll-up caption (each cue repeats the line before it, as auto-captions do) keeps only its
    new words; a cue that repeats the one before it extends it; an overlap trims the earlier cue."""
    out: list[Cue] = []
    problems: list[Problem] = []
    for n, cue in sorted(enumerate(cues), key=lambda x: (x[1].start_s, x[0])):
        label = f"{where} {unit} {n + 1}"
        if out:
            prev = out[-1]
            touching = cue.start_s <= prev.end_s + MIN_CUE_S
            if touching and _norm(cue.text) == _norm(prev.text):
                out[-1] = replace(prev, end_s=max(prev.end_s, cue.end_s))
                problems.append(Problem(label, "duplicate_cue", f"{label}: repeats the cue before it ({cue.text[:60]!r}); merged", 1))
                continue
            if touching and _norm(cue.text).startswith(_norm(prev.text) + " "):
                words_before = len(prev.text.split())
                cue = replace(cue, text=" ".join(cue.text.split()[words_before:]))
                problems.append(Problem(label, "rollup_trimmed", f"{label}: repeats the words of the cue before it (roll-up caption); kept its new words"))
            if cue.start_s < prev.end_s:
                if cue.end_s <= prev.end_s + MIN_CUE_S:
                    problems.append(Problem(label, "overlapping_cue", f"{label}: lies inside the cue before it ({prev.start_s:.3f}-{prev.end_s:.3f} s)", 1))
                    continue
                if cue.start_s - prev.start_s >= MIN_CUE_S:
                    out[-1] = replace(prev, end_s=cue.start_s)
                    problems.append(Problem(label, "overlap_trimmed", f"{label}: starts at {cue.start_s:.3f} s, before the cue before it ends ({prev.end_s:.3f} s); that one now ends there"))
                else:  # both start together: the later one starts where the first ends
                    cue = replace(cue, start_s=prev.end_s)
                    problems.append(Problem(label, "overlap_trimmed", f"{label}: starts with the cue before it; now starts at {prev.end_s:.3f} s"))
        out.append(cue)
    return out, problems


# ---- sentences -------------------------------------------------------------------------------------
def to_sentences(cues: list[Cue], join_gap_s: float = JOIN_GAP_S, max_sentence_s: float = MAX_SENTENCE_S) -> list[Cue]:
    """Clip-friendly sentences: a cue that ends mid-sentence is joined with the next (when it
    follows closely and the two stay short), a cue holding several sentences is split, each
    sentence getting a share of the cue's time in proportion to its length."""
    joined: list[Cue] = []
    for cue in cues:
        if joined:
            prev = joined[-1]
            if (not ends_sentence(prev.text) and cue.start_s - prev.end_s <= join_gap_s
                    and cue.end_s - prev.start_s <= max_sentence_s and cue.kind == prev.kind):  # fmt: skip
                joined[-1] = replace(prev, end_s=cue.end_s, text=f"{prev.text} {cue.text}", open_end=cue.open_end)
                continue
        joined.append(cue)
    out: list[Cue] = []
    for cue in joined:
        parts = split_sentences(cue.text)
        if len(parts) < 2:
            out.append(cue)
            continue
        total = sum(len(p) for p in parts)
        t = cue.start_s
        for i, part in enumerate(parts):
            end = cue.end_s if i == len(parts) - 1 else t + (cue.end_s - cue.start_s) * len(part) / total
            out.append(replace(cue, start_s=t, end_s=end, text=part, open_end=cue.open_end and i == len(parts) - 1))
            t = end
    return out


# ---- a video's real length --------------------------------------------------------------------------------
def fit_to_duration(cues: list[Cue], duration_s: float, where: str) -> tuple[list[Cue], list[Problem]]:
    """Cues that start at or after the video's end are dropped; those that run past it end there.
    An end that was never given (`open_end`) is cut to the video's end without a word."""
    out: list[Cue] = []
    problems: list[Problem] = []
    for n, cue in enumerate(cues):
        label = f"{where} annotation {n + 1}"
        if cue.start_s >= duration_s:
            problems.append(Problem(label, "beyond_duration", f"{label}: starts at {cue.start_s:.3f} s, at or after the video's end ({duration_s:.3f} s): {cue.text[:60]!r}", 1))
            continue
        if cue.end_s > duration_s:
            if not cue.open_end:
                problems.append(Problem(label, "end_clamped", f"{label}: ends at {cue.end_s:.3f} s, after the video's end ({duration_s:.3f} s); now ends there"))
            cue = replace(cue, end_s=duration_s)
        out.append(cue)
    return out, problems
