"""Perception without a vision model: one clip's signals (a `clip_signals` row: on-screen text,
people and faces with where they are, camera motion, brightness, colour, blur) said as a caption
in plain English AND as graph facts (a curation.graph.ClipExtraction) the graph stage merges
without a teacher.

Only what the detectors measured is said; nothing is guessed (no "a man", no "a street"). Given
the previous clip's row of the same window, the caption also says what changed (text or a person
gone, a person or text new, the scene darker), and the gone things become `disappears` relations.

The words are chosen for the code that reads them back:
- every entity name occurs, word for word, in the caption of each clip it is in: the graph keeps
  only entities the caption supports (`curation.graph.grounded`) and the answer check orders
  entities by the first caption naming them (`curation.verify.first_mention`);
- on-screen text is the entity `text <WORDS>` (ExtractedEntity names allow letters, digits,
  spaces, ' and -; OCR punctuation is dropped), so a thought saying "the text OPEN" names it;
- a person is named by where they are ("person on the left"): the detectors count people, they
  do not tell one from another, so the same position in two clips is one entity by name;
- camera motion is the relation `camera moves_<direction>`, the predicate form the checks read
  as a motion event with a direction (curation.checks.text.event_key), so a thought saying the
  camera moves the other way, or before it does, is caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curation.graph import ClipExtraction, ExtractedEntity, ExtractedRelation, normalize_name

SIGNALS_PROMPT_VERSION = "signals.v1"

# Brightness is mean luma (0-255). DataFlow-MM keeps clips with brightness 20-140; inside that
# range these words only say how the clip looks.
DARK_BELOW, DIM_BELOW, BRIGHT_ABOVE = 50.0, 90.0, 170.0
BRIGHTNESS_CHANGE = 30.0  # a change of mean luma the eye notices between two clips
BLURRY_BELOW = 100.0  # variance of the Laplacian: the usual "blurry" cut-off
# Mean optical-flow magnitude in px/s at the signals stage's analysis width (576 px, docs/signals.md);
# its filters keep 0.05-150. The real samples measure 10-70: between these words nothing is said.
LITTLE_MOTION_BELOW, MUCH_MOTION_ABOVE = 2.0, 100.0
MIN_OCR_CONFIDENCE = 0.5  # below it RapidOCR's lines are mostly misreadings
MAX_TEXT_LINES = 3  # lines the caption quotes
MAX_TEXT_ENTITIES = 2  # ClipExtraction allows 5 entities: leave room for people, camera, scene
MAX_ENTITIES, MAX_RELATIONS = 5, 3  # ClipExtraction's limits
NAME_MAX = 40  # ExtractedEntity.name's limit

POSITIONS = ("left", "centre", "right")
_WHERE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}
_DIRECTIONS = ("left", "right", "up", "down")
_NUMBERS = "zero one two three four five six seven eight nine ten".split()
LITERAL_OBJECT = "view"  # the object of `moves_<d>` / `disappears` (not "scene": that is an entity here)


@dataclass(frozen=True)
class Perception:
    """What a clip's signals say: the captions row's caption, entities, actions, on-screen text
    and its graph facts."""

    caption: str
    facts: ClipExtraction
    entities: list[str]
    actions: list[str]
    on_screen_text: list[str]


# ---- what the row saw ----------------------------------------------------------------------
def _number(n: int) -> str:
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


def text_lines(row: dict) -> list[str]:
    """The OCR lines worth saying: confident enough, at least two letters or digits, no repeats."""
    if row.get("ocr_confidence") is not None and row["ocr_confidence"] < MIN_OCR_CONFIDENCE:
        return []
    lines = row.get("ocr_lines") or [p for p in (row.get("ocr_text") or "").split(" | ")]
    out: list[str] = []
    for line in lines:
        line = " ".join((line or "").split())
        if len(re.findall(r"[^\W_]", line)) >= 2 and line not in out:
            out.append(line)
    return out


def text_name(line: str) -> str | None:
    """The entity name of an on-screen line: "text " + its ASCII words, cut at a word to fit the
    name's 40 characters; None when the line has no ASCII word (e.g. only CJK characters)."""
    words = re.findall(r"[A-Za-z0-9]+", line)
    name = "text"
    for w in words:
        if len(name) + 1 + len(w) > NAME_MAX:
            break
        name += " " + w
    return name if name != "text" else None


