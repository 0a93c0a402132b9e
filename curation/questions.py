"""Template questions over a window's knowledge graph: the answer fixed by the graph, options
shuffled by the window seed, wording drawn from seeded phrase banks, and the span of evidence
each question needs.

Templates (each asked only when the graph's facts make its answer unambiguous, else skipped):
- count_entities, first_appearance, appeared_before: the entity-only templates of curation/graph.py;
- order (multiple choice): what first appeared right after / just before X. "First appeared" is
  the order of first appearances of names (a second red circle is not new), which the graph
  knows exactly at clip granularity: X must be the only thing first seen in its clip, and the
  clip that brings the next (previous) new thing must bring exactly one;
- count_kind (numerical): how many different <head noun>s ("circles") have appeared: the names
  sharing a head noun (each with a modifier: "red circle", "blue circle");
- attribute (multiple choice): the colour of a thing named without its colour ("the first circle
  to appear", "the new square that appeared right after the blue circle");
- action (multiple choice): which way X moved (relations moves_left ... from the extraction);
- where_went (multiple choice): where X went before it disappeared (a disappears relation and
  the direction it moved);
- on_screen_text (multiple choice): which on-screen text (entities of type "text") came first /
  last, or what text appeared right after another;
- still_there (yes/no): is X still on screen at the window's last clip: Yes when X is seen in
  the last clip and the one before and nothing says it left; No when X disappears (a
  `disappears` relation) before the last clip and is not seen again. Absence alone is not a No:
  a detector that misses a face for one clip must not make a wrong answer.

Facts a clip's extraction may have cut away are not trusted: an extraction keeps at most 5
entities and 3 relations (curation.graph.ClipExtraction), so a clip with 5 entities may have lost
a name (no order or count question reaches it; unless a place is among the 5: the signals
perception lists the scene last, so a list that reached it lost nothing) and a clip with 3
relations may have lost a motion (no direction question about anything seen there).

Evidence span (`evidence_span`, CogStream / TimeChat-Online style), from the evidence clips'
positions in the window (last clip = L):
- "current": the last clip is evidence and all evidence is within the last two clips (this clip
  and what it is compared with just before);
- "recent": all evidence within the last RECENT_CLIPS (3) clips, not "current";
- "window": some evidence is older (the window so far).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from curation.graph import (
    LETTERS,
    TemplateQuestion,
    _phrase,
    _rank,
    appeared_before_question,
    count_question,
    first_appearance_question,
    normalize_name,
)

SPANS = ("current", "recent", "window")
RECENT_CLIPS = 3
LEGACY_TEMPLATES = ("count_entities", "first_appearance", "appeared_before")
NEW_TEMPLATES = ("order", "count_kind", "attribute", "action", "where_went", "on_screen_text", "still_there")
TEMPLATES = LEGACY_TEMPLATES + NEW_TEMPLATES
# ClipExtraction's limits: a clip at a limit may have lost what did not fit.
FULL_ENTITIES = 5
FULL_RELATIONS = 3
DIRECTIONS = ("left", "right", "up", "down")
COLOUR_WORDS = ("red", "green", "blue", "yellow", "white", "black", "grey", "orange", "purple", "pink", "brown",
                "cyan", "magenta", "violet", "gold", "silver", "beige", "turquoise")  # fmt: skip

THING_TYPES = ("object", "animal", "vehicle", "person")
KIND_TYPES = ("object", "animal", "vehicle")
_FUNCTION_WORDS = {"on", "in", "at", "of", "the", "with", "to", "from", "by", "and"}
_MOVE = re.compile(r"^(?:move|moves|moving|moved|goes|going|went|heads|heading|drifts|drifting|walks|walking|runs|running)_(left|right|up|down)$")
_GONE = re.compile(r"^(?:disappear\w*|vanish\w*|leaves|exits|exited|left_(?:the_)?(?:scene|screen|frame|view))$")


# ---- evidence span -------------------------------------------------------------------------
def evidence_span(evidence_clip_ids: list[str], window_clip_ids: list[str]) -> str | None:
    """'current' / 'recent' / 'window' (module doc), or None when no evidence clip is in the window."""
    at = {c: i for i, c in enumerate(window_clip_ids)}
    idx = sorted({at[c] for c in evidence_clip_ids or [] if c in at})
    if not idx:
        return None
    last = len(window_clip_ids) - 1
    if idx[-1] == last and idx[0] >= last - 1:
        return "current"
    if idx[0] >= last - (RECENT_CLIPS - 1):
        return "recent"
    return "window"


# ---- words ---------------------------------------------------------------------------------
_IRREGULAR_PLURALS = {"person": "people", "child": "children", "man": "men", "woman": "women", "mouse": "mice",
                      "foot": "feet", "tooth": "teeth", "sheep": "sheep", "fish": "fish", "deer": "deer"}  # fmt: skip


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _pattern(phrasing: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", phrasing)
    body = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(body.replace(r"\ ", r"\s+"), re.IGNORECASE)


def parse(bank: tuple[str, ...], text: str) -> dict | None:
    """The fields of the bank phrasing the text is (whitespace-insensitive), or None."""
    text = " ".join((text or "").split())
    for phrasing in bank:
        m = _pattern(phrasing).fullmatch(text)
        if m:
            return {k: v.strip().strip('"') for k, v in m.groupdict().items()}
    return None


# Phrase banks. Every phrasing of a bank asks the same thing; the verifier reads the question by
# matching it against its bank (a reworded question outside the bank is unverifiable, not guessed).
ORDER_AFTER = (
    "Which of these first appeared right after the {x} did?",
    "What was the next new thing to appear after the {x}?",
    "Right after the {x} showed up, which of these appeared for the first time?",
    "What new thing appeared right after the {x}?",
)
ORDER_BEFORE = (
    "Which of these first appeared just before the {x} did?",
    "What was the last new thing to appear before the {x}?",
    "Just before the {x} showed up, which of these appeared for the first time?",
    "What new thing appeared just before the {x}?",
)
COUNT_KIND = (
    "How many different {kinds} have appeared so far?",
    "How many different {kinds} have been seen in the video so far?",
    "So far, how many different {kinds} have shown up?",
    "How many different {kinds} have appeared in the video up to now?",
)
ATTRIBUTE = (
    "What colour was the {ref}?",
    "Which colour did the {ref} have?",
    "What was the colour of the {ref}?",
)
REF_FIRST = ("first {noun} to appear", "first {noun} that appeared", "earliest {noun} to show up")
REF_AFTER = ("new {noun} that appeared right after the {x}", "{noun} that first appeared right after the {x}")
ACTION = (
    "Which way did the {x} move?",
    "In which direction did the {x} move?",
    "Which direction was the {x} moving in?",
    "Where was the {x} heading?",
)
WHERE_WENT = (
    "Where did the {x} go?",
    "Which way did the {x} go before it disappeared?",
    "Where was the {x} going before it vanished?",
)
TEXT_FIRST = (
    "Which of these texts appeared on screen first?",
    "Which of these on-screen texts was shown earliest?",
    "Which of these texts was the first to be shown on screen?",
)
TEXT_LAST = (
    "Which of these texts appeared on screen most recently?",
    "Which of these on-screen texts was shown last?",
)
TEXT_AFTER = (
    'What text appeared on screen right after "{x}"?',
    'Which text was shown next after "{x}"?',
    'Right after "{x}", which text appeared on screen?',
)
STILL_ON_SCREEN = (
    "Is the {x} still on screen?",
    "Is the {x} still in view?",
    "Can the {x} still be seen?",
    "Is the {x} still visible?",
)
DIRECTION_OPTIONS = {"left": "left", "right": "right", "up": "up", "down": "down"}
WHERE_OPTIONS = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
STILL_THERE = "nowhere, it is still on screen"


# ---- what the graph says, and how sure it is --------------------------------------------------
@dataclass
class WindowFacts:
    """A window's graph read per name: where each is seen, first seen, moves and disappears."""

    clips: list[str]
    entities: dict[str, dict] = field(default_factory=dict)  # name -> entity row
    seen: dict[str, list[int]] = field(default_factory=dict)  # name -> clip indices, ascending
    moves: dict[str, dict[int, set[str]]] = field(default_factory=dict)  # name -> clip -> directions
    gone: dict[str, int] = field(default_factory=dict)  # name -> first clip it disappears in
    entity_count: Counter = field(default_factory=Counter)  # clip -> entities listed
    relation_count: Counter = field(default_factory=Counter)  # clip -> relations kept
    with_place: set[int] = field(default_factory=set)  # clips whose extraction lists a place

    @classmethod
    def of(cls, entities: list[dict], relations: list[dict] | None = None, clip_ids: list[str] | None = None) -> "WindowFacts":
        clips = list(clip_ids or sorted({c for e in entities for c in e.get("clip_ids") or []}))
        at = {c: i for i, c in enumerate(clips)}
        facts = cls(clips)
        by_id = {}
        for e in entities:
            name = e.get("name") or ""
            idx = sorted({at[c] for c in e.get("clip_ids") or [] if c in at})
            if not name or not idx:
                continue
            facts.entities[name] = e
            facts.seen[name] = idx
            by_id[e.get("entity_id")] = name
            for i in idx:
                facts.entity_count[i] += 1
                if e.get("type") == "place":
                    facts.with_place.add(i)
        for r in relations or []:
            i = at.get(r.get("clip_id"))
            name = by_id.get(r.get("subject"))
            if i is None:
                continue
            facts.relation_count[i] += 1
            if name is None:
                continue
            predicate = r.get("predicate") or ""
            m = _MOVE.match(predicate)
            if m:
                facts.moves.setdefault(name, {}).setdefault(i, set()).add(m.group(1))
            elif predicate in ("move", "moves", "moving") and r.get("object") in DIRECTIONS:
                facts.moves.setdefault(name, {}).setdefault(i, set()).add(r["object"])
            elif _GONE.match(predicate):
                facts.gone[name] = min(i, facts.gone.get(name, i))
        return facts

    @classmethod
    def of_graph(cls, graph: dict) -> "WindowFacts":
        return cls.of(graph.get("entities") or [], graph.get("relations") or [], graph.get("clip_ids"))

    # ---- names --------------------------------------------------------------------------------
    def names(self, text: bool = False, kinds: tuple[str, ...] = THING_TYPES) -> list[str]:
        """Names of things (text=False: entities of `kinds`) or of on-screen texts (text=True), by
        first clip then name. Places and "other" (a scene, the camera) do not appear as things do."""
        wanted = ("text",) if text else kinds
        out = [n for n, e in self.entities.items() if e.get("type") in wanted]
        return sorted(out, key=lambda n: (self.seen[n][0], n))

    def first(self, name: str) -> int:
        return self.seen[name][0]

    @property
    def full_from(self) -> int | None:
        """The first clip whose extraction is at the entity limit and may have lost a thing. A
        list that reached the setting (a place: the signals perception names the scene last,
        after texts, people and the camera) is taken as complete."""
        full = [i for i, n in self.entity_count.items() if n >= FULL_ENTITIES and i not in self.with_place]
        return min(full) if full else None

    def trusted(self, i: int) -> bool:
        """No name first seen at or before clip i can be missing (no full clip up to it)."""
        cut = self.full_from
        return cut is None or i < cut

    def new_in(self, text: bool = False) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for n in self.names(text):
            out.setdefault(self.first(n), []).append(n)
        return out

    def single(self, name: str) -> bool:
        """Seen in one unbroken run of clips and not seen after it disappeared: 'the X' is one thing."""
        idx = self.seen.get(name) or []
        if not idx or idx != list(range(idx[0], idx[-1] + 1)):
            return False
        gone = self.gone.get(name)
        return gone is None or gone >= idx[-1]

    def resolve(self, text: str) -> str | None:
        """The entity a phrase of a question names ("the Red circle" -> "red circle"; an on-screen
        text as shown, "OPEN NOW" -> "text open now")."""
        key = normalize_name(text or "")
        for name in (key, "text " + key):
            if name in self.entities:
                return name
        return None

    def shown(self, name: str) -> str:
        """How a question shows an entity: an on-screen text without its "text" prefix."""
        e = self.entities.get(name) or {}
        return name[5:] if e.get("type") == "text" and name.startswith("text ") and len(name) > 5 else name

    # ---- order of first appearances ---------------------------------------------------------------
    def next_new(self, name: str, text: bool = False) -> tuple[str, int, int] | None:
        """(Y, X's first clip, Y's first clip): Y is the one thing first seen after X."""
        if name not in self.seen:
            return None
        new = self.new_in(text)
        fx = self.first(name)
        if new.get(fx) != [name]:
            return None
        later = [k for k in new if k > fx]
        if not later:
            return None
        d = min(later)
        if len(new[d]) != 1 or not self.trusted(d):
            return None
        return new[d][0], fx, d

    def previous_new(self, name: str, text: bool = False) -> tuple[str, int, int] | None:
        """(W, W's first clip, X's first clip): W is the one thing first seen just before X."""
        if name not in self.seen:
            return None
        new = self.new_in(text)
        fx = self.first(name)
        if new.get(fx) != [name] or not self.trusted(fx):
            return None
        earlier = [k for k in new if k < fx]
        if not earlier:
            return None
        b = max(earlier)
        if len(new[b]) != 1:
            return None
        return new[b][0], b, fx

    # ---- motion ----------------------------------------------------------------------------------
    def direction(self, name: str) -> tuple[str, list[int]] | None:
        """(the one direction X moves in, the clips that tell it) when every clip X is seen in
        tells its motion (or that it left) and none of them may have lost a relation."""
        idx = self.seen.get(name) or []
        moves = self.moves.get(name) or {}
        if not idx:
            return None
        for i in idx:
            if self.relation_count[i] >= FULL_RELATIONS:
                return None
            if not moves.get(i) and self.gone.get(name) != i:
                return None
        directions = set().union(*moves.values()) if moves else set()
        if len(directions) != 1:
            return None
        return next(iter(directions)), sorted(moves)

    # ---- presence at the end ------------------------------------------------------------------------
    def still_there(self, name: str) -> tuple[str, list[int]] | None:
        """("Yes" | "No", the two clips that tell it) for "is X still on screen" asked at the last
        clip, or None when the graph cannot say. Yes: X is seen in the last clip and the one
        before, does not disappear there, and the last clip cannot have lost that relation. No:
        X disappears before the last clip and no later clip, none of which may have lost a name,
        shows it (a disappearance in the last clip alone is no No: two things of one name, one
        leaving, read as one thing that left)."""
        last = len(self.clips) - 1
        idx = self.seen.get(name) or []
        if last < 1 or not idx or not self.single(name):
            return None
        gone = self.gone.get(name)
        if gone is None:
            if len(idx) < 2 or idx[-1] != last or idx[-2] != last - 1 or self.relation_count[last] >= FULL_RELATIONS:
                return None
            return "Yes", [last - 1, last]
        later = range(gone + 1, last + 1)
        if gone >= last or any(self.entity_count[i] >= FULL_ENTITIES and i not in self.with_place for i in later):
            return None
        return "No", [gone, last]

    # ---- attributes --------------------------------------------------------------------------------
    def colour(self, name: str) -> str | None:
        """The one colour word of X's name and attributes, or None."""
        e = self.entities.get(name) or {}
        words = set(name.split()[:-1]) | {w for a in e.get("attributes") or [] for w in str(a).lower().split()}
        colours = sorted(words & set(COLOUR_WORDS))
        return colours[0] if len(colours) == 1 else None

    @staticmethod
    def head(name: str) -> str:
        return name.split()[-1] if name else ""

    def kinds(self) -> dict[str, list[str]]:
        """Head noun -> the names of objects with a modifier and that head ("circle": red circle,
        blue circle). People are named by where they are ("person on the left"): no kind."""
        out: dict[str, list[str]] = {}
        for n in self.names(kinds=KIND_TYPES):
            words = n.split()
            if len(words) >= 2 and not set(words) & _FUNCTION_WORDS:
                out.setdefault(self.head(n), []).append(n)
        return out

    def first_of_kind(self, noun: str) -> tuple[str, list[int]] | None:
        """(the first name of a kind, the first clips of the kind's names) when two or more names
        of that kind were first seen in different clips and the earliest clip has only one."""
        names = self.kinds().get(noun) or []
        firsts = sorted({self.first(n) for n in names})
        if len(firsts) < 2 or not self.trusted(firsts[0]):
            return None
        earliest = [n for n in names if self.first(n) == firsts[0]]
        return (earliest[0], firsts) if len(earliest) == 1 else None


