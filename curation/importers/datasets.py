"""The dense-caption and narration datasets researchers already have, and word-level ASR.

| format | what it looks like | cues |
| --- | --- | --- |
| ActivityNet Captions | `{"v_id": {"duration", "timestamps": [[s, e]], "sentences": [...]}}` | caption |
| YouCook2 | `{"database": {"id": {"annotations": [{"segment": [s, e], "sentence"}]}}}` | caption |
| Charades-STA | lines `vid start end##sentence` | caption |
| Ego4D narrations | `{"uid": {"narration_pass_1": {"narrations": [{"timestamp_sec", "narration_text"}]}}}` | narration |
| word-level ASR | `[{"word", "start", "end"}]` per video (or whisper's `segments[].words`) | asr |

Each reader returns cues per video key (the dataset's id) and a Problem for every entry it
could not take; none raises on a bad entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from curation.files import file_problem
from curation.importers.cues import Cue, Parsed, Problem, clean_text, ends_sentence, tidy_stream, times_valid

EGO4D_MAX_SPAN_S = 8.0  # a narration is a moment: its span runs to the next one, at most this long
ASR_PAUSE_S = 0.6  # a silence this long ends a sentence of words
ASR_MAX_WORDS = 25
ASR_MAX_S = 10.0


def _load_json(path: Path, parsed: Parsed):
    """The JSON of `path`, or None with an `unreadable_source` problem."""
    problem = file_problem(str(path), path)
    if problem is not None:
        parsed.problems.append(Problem(str(path), "unreadable_source", problem[1]))
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, OSError) as err:
        parsed.problems.append(Problem(path.name, "unreadable_source", f"{path.name}: not JSON ({err})"))
        return None


def _load_videos(source: Path, parsed: Parsed, wrapper: str | None, expected: str) -> dict | None:
    """The object of video id -> entry of a dataset file (under `wrapper` when the file has
    one), or None with an `unreadable_source` problem."""
    data = _load_json(source, parsed)
    if data is None:
        return None
    if wrapper and isinstance(data, dict):
        data = data.get(wrapper, data)
    if not isinstance(data, dict):
        parsed.problems.append(Problem(source.name, "unreadable_source", f"{source.name}: expected {expected}, got {type(data).__name__}"))
        return None
    return data


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _add(parsed: Parsed, key: str, label: str, start, end, text, kind: str, origin: str, open_end: bool = False) -> None:
    """One entry: checked (times, words) and added to its video's cues, or a problem."""
    parsed.origin.setdefault(key, origin)
    cues = parsed.cues.setdefault(key, [])
    s, e = _number(start), _number(end)
    why = times_valid(s, e) if s is not None and e is not None else f"times are not numbers ({start!r}, {end!r})"
    if why:
        parsed.problems.append(Problem(label, "bad_times", f"{label}: {why}", 1))
        return
    words = clean_text(text) if isinstance(text, str) else ""
    if not words:
        parsed.problems.append(Problem(label, "empty_text", f"{label}: no text", 1))
        return
    cues.append(Cue(s, e, words, kind, open_end))


def _drop_exact_repeats(parsed: Parsed, where: str) -> None:
    """Dense captions may overlap (that is how they are made), but the same sentence over the
    same span twice is a copy."""
    for key, cues in parsed.cues.items():
        seen: set[tuple] = set()
        kept = []
        for n, cue in enumerate(cues):
            sig = (round(cue.start_s, 3), round(cue.end_s, 3), cue.text.lower())
            if sig in seen:
                label = f"{where} {key} annotation {n + 1}"
                parsed.problems.append(Problem(label, "duplicate_cue", f"{label}: the same sentence over the same span again ({cue.text[:60]!r})", 1))
                continue
            seen.add(sig)
            kept.append(cue)
        parsed.cues[key] = kept


def _entry_problem(parsed: Parsed, label: str, why: str, dropped: int = 1) -> None:
    parsed.problems.append(Problem(label, "bad_entry", f"{label}: {why}", dropped))