def people_at(row: dict) -> dict[str, tuple[int, bool]]:
    """position -> (people seen there, a face seen there), in left-centre-right order. A face is
    a person whose face the face detector saw, whether or not the body detector saw them."""
    people = [p for p in row.get("people_positions") or [] if p in _WHERE]
    faces = [p for p in row.get("face_positions") or [] if p in _WHERE]
    out = {}
    for pos in POSITIONS:
        n, f = people.count(pos), faces.count(pos)
        if n or f:
            out[pos] = (max(n, f), f > 0)
    if not out and max(row.get("people") or 0, row.get("faces") or 0) > 0:
        # counted without positions: a person, nowhere in particular
        out[""] = (max(row.get("people") or 0, row.get("faces") or 0), (row.get("faces") or 0) > 0)
    return out


def person_name(pos: str) -> str:
    return f"person {_WHERE[pos]}" if pos else "person"


def brightness_word(brightness: float | None) -> str | None:
    if brightness is None:
        return None
    if brightness < DARK_BELOW:
        return "dark"
    if brightness < DIM_BELOW:
        return "dim"
    if brightness > BRIGHT_ABOVE:
        return "bright"
    return "well lit"


def camera_direction(row: dict) -> str | None:
    d = (row.get("camera_direction") or "").strip().lower()
    return d if d in (*_DIRECTIONS, "static") else None


def colour_word(row: dict) -> str | None:
    c = (row.get("dominant_colour") or "").strip().lower()
    return c if re.fullmatch(r"[a-z]+(?: [a-z]+)?", c) and len(c) <= 24 else None


# ---- the caption and the facts ---------------------------------------------------------------
@dataclass
class _Seen:
    texts: list[tuple[str, str | None]]  # (line as read, entity name or None)
    people: dict[str, tuple[int, bool]]

    @property
    def text_names(self) -> list[str]:
        return [n for _, n in self.texts if n]


def _seen(row: dict) -> _Seen:
    return _Seen([(line, text_name(line)) for line in text_lines(row)[:MAX_TEXT_LINES]], people_at(row))


def _text_sentence(line: str, name: str | None, before: set[str] | None) -> str:
    if name is None:
        return f'On screen: "{line}".'
    shown = name[len("text ") :]
    said = f'the text {shown}' + ("" if shown == line else f' ("{line}")')
    key = normalize_name(name)
    if before is None:
        return f"{said[0].upper()}{said[1:]} is on screen."
    verb = "is still on screen" if key in before else "appears on screen"
    return f"{said[0].upper()}{said[1:]} {verb}."


def _person_sentence(pos: str, n: int, face: bool, before: set[str] | None) -> str:
    name = person_name(pos)
    face_part = ", face visible" if face else ""
    if n > 1:
        return f"There are {_number(n)} people{' ' + _WHERE[pos] if pos else ''}: a {name} and {_number(n - 1)} more{face_part}."
    if before is None:
        return f"There is a {name}{face_part}."
    if normalize_name(name) in before:
        return f"There is still a {name}{face_part}."
    return f"A {name} appears{face_part}."


def _entities(seen: _Seen, moving: bool, scene_attrs: list[str]) -> list[ExtractedEntity]:
    """The clip's entities, most telling first, within ClipExtraction's five."""
    out = [ExtractedEntity(name=n, type="text", attributes=[]) for n in seen.text_names[:MAX_TEXT_ENTITIES]]
    out += [ExtractedEntity(name=person_name(p), type="person", attributes=["face visible"] if f else []) for p, (_, f) in seen.people.items()]
    if moving:
        out.append(ExtractedEntity(name="camera", type="other", attributes=[]))
    if scene_attrs:
        out.append(ExtractedEntity(name="scene", type="place", attributes=scene_attrs[:3]))
    return out[:MAX_ENTITIES]