# ---- building questions --------------------------------------------------------------------------
def _mc(template: str, question: str, correct: str, distractors: list[str], seed: str, evidence: list[str],
        details: dict, max_options: int) -> TemplateQuestion | None:  # fmt: skip
    wrong = [d for d in dict.fromkeys(distractors) if d != correct]
    wrong = sorted(wrong, key=lambda d: _rank(seed + "/pick", d))[: max(1, min(max_options, len(LETTERS)) - 1)]
    if not wrong:
        return None
    order = sorted([correct, *wrong], key=lambda t: _rank(seed + "/order", t))
    options = [f"{LETTERS[i]}. {t}" for i, t in enumerate(order)]
    return TemplateQuestion(template, "multiple_choice", question, options, LETTERS[order.index(correct)], sorted(set(evidence)),
                            {**details, "answer_text": correct})  # fmt: skip


def _clips(facts: WindowFacts, idx) -> list[str]:
    return sorted({facts.clips[i] for i in idx})


def order_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    out = []
    things = facts.names()
    for x in sorted(things, key=lambda n: _rank(seed, "order/" + n)):
        if not facts.single(x):
            continue
        for form, found in (("after", facts.next_new(x)), ("before", facts.previous_new(x))):
            if found is None:
                continue
            y, a, b = found
            bank = ORDER_AFTER if form == "after" else ORDER_BEFORE
            question = _phrase(bank, seed, f"order/{form}/{x}").format(x=x)
            q = _mc("order", question, y, [n for n in things if n not in (x, y)], f"{seed}/order/{form}/{x}", _clips(facts, (a, b)),
                    {"form": form, "anchor": x, "answer_entity": y}, max_options)  # fmt: skip
            if q is not None:
                out.append(q)
    return out