# ---- ActivityNet Captions --------------------------------------------------------------------------------
def read_activitynet(source: Path) -> Parsed:
    parsed = Parsed.empty()
    data = _load_videos(source, parsed, None, "an object of video ids")
    for vid, entry in (data or {}).items():
        label = f"{source.name} {vid}"
        times = entry.get("timestamps") if isinstance(entry, dict) else None
        sentences = entry.get("sentences") if isinstance(entry, dict) else None
        if not isinstance(times, list) or not isinstance(sentences, list):
            _entry_problem(parsed, label, "needs 'timestamps' and 'sentences' lists")
            continue
        if len(times) != len(sentences):
            _entry_problem(parsed, label, f"{len(times)} timestamps but {len(sentences)} sentences", abs(len(times) - len(sentences)))
        for n, (span, sentence) in enumerate(zip(times, sentences), start=1):
            if not (isinstance(span, list) and len(span) == 2):
                _entry_problem(parsed, f"{label} sentence {n}", f"timestamp {span!r} is not [start, end]")
                continue
            _add(parsed, vid, f"{label} sentence {n}", span[0], span[1], sentence, "caption", source.name)
    _drop_exact_repeats(parsed, source.name)
    return parsed


# ---- YouCook2 ------------------------------------------------------------------------------------------------
def read_youcook2(source: Path) -> Parsed:
    parsed = Parsed.empty()
    database = _load_videos(source, parsed, "database", "{'database': {id: ...}}")
    for vid, entry in (database or {}).items():
        label = f"{source.name} {vid}"
        annotations = entry.get("annotations") if isinstance(entry, dict) else None
        if not isinstance(annotations, list):
            _entry_problem(parsed, label, "needs an 'annotations' list")
            continue
        for n, ann in enumerate(annotations, start=1):
            segment = ann.get("segment") if isinstance(ann, dict) else None
            if not (isinstance(segment, list) and len(segment) == 2):
                _entry_problem(parsed, f"{label} annotation {n}", f"segment {segment!r} is not [start, end]")
                continue
            _add(parsed, vid, f"{label} annotation {n}", segment[0], segment[1], ann.get("sentence"), "caption", source.name)
    _drop_exact_repeats(parsed, source.name)
    return parsed


# ---- Charades-STA ---------------------------------------------------------------------------------------------
_CHARADES = re.compile(r"^\s*(\S+)\s+(\S+)\s+(\S+)\s*##(.*)$")


def read_charades_sta(source: Path) -> Parsed:
    parsed = Parsed.empty()
    problem = file_problem(str(source), source)
    if problem is not None:
        parsed.problems.append(Problem(str(source), "unreadable_source", problem[1]))
        return parsed
    text = source.read_bytes().decode("utf-8", errors="replace")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label = f"{source.name} line {n}"
        m = _CHARADES.match(line)
        if m is None:
            _entry_problem(parsed, label, f"not 'vid start end##sentence' ({line[:60]!r})")
            continue
        vid, start, end, sentence = m.groups()
        _add(parsed, vid, label, start, end, sentence, "caption", source.name)
    _drop_exact_repeats(parsed, source.name)
    return parsed


# ---- Ego4D narrations -------------------------------------------------------------------------------------------
_EGO_TAG = re.compile(r"#\s*(unsure|summary)\b", re.I)