def _things(seen: _Seen, prev: _Seen | None) -> tuple[list[str], list[str], list[str]]:
    """(sentences, actions, names gone) about the texts and people; against `prev` (the previous
    clip) a thing is new, still there, or gone."""
    before_texts = {normalize_name(n) for n in prev.text_names} if prev is not None else None
    before_people = {normalize_name(person_name(p)) for p in prev.people} if prev is not None else None
    sentences, actions = [], []
    for line, name in seen.texts:
        sentences.append(_text_sentence(line, name, before_texts))
        if name and before_texts is not None and normalize_name(name) not in before_texts:
            actions.append(f"{name} appears")
    for pos, (n, face) in seen.people.items():
        sentences.append(_person_sentence(pos, n, face, before_people))
        if before_people is not None and normalize_name(person_name(pos)) not in before_people:
            actions.append(f"{person_name(pos)} appears")
    gone: list[str] = []
    if prev is not None:
        now = {normalize_name(n) for n in seen.text_names}
        gone = [n for n in prev.text_names if normalize_name(n) not in now]
        gone += [person_name(p) for p in prev.people if p not in seen.people]
    sentences += [f"The {g} is gone." for g in gone]
    actions += [f"{g} disappears" for g in gone]
    return sentences, actions, gone


def _camera(row: dict) -> tuple[list[str], str | None]:
    """(sentences, the direction the camera moves or None) from the camera direction and motion."""
    sentences = []
    direction = camera_direction(row)
    if direction in _DIRECTIONS:
        sentences.append(f"The camera moves {direction}.")
    elif direction == "static":
        sentences.append("The camera is static.")
    motion = row.get("motion")
    if motion is not None and motion < LITTLE_MOTION_BELOW:
        sentences.append("There is little motion.")
    elif motion is not None and motion > MUCH_MOTION_ABOVE:
        sentences.append("There is a lot of motion.")
    return sentences, direction if direction in _DIRECTIONS else None


def _scene(row: dict, previous: dict | None) -> tuple[list[str], list[str], str | None]:
    """(sentences, the scene's attributes, "darker"/"brighter" than the previous clip or None)."""
    light, colour = brightness_word(row.get("brightness")), colour_word(row)
    blurry = "blurry" if row.get("blur") is not None and row["blur"] < BLURRY_BELOW else None
    looks = [w for w in (light, f"mostly {colour}" if colour else None, blurry) if w]
    sentences = []
    if looks:
        sentences.append(f"The scene is {', '.join(looks[:-1])} and {looks[-1]}." if len(looks) > 1 else f"The scene is {looks[0]}.")
    change = None
    if previous is not None and row.get("brightness") is not None and previous.get("brightness") is not None:
        delta = row["brightness"] - previous["brightness"]
        if abs(delta) >= BRIGHTNESS_CHANGE:
            change = "darker" if delta < 0 else "brighter"
            sentences.append(f"The scene is {change} than in the previous clip.")
    return sentences, [a for a in (light, colour, blurry) if a], change


def perceive_signals(row: dict, previous: dict | None = None) -> Perception:
    """The caption and graph facts of one clip_signals row; `previous` is the row of the clip
    before it in the same window (None for a window's first clip): then the caption also says
    what changed since, and what is gone becomes a `disappears` relation."""
    seen = _seen(row)
    prev = _seen(previous) if previous is not None else None
    thing_sentences, actions, gone = _things(seen, prev)
    camera_sentences, direction = _camera(row)
    scene_sentences, scene_attrs, change = _scene(row, previous)

    entities = _entities(seen, direction is not None, scene_attrs)
    names = {normalize_name(e.name) for e in entities}
    relations = []
    if direction is not None:
        actions.append(f"camera moves {direction}")
    if direction is not None and "camera" in names:
        relations.append(ExtractedRelation(subject="camera", predicate=f"moves {direction}", object=LITERAL_OBJECT))
    # A gone thing's relation needs it as an entity of the window's graph: the previous clip's facts named it.
    prev_names = {normalize_name(e.name) for e in perceive_signals(previous).facts.entities} if previous is not None else set()
    relations += [ExtractedRelation(subject=g, predicate="disappears", object=LITERAL_OBJECT) for g in gone if normalize_name(g) in prev_names]
    if change and "scene" in names:
        relations.append(ExtractedRelation(subject="scene", predicate="becomes", object=change))
    facts = ClipExtraction(entities=entities, relations=relations[:MAX_RELATIONS])
    caption = " ".join(thing_sentences + camera_sentences + scene_sentences) or "The signals saw nothing to describe."
    return Perception(caption, facts, [e.name for e in entities], actions, [line for line, _ in seen.texts])