def count_kind_questions(facts: WindowFacts, seed: str) -> list[TemplateQuestion]:
    if facts.full_from is not None:
        return []  # a full clip may have lost a name: no count is sure
    out = []
    for noun, names in sorted(facts.kinds().items(), key=lambda kv: _rank(seed, "kind/" + kv[0])):
        firsts = {facts.first(n) for n in names}
        if len(names) < 2 or len(firsts) < 2 or noun in facts.names():
            continue  # a bare "<noun>" beside its kind may be one of them or another one
        question = _phrase(COUNT_KIND, seed, "count/" + noun).format(kinds=plural(noun))
        out.append(TemplateQuestion("count_kind", "numerical", question, [], str(len(names)), _clips(facts, firsts),
                                    {"kind": noun, "entities": sorted(names)}))  # fmt: skip
    return out


def _colour_options(facts: WindowFacts, correct: str, avoid: set[str]) -> list[str]:
    """Distractors: the window's other colours first, then a palette; never a colour the question names."""
    seen = [c for c in (facts.colour(n) for n in facts.names()) if c]
    return [c for c in dict.fromkeys(seen + list(COLOUR_WORDS[:8])) if c != correct and c not in avoid]


def attribute_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    out = []
    for noun in sorted(facts.kinds(), key=lambda n: _rank(seed, "attr/" + n)):
        found = facts.first_of_kind(noun)
        if found is None or noun in COLOUR_WORDS:
            continue
        y, firsts = found
        colour = facts.colour(y)
        if colour is None:
            continue
        ref = _phrase(REF_FIRST, seed, "ref/" + noun).format(noun=noun)
        question = _phrase(ATTRIBUTE, seed, "attr/" + noun).format(ref=ref)
        wrong = [c for c in _colour_options(facts, colour, set()) if c not in question.lower().split()]
        seed_q = f"{seed}/attribute/first/{noun}"
        # the other names of the kind are evidence too: "first" compares them
        q = _mc("attribute", question, colour, wrong, seed_q, _clips(facts, firsts),
                {"form": "first", "kind": noun, "answer_entity": y}, max_options)  # fmt: skip
        if q is not None:
            out.append(q)
    for x in sorted(facts.names(), key=lambda n: _rank(seed, "attr-after/" + n)):
        found = facts.next_new(x) if facts.single(x) else None
        if found is None:
            continue
        y, a, b = found
        colour, noun = facts.colour(y), facts.head(y)
        if colour is None or len(y.split()) < 2 or noun in COLOUR_WORDS:
            continue
        named = set(x.split()) | {noun}
        if colour in named:
            continue  # the question would say the answer
        ref = _phrase(REF_AFTER, seed, f"ref-after/{x}").format(noun=noun, x=x)
        question = _phrase(ATTRIBUTE, seed, f"attr-after/{x}").format(ref=ref)
        wrong = [c for c in _colour_options(facts, colour, named)]
        q = _mc("attribute", question, colour, wrong, f"{seed}/attribute/after/{x}", _clips(facts, (a, b)),
                {"form": "after", "anchor": x, "kind": noun, "answer_entity": y}, max_options)  # fmt: skip
        if q is not None:
            out.append(q)
    return out