def ego4d_text(text: str) -> str:
    """'#C C picks up the knife' -> 'The camera wearer picks up the knife.' (#C: the camera
    wearer, #O: someone else; the bare letter C is the camera wearer in both places)."""
    text = _EGO_TAG.sub(" ", text or "")
    text = re.sub(r"#\s*[CO]\b", " ", text)
    text = re.sub(r"^\s*C\b", "The camera wearer", text)
    text = re.sub(r"\bC\b", "the camera wearer", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text and not ends_sentence(text):
        text += "."
    return text[:1].upper() + text[1:]


def read_ego4d(source: Path, max_span_s: float = EGO4D_MAX_SPAN_S) -> Parsed:
    parsed = Parsed.empty()
    data = _load_videos(source, parsed, "videos", "an object of video uids")
    for uid, entry in (data or {}).items():
        label = f"{source.name} {uid}"
        passes = [entry.get(p) for p in ("narration_pass_1", "narration_pass_2")] if isinstance(entry, dict) else []
        narrations = next((p.get("narrations") for p in passes if isinstance(p, dict) and isinstance(p.get("narrations"), list)), None)
        if narrations is None:
            _entry_problem(parsed, label, "no narration_pass_1 (or _2) with a 'narrations' list")
            continue
        points = []
        for n, item in enumerate(narrations, start=1):
            t = _number(item.get("timestamp_sec")) if isinstance(item, dict) else None
            if t is None:
                _entry_problem(parsed, f"{label} narration {n}", "no numeric timestamp_sec")
                continue
            points.append((t, n, ego4d_text(str(item.get("narration_text") or ""))))
        points.sort()
        times = sorted({t for t, _, _ in points})
        for t, n, text in points:
            later = [x for x in times if x > t]
            end, open_end = (min(later[0], t + max_span_s), False) if later else (t + max_span_s, True)
            _add(parsed, uid, f"{label} narration {n}", t, end, text, "narration", source.name, open_end)
        parsed.cues[uid], tidy = tidy_stream(parsed.cues.get(uid, []), f"{source.name} {uid}")
        parsed.problems.extend(tidy)
    return parsed


# ---- word-level ASR -------------------------------------------------------------------------------------------
def _words_of(data) -> list | None:
    """The word list of one video: a list, `{"words": [...]}` or whisper's `{"segments": [{"words"}]}`."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("words"), list):
        return data["words"]
    if isinstance(data, dict) and isinstance(data.get("segments"), list):
        return [w for seg in data["segments"] if isinstance(seg, dict) for w in (seg.get("words") or [])]
    return None


def group_words(words: list, label: str, pause_s: float = ASR_PAUSE_S, max_words: int = ASR_MAX_WORDS, max_s: float = ASR_MAX_S) -> tuple[list[Cue], list[Problem]]:
    """Words into sentences, as LiveCC groups ASR: a pause, a sentence end, or a length limit
    closes one."""
    problems: list[Problem] = []
    good = []
    for n, w in enumerate(words, start=1):
        s = _number(w.get("start")) if isinstance(w, dict) else None
        e = _number(w.get("end")) if isinstance(w, dict) else None
        text = str(w.get("word", w.get("text", "")) if isinstance(w, dict) else "").strip()
        why = times_valid(s, e) if s is not None and e is not None else "needs numeric 'start' and 'end'"
        if why and s is not None and e is not None and s == e and s >= 0:
            why = None  # a word of no length (a forced aligner's punctuation) is still a word
        if why or not text:
            problems.append(Problem(f"{label} word {n}", "bad_word", f"{label} word {n}: {why or 'no text'} ({w!r:.80})", 0))
            continue
        good.append((s, e, text))
    good.sort(key=lambda x: x[0])
    cues: list[Cue] = []
    group: list[tuple[float, float, str]] = []

    def close():
        if group:
            text = clean_text(" ".join(t for _, _, t in group))
            if text:
                cues.append(Cue(group[0][0], max(e for _, e, _ in group), text, "asr"))
            group.clear()

    for s, e, text in good:
        if group and (s - group[-1][1] > pause_s or len(group) >= max_words or e - group[0][0] > max_s or ends_sentence(group[-1][2])):
            close()
        group.append((s, e, text))
    close()
    return [c for c in cues if c.end_s > c.start_s], problems


def read_asr_words(source: Path) -> Parsed:
    """A folder of `<video stem>.json` word lists, or one JSON file: a word list (its stem names
    the video) or an object of video id -> word list."""
    parsed = Parsed.empty()
    files = [source] if source.is_file() else sorted(source.rglob("*.json"))
    if not files:
        parsed.problems.append(Problem(str(source), "unreadable_source", f"{source}: no .json files found"))
    for path in files:
        data = _load_json(path, parsed)
        if data is None:
            continue
        words = _words_of(data)
        per_video = {path.stem: words} if words is not None else (data if isinstance(data, dict) and source.is_file() else None)
        if per_video is None:
            parsed.problems.append(Problem(path.name, "unreadable_source", f"{path.name}: not a word list ([{{'word', 'start', 'end'}}])"))
            continue
        for key, value in per_video.items():
            words = _words_of(value)
            label = f"{path.name} {key}" if len(per_video) > 1 or key != path.stem else path.name
            if words is None:
                _entry_problem(parsed, label, "not a word list")
                continue
            cues, problems = group_words(words, label)
            parsed.problems.extend(problems)
            cues, tidy = tidy_stream(cues, label)
            parsed.problems.extend(tidy)
            parsed.cues.setdefault(key, []).extend(cues)
            parsed.origin.setdefault(key, path.name)
    return parsed
