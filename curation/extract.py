"""Facts of a caption read by rules: the knowledge-graph extraction that needs no teacher.

Timestamped annotations (dense-caption datasets, narrations, the synthetic samples' ground truth)
often say plainly what is seen: "A red circle appears and moves left. The blue square disappears."
Reading them with the same parser the gate's checks use (curation.checks.text) gives the things
they name (a noun phrase whose head is in the checks' lexicon: shapes, people, animals, vehicles,
everyday objects, with its colours as attributes) and what they are told to do (appear,
disappear, move + direction). A small teacher (the embedded 270M model) misses half of these
and invents relations; the rules miss what their lexicon lacks, and never invent: whatever they
extract is, by construction, a phrase of the caption.
"""

from __future__ import annotations

from curation.checks.text import BASE_HEADS, DISAPPEAR, canon, LEXICON, MOVE, TYPE_WORDS, events_told, noun_phrases, parse
from curation.graph import ClipExtraction, ExtractedEntity, ExtractedRelation, normalize_name

RULES_VERSION = "rules.v1"
_TYPES = {"shape": "object", "object": "object", "person": "person", "animal": "animal", "vehicle": "vehicle"}
# The extraction schema's limits (a clip names few things); disappearances rank first because
# they happen once, while a motion is told again in every clip it lasts.
_MAX_ENTITIES, _MAX_RELATIONS = 5, 3


def _entity_type(head: str) -> str:
    category = LEXICON.get(head) or TYPE_WORDS.get(head) or "object"
    return _TYPES.get(category, "other")


def extract_facts(caption: str) -> ClipExtraction:
    """The entities and events a caption states, as a graph extraction (empty when it names
    nothing the lexicon knows). Appearing is not a relation: the merge dates every entity by the
    first clip that names it."""
    entities: dict[str, ExtractedEntity] = {}
    events: list[tuple[int, str, str, str]] = []  # (rank, subject, predicate, object)
    for mention in noun_phrases(parse(caption or ""), BASE_HEADS, frozenset()):
        name = normalize_name(mention.display)
        if len(name) < 3 or not name[0].isalpha():
            continue
        # "a grey van ... the van": a bare head noun after a fuller name of it is that thing again
        name = next((n for n in entities if " " not in name and n.split()[-1] == name), name)
        if name not in entities and len(entities) < _MAX_ENTITIES:
            colours = [w for w in mention.display.lower().split()[:-1] if canon(w) in mention.colours]
            entities[name] = ExtractedEntity(name=name, type=_entity_type(mention.head), attributes=colours[:3])
        if name not in entities:
            continue
        for event in sorted(events_told(mention.segment)):
            if event == (DISAPPEAR,):
                events.append((0, name, "disappears", "scene"))
            elif event[0] == MOVE:
                events.append((1, name, f"moves {event[1]}", "screen"))
    chosen = sorted(dict.fromkeys(events), key=lambda e: e[0])[:_MAX_RELATIONS]
    relations = [ExtractedRelation(subject=s, predicate=p, object=o) for _, s, p, o in sorted(chosen, key=events.index)]
    return ClipExtraction(entities=list(entities.values()), relations=relations)