def _recent_two(idx: list[int]) -> list[int]:
    """The two latest clips of a list: the least evidence that shows a motion, kept recent."""
    return sorted(idx)[-2:]


def action_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    out = []
    for x in sorted(facts.names(kinds=THING_TYPES + ("other",)), key=lambda n: _rank(seed, "action/" + n)):
        found = facts.direction(x)
        if found is None or len(found[1]) < 2:
            continue
        d, told = found
        question = _phrase(ACTION, seed, "action/" + x).format(x=x)
        q = _mc("action", question, DIRECTION_OPTIONS[d], [DIRECTION_OPTIONS[o] for o in DIRECTIONS if o != d], f"{seed}/action/{x}",
                _clips(facts, _recent_two(told)), {"entity": x, "direction": d}, max_options)  # fmt: skip
        if q is not None:
            out.append(q)
    return out


def where_went_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    out = []
    for x in sorted(facts.names(), key=lambda n: _rank(seed, "went/" + n)):
        g = facts.gone.get(x)
        found = facts.direction(x)
        if g is None or found is None or not facts.single(x):
            continue
        d, told = found
        before = [i for i in told if i < g]
        if not before:
            continue  # the clip it left in alone: one clip of evidence
        question = _phrase(WHERE_WENT, seed, "went/" + x).format(x=x)
        wrong = [WHERE_OPTIONS[o] for o in DIRECTIONS if o != d] + [STILL_THERE]
        q = _mc("where_went", question, WHERE_OPTIONS[d], wrong, f"{seed}/where/{x}", _clips(facts, (before[-1], g)),
                {"entity": x, "direction": d, "gone_clip_id": facts.clips[g]}, max_options)  # fmt: skip
        if q is not None:
            out.append(q)
    return out


