"""Video knowledge graphs: what a teacher extracts from each clip, merged per window, and the
questions a merged graph can answer on its own.

Extraction is per clip (short prompts suit small teachers); the merge is deterministic: entity
names are normalised (case, articles, punctuation, plural 's'), equal names are one entity whose
id is derived from the name, attributes are unioned, clips are kept in time order. The same
extractions always give the same graph, whatever order the replies arrived in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, Field

ENTITY_TYPES = ("person", "animal", "object", "vehicle", "place", "text", "other")


# ---- what the teacher returns for one clip ------------------------------------------------
Attribute = Annotated[str, Field(min_length=1, max_length=24)]

class ExtractedEntity(BaseModel):
    name: str = Field(..., min_length=3, max_length=40, pattern=r"^[A-Za-z][A-Za-z0-9 '-]+$")
    type: Literal["person", "animal", "object", "vehicle", "place", "text", "other"]
    attributes: list[Attribute] = Field(..., max_length=3)


class ExtractedRelation(BaseModel):
    subject: str = Field(..., min_length=1, max_length=40)
    predicate: str = Field(..., min_length=1, max_length=30)
    object: str = Field(..., min_length=1, max_length=40)


class ClipExtraction(BaseModel):
    # Short lists: a clip names few things, and every item costs a constrained model seconds.
    entities: list[ExtractedEntity] = Field(..., max_length=5)
    relations: list[ExtractedRelation] = Field(..., max_length=3)


# ---- names ---------------------------------------------------------------------------------
_ARTICLES = {"a", "an", "the", "some"}


def normalize_name(name: str) -> str:
    """'The Red  Triangles.' -> 'red triangle' (the key duplicates are merged on)."""
    words = re.sub(r"[^a-z0-9 ]+", " ", name.lower().replace("_", " ").replace("-", " ")).split()
    while words and words[0] in _ARTICLES:
        words = words[1:]
    if words and len(words[-1]) > 3 and words[-1].endswith("s") and not words[-1].endswith("ss"):
        words[-1] = words[-1][:-1]
    return " ".join(words)


def entity_id(normalized: str) -> str:
    return "e-" + hashlib.sha1(normalized.encode()).hexdigest()[:10]


def mentions(text: str, normalized_name: str) -> bool:
    """Whether a text names an entity (all its words, as whole words, in order)."""
    if not normalized_name:
        return False
    pattern = r"\b" + r"\s+".join(re.escape(w) + r"s?" for w in normalized_name.split()) + r"\b"
    return re.search(pattern, text.lower().replace("_", " ").replace("-", " ")) is not None


def grounded(name: str, description: str) -> bool:
    """A name the description supports: one of its content words (3+ letters) appears in it."""
    text = description.lower()
    return any(len(w) >= 3 and re.search(r"\b" + re.escape(w), text) for w in normalize_name(name).split())


# ---- merge ---------------------------------------------------------------------------------
@dataclass
class ClipFacts:
    clip_id: str
    start_s: float
    extraction: ClipExtraction


@dataclass
class _Entity:
    name: str
    type: str
    attributes: set[str] = field(default_factory=set)
    clip_ids: list[str] = field(default_factory=list)
    first_clip_id: str = ""
    first_seen_s: float = 0.0


def merge_graph(clips: list[ClipFacts]) -> tuple[list[dict], list[dict]]:
    """(entities, relations) rows for the GRAPHS table, from per-clip extractions."""
    entities: dict[str, _Entity] = {}
    for clip in sorted(clips, key=lambda c: (c.start_s, c.clip_id)):
        for e in clip.extraction.entities:
            key = normalize_name(e.name)
            if not key:
                continue
            ent = entities.get(key)
            if ent is None:
                ent = entities[key] = _Entity(key, e.type, first_clip_id=clip.clip_id, first_seen_s=clip.start_s)
            elif ent.type == "other" and e.type != "other":
                ent.type = e.type
            ent.attributes |= {a.strip().lower() for a in e.attributes if a.strip()}
            if clip.clip_id not in ent.clip_ids:
                ent.clip_ids.append(clip.clip_id)
    relations: dict[tuple, dict] = {}
    for clip in sorted(clips, key=lambda c: (c.start_s, c.clip_id)):
        for r in clip.extraction.relations:
            subject, obj = normalize_name(r.subject), normalize_name(r.object)
            if subject not in entities or not obj:
                continue  # a relation about nothing the graph knows cannot be grounded
            predicate = "_".join(re.sub(r"[^a-z0-9 ]+", " ", r.predicate.lower()).split())
            if not predicate:
                continue
            target = entity_id(obj) if obj in entities else obj
            key = (entity_id(subject), predicate, target, clip.clip_id)
            relations.setdefault(key, {"subject": key[0], "predicate": predicate, "object": target, "clip_id": clip.clip_id, "time_s": clip.start_s})
    entity_rows = [
        {
            "entity_id": entity_id(e.name),
            "name": e.name,
            "type": e.type,
            "attributes": sorted(e.attributes),
            "clip_ids": e.clip_ids,
            "first_clip_id": e.first_clip_id,
            "first_seen_s": e.first_seen_s,
        }
        for e in sorted(entities.values(), key=lambda e: (e.first_seen_s, e.name))
    ]
    return entity_rows, sorted(relations.values(), key=lambda r: (r["time_s"], r["subject"], r["predicate"], r["object"]))


# ---- questions a graph answers by itself (templates; no teacher needed) --------------------
LETTERS = "ABCDE"
_PLURALS = {"person": "people", "text": "texts", "other": "things", "animal": "animals", "object": "objects",
            "vehicle": "vehicles", "place": "places"}  # fmt: skip


@dataclass(frozen=True)
class TemplateQuestion:
    template: str
    type: str  # multiple_choice, numerical, yes_no
    question: str
    options: list[str]  # "A. green circle" style; empty unless multiple choice
    answer: str  # letter, number string, "Yes"/"No"
    evidence_clip_ids: list[str]
    details: dict  # what the question is about, for scoring against a ground truth
    evidence_span: str | None = None  # current / recent / window (curation.questions.evidence_span)


def _rank(seed: str, text: str) -> str:
    return hashlib.sha1(f"{seed}|{text}".encode()).hexdigest()


# Seeded phrase banks (the window id picks one). count_entities keeps one sentence on purpose: the
# same words about different videos must all survive dedup (tests/test_gate.py), and the simulator
# and the verifier read its type word. Every appeared_before phrasing has the X-before-Y shape
# that `before_pair` (curation/verify.py) and the gate's oracle read.
FIRST_APPEARANCE = (
    "Which of these appeared first in the video?",
    "Which of these was the first to show up?",
    "Which of these did the video show earliest?",
)
APPEARED_BEFORE = (
    "Did the {x} appear before the {y}?",
    "Did the {x} show up before the {y}?",
    "Did the {x} come before the {y}?",
)


def _phrase(bank: tuple[str, ...], seed: str, key: str) -> str:
    return bank[int(_rank(seed, "words/" + key)[:8], 16) % len(bank)]


def _firsts(entities: list[dict]) -> list[dict]:
    """One entity per first clip (the earliest name), in time order: pairs of them have a
    well-defined 'which came first', and they sit in different clips."""
    seen, out = set(), []
    for e in sorted(entities, key=lambda e: (e["first_seen_s"], e["name"])):
        if e["first_clip_id"] not in seen:
            seen.add(e["first_clip_id"])
            out.append(e)
    return out


def bare_references(names: list[str]) -> set[str]:
    """Names that are only the head noun of another name ("van" beside "grey van"): prose says
    "a grey van ... the van", so the two may be one thing, and no count over them is sure."""
    heads = {n.split()[-1] for n in names if len(n.split()) >= 2}
    return {n for n in names if len(n.split()) == 1 and n in heads}


def count_question(entities: list[dict]) -> TemplateQuestion | None:
    """How many different <type> appeared: evidence = the clips where each was first seen."""
    by_type: dict[str, list[dict]] = {}
    for e in entities:
        by_type.setdefault(e["type"], []).append(e)
    candidates = [(t, es) for t, es in by_type.items()
                  if len(es) >= 2 and len({e["first_clip_id"] for e in es}) >= 2 and not bare_references([e["name"] for e in es])]  # fmt: skip
    if not candidates:
        return None
    etype, ents = sorted(candidates, key=lambda c: (-len(c[1]), c[0]))[0]
    evidence = sorted({e["first_clip_id"] for e in ents})
    return TemplateQuestion(
        "count_entities", "numerical",
        f"How many different {_PLURALS.get(etype, etype + 's')} have appeared in the video so far?",
        [], str(len(ents)), evidence, {"entity_type": etype, "entities": sorted(e["name"] for e in ents)},
    )  # fmt: skip


def first_appearance_question(entities: list[dict], seed: str, max_options: int = 4) -> TemplateQuestion | None:
    """Which of these appeared first (multiple choice over entities first seen in different clips)."""
    firsts = _firsts(entities)
    if len(firsts) < 2:
        return None
    chosen = sorted(firsts, key=lambda e: _rank(seed, e["name"]))[: max(2, min(max_options, len(LETTERS)))]
    earliest = min(chosen, key=lambda e: (e["first_seen_s"], e["name"]))
    order = sorted(chosen, key=lambda e: _rank(seed + "/order", e["name"]))
    options = [f"{LETTERS[i]}. {e['name']}" for i, e in enumerate(order)]
    answer = LETTERS[order.index(earliest)]
    return TemplateQuestion(
        "first_appearance", "multiple_choice", _phrase(FIRST_APPEARANCE, seed, "first_appearance"),
        options, answer, sorted({e["first_clip_id"] for e in chosen}),
        {"entities": [e["name"] for e in order], "answer_entity": earliest["name"]},
    )  # fmt: skip


def appeared_before_question(entities: list[dict], seed: str) -> TemplateQuestion | None:
    """Did X appear before Y (yes/no); the seed picks whether the true order or its reverse is asked."""
    firsts = _firsts(entities)
    if len(firsts) < 2:
        return None
    a, b = sorted(sorted(firsts, key=lambda e: _rank(seed, e["name"]))[:2], key=lambda e: e["first_seen_s"])
    ask_true_order = int(_rank(seed, "yes_no")[:2], 16) % 2 == 0
    x, y = (a, b) if ask_true_order else (b, a)
    return TemplateQuestion(
        "appeared_before", "yes_no", _phrase(APPEARED_BEFORE, seed, "appeared_before").format(x=x["name"], y=y["name"]),
        [], "Yes" if ask_true_order else "No", sorted({a["first_clip_id"], b["first_clip_id"]}),
        {"first": x["name"], "second": y["name"]},
    )  # fmt: skip


def template_questions(entities: list[dict], seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    """The entity-only templates this graph supports (each needs >= 2 different clips). The
    templates over relations, text and attributes, and the evidence span, are
    curation.questions.window_questions (what the qa stage asks)."""
    out = [count_question(entities), first_appearance_question(entities, seed, max_options), appeared_before_question(entities, seed)]
    return [q for q in out if q is not None and len(set(q.evidence_clip_ids)) >= 2]