def still_there_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    out = []
    for x in sorted(facts.names(), key=lambda n: _rank(seed, "still/" + n)):
        found = facts.still_there(x)
        if found is None:
            continue
        answer, told = found
        question = _phrase(STILL_ON_SCREEN, seed, "still/" + x).format(x=x)
        out.append(TemplateQuestion("still_there", "yes_no", question, [], answer, _clips(facts, told), {"entity": x}))
    # Things leave more often than they stay to the end: a seeded preferred answer goes first, so
    # the question a window asks is not "No" by default (a model must not learn to say No).
    preferred = "Yes" if int(_rank(seed, "still/answer")[:8], 16) % 2 else "No"
    return sorted(out, key=lambda q: q.answer != preferred)


def _quoted(text: str) -> str:
    return f'"{text}"'


def text_questions(facts: WindowFacts, seed: str, max_options: int = 4) -> list[TemplateQuestion]:
    texts = facts.names(text=True)
    new = facts.new_in(text=True)
    out = []
    # first / last: one text per first clip (each alone there), within the trusted clips
    firsts = [ns[0] for k, ns in sorted(new.items()) if len(ns) == 1 and facts.trusted(k)]
    if len(firsts) >= 2:
        chosen = sorted(firsts, key=lambda n: _rank(seed, "texts/" + n))[: max(2, min(max_options, len(LETTERS)))]
        for form, pick, bank in (("first", min, TEXT_FIRST), ("last", max, TEXT_LAST)):
            right = pick(chosen, key=facts.first)
            question = _phrase(bank, seed, "texts/" + form)
            q = _mc("on_screen_text", question, facts.shown(right), [facts.shown(n) for n in chosen if n != right], f"{seed}/texts/{form}",
                    _clips(facts, [facts.first(n) for n in chosen]), {"form": form, "answer_entity": right}, len(chosen))  # fmt: skip
            if q is not None:
                out.append(q)
    for x in sorted(texts, key=lambda n: _rank(seed, "text-after/" + n)):
        found = facts.next_new(x, text=True)
        if found is None:
            continue
        y, a, b = found
        question = _phrase(TEXT_AFTER, seed, "text-after/" + x).format(x=facts.shown(x))
        q = _mc("on_screen_text", question, facts.shown(y), [facts.shown(n) for n in texts if n not in (x, y)], f"{seed}/texts/after/{x}", _clips(facts, (a, b)),
                {"form": "after", "anchor": x, "answer_entity": y}, max_options)  # fmt: skip
        if q is not None:
            out.append(q)
    return out


_BUILDERS = {
    "order": order_questions,
    "attribute": attribute_questions,
    "action": action_questions,
    "where_went": where_went_questions,
    "on_screen_text": text_questions,
    "still_there": still_there_questions,
}


def _acceptable(q: TemplateQuestion) -> bool:
    """What the qa rule check would refuse is never asked (a leak, near-identical options)."""
    from curation.checks.qa import QAConfig, check_qa

    chain = {"chain_id": "template", "qa": {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer,
             "evidence_clip_ids": q.evidence_clip_ids}, "thoughts": [{"clip_id": c} for c in q.evidence_clip_ids]}  # fmt: skip
    return bool(check_qa(chain, QAConfig())["passed"])


def candidates(graph: dict, seed: str, templates: list[str] | tuple[str, ...] | None = None, max_options: int = 4,
               types: list[str] | tuple[str, ...] | None = None) -> dict[str, list[TemplateQuestion]]:  # fmt: skip
    """Template -> every question of it the graph supports, best first (seeded), each with its
    evidence span; only those of the wanted `types`, with evidence in >= 2 different clips, that
    the qa check accepts."""
    wanted = list(templates) if templates else list(TEMPLATES)
    unknown = sorted(set(wanted) - set(TEMPLATES))
    if unknown:
        raise ValueError(f"unknown templates {unknown}; known: {', '.join(TEMPLATES)}")
    entities = graph.get("entities") or []
    facts = WindowFacts.of_graph(graph)
    out: dict[str, list[TemplateQuestion]] = {}
    for t in wanted:
        if t == "count_entities":
            made = [count_question(entities)]
        elif t == "first_appearance":
            made = [first_appearance_question(entities, seed, max_options)]
        elif t == "appeared_before":
            made = [appeared_before_question(entities, seed)]
        elif t == "count_kind":
            made = count_kind_questions(facts, seed)
        else:
            made = _BUILDERS[t](facts, seed, max_options)
        kept = []
        for q in made:
            if q is None or (types is not None and q.type not in types) or len(set(q.evidence_clip_ids)) < 2 or not _acceptable(q):
                continue
            kept.append(replace(q, evidence_span=evidence_span(q.evidence_clip_ids, facts.clips)))
        if kept:
            out[t] = kept
    return out


def select(found: dict[str, list[TemplateQuestion]], max_per_window: int | None = None, balance_spans: bool = False,
           seed: str = "") -> list[TemplateQuestion]:  # fmt: skip
    """One question per template (its best); with a cap, `max_per_window` of them from templates
    in a seeded order (a cap must not always drop the same templates), or, with `balance_spans`,
    picked round-robin over the spans (current, recent, window), each turn the best candidate of
    that span from a template not used yet (then from any template)."""
    if max_per_window is None:
        return [qs[0] for qs in found.values()]
    ranked = sorted(found, key=lambda t: _rank(seed, "cap/" + t))
    if not balance_spans:
        return [found[t][0] for t in ranked[:max_per_window]]
    pool = {s: [q for t in ranked for q in found[t] if q.evidence_span == s] for s in SPANS}
    chosen: list[TemplateQuestion] = []
    used: set[str] = set()
    while len(chosen) < max_per_window:
        progressed = False
        for span in SPANS:
            if len(chosen) >= max_per_window:
                break
            left = [q for q in pool[span] if q not in chosen]
            pick = next((q for q in left if q.template not in used), None) or next(iter(left), None)
            if pick is not None:
                chosen.append(pick)
                used.add(pick.template)
                progressed = True
        if not progressed:
            break
    return chosen


def window_questions(graph: dict, seed: str, templates=None, max_options: int = 4, types=None, max_per_window: int | None = None,
                     balance_spans: bool = False) -> list[TemplateQuestion]:  # fmt: skip
    """The template questions asked of a window (see `candidates` and `select`)."""
    return select(candidates(graph, seed, templates, max_options, types), max_per_window, balance_spans, seed)


# ---- recomputing an answer from the graph (curation/verify.py) ----------------------------------
def _option_index(options: list[str], wanted: str) -> int | None:
    from curation.formats.question import option_texts

    key = normalize_name(wanted)
    hits = [i for i, o in enumerate(option_texts(options)) if normalize_name(o) == key]
    return hits[0] if len(hits) == 1 else None


def _letter_of(options: list[str], wanted: str, how: str) -> tuple[str | None, str]:
    i = _option_index(options, wanted)
    if i is None:
        return None, f"{how}; {wanted!r} is not exactly one of the options"
    return LETTERS[i], how


def _name(facts: WindowFacts, fields: dict | None, key: str = "x") -> str | None:
    return facts.resolve(fields[key]) if fields and fields.get(key) else None


def recompute(template: str, qa: dict, facts: WindowFacts) -> tuple[str | None, str]:
    """(the answer the graph gives to the question as the model sees it, how), answer None when
    the question is not one of the template's phrasings or its facts are not unambiguous."""
    question, options = qa.get("question") or "", qa.get("options") or []
    if template == "order":
        for form, bank, step in (("after", ORDER_AFTER, facts.next_new), ("before", ORDER_BEFORE, facts.previous_new)):
            fields = parse(bank, question)
            if fields is None:
                continue
            x = _name(facts, fields)
            found = step(x) if x else None
            if found is None:
                return None, f"the graph gives no single new thing {form} {fields['x']!r}"
            return _letter_of(options, found[0], f"{found[0]!r} is the one thing first seen {form} the {x}")
        return None, "the question is none of the order phrasings"
    if template == "count_kind":
        fields = parse(COUNT_KIND, question)
        if fields is None:
            return None, "the question is none of the count phrasings"
        kinds = {plural(noun): (noun, names) for noun, names in facts.kinds().items()}
        if facts.full_from is not None:
            return None, "a clip of the window is full (5 entities): a name may be missing"
        noun, names = kinds.get(fields["kinds"].lower(), (None, []))
        return str(len(names)), f"{len(names)} different {fields['kinds']} in the window graph: {', '.join(names)}"
    if template == "attribute":
        fields = parse(ATTRIBUTE, question)
        ref = fields.get("ref", "") if fields else ""
        first, after = parse(REF_FIRST, ref), parse(REF_AFTER, ref)
        if first:
            found = facts.first_of_kind(normalize_name(first["noun"]))
            y = found[0] if found else None
        elif after:
            x = _name(facts, after)
            found = facts.next_new(x) if x else None
            y = found[0] if found and facts.head(found[0]) == normalize_name(after["noun"]) else None
        else:
            return None, "the question is none of the attribute phrasings"
        colour = facts.colour(y) if y else None
        if colour is None:
            return None, f"the graph gives no single thing with one colour for {ref!r}"
        return _letter_of(options, colour, f"the {ref} is the {y}")
    if template in ("action", "where_went"):
        fields = parse(ACTION if template == "action" else WHERE_WENT, question)
        x = _name(facts, fields)
        if x is None:
            return None, f"the question is none of the {template} phrasings about a thing of the graph"
        found = facts.direction(x)
        if template == "where_went":
            if x not in facts.gone:
                return _letter_of(options, STILL_THERE, f"the {x} never disappears in the window graph")
            if found is None:
                return None, f"the graph gives no single direction for the {x}"
            return _letter_of(options, WHERE_OPTIONS[found[0]], f"the {x} moves {found[0]} and disappears")
        if found is None:
            return None, f"the graph gives no single direction for the {x}"
        return _letter_of(options, DIRECTION_OPTIONS[found[0]], f"the {x} moves {found[0]}")
    if template == "still_there":
        x = _name(facts, parse(STILL_ON_SCREEN, question))
        if x is None:
            return None, "the question is none of the still_there phrasings about a thing of the graph"
        found = facts.still_there(x)
        if found is None:
            return None, f"the graph cannot say whether the {x} is still on screen"
        return found[0], f"the {x} is {'still seen in the last clip' if found[0] == 'Yes' else 'gone (it disappears)'}"
    if template == "on_screen_text":
        from curation.formats.question import option_texts

        for form, bank in (("first", TEXT_FIRST), ("last", TEXT_LAST)):
            if parse(bank, question) is not None:
                named = [facts.resolve(t) for t in option_texts(options)]
                if not named or any(n is None or facts.entities[n].get("type") != "text" for n in named):
                    return None, "an option is not an on-screen text of the window graph"
                at = [facts.first(n) for n in named]  # type: ignore[arg-type]
                best = min(at) if form == "first" else max(at)
                if at.count(best) != 1:
                    return None, f"two options were first shown in the same clip: no single {form}"
                return LETTERS[at.index(best)], f"{named[at.index(best)]!r} is shown {form} (clip {best})"
        fields = parse(TEXT_AFTER, question)
        x = _name(facts, fields)
        found = facts.next_new(x, text=True) if x else None
        if found is None:
            return None, "the question is none of the text phrasings, or no single text follows"
        return _letter_of(options, facts.shown(found[0]), f"{found[0]!r} is the one text first shown after {x!r}")
    return None, f"unknown template {template!r}"
