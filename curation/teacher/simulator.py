"""The simulated teacher's logic: a request body (and its X-Vstw-Item header) -> a reply, faithful
to what the prompt gives, or with one known mistake injected (and a record of it). No sockets:
the HTTP server is pipelines/teacher_sim.py.

It answers the workbench's own prompts (curation/prompts), for the synthetic worlds whose clip
descriptions read "Scene 2: a plain navy background. A red circle appears and moves left. The
blue square disappears.":
- graph.v1   entities = the "<colour> <shape>" names of the description, relations = their events;
             the description is remembered by clip id (later prompts need the future of a video);
- qa.v1      a question of the asked type over >= 2 clips, its answer computed from the prompt;
- think.v1/2 one faithful sentence about what is new in the clip (or what continues);
- answer.v1  the question answered again from the clip descriptions (`solve`);
- caption.v1 cannot be answered faithfully (it needs the pixels): a neutral reply, noted.

Mistakes (`KINDS`) are injected with probability `rate` per item, decided from sha1(seed, item),
only into the FIRST request of an item (a repair request, which carries the rejected reply as an
assistant turn, gets a faithful reply), so a run is reproducible and the gate can be measured.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from curation.graph import normalize_name
from curation import questions as templates

COLOURS = ("red", "green", "blue", "yellow", "white", "magenta")
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
LETTERS = "ABCDE"

THINK_KINDS = (
    "hallucinated_entity", "wrong_attribute", "future_entity", "future_event", "early_answer",
    "prompt_echo", "reworded_repeat", "missing_thought", "language_drift",
)  # fmt: skip
QA_KINDS = ("wrong_answer", "wrong_count", "answer_leaked", "duplicate_options")
FORMAT_KINDS = ("broken_json", "truncation")  # any stage
KINDS = THINK_KINDS + QA_KINDS + FORMAT_KINDS

# Prompt kind -> the stage that sends it (what the log says when a request has no item header).
PROMPT_STAGE = {"graph": "graph", "qa": "qa", "think": "think", "answer": "verify", "caption": "perceive"}

_C = "|".join(COLOURS)
_S = "|".join(SHAPES)
_D = "|".join(DIRECTIONS)
_APPEAR = re.compile(rf"\b(?:an?)\s+({_C})\s+({_S})\s+appears\s+and\s+moves\s+({_D})\b", re.IGNORECASE)
_DISAPPEAR = re.compile(rf"\bthe\s+({_C})\s+({_S})\s+disappears\b", re.IGNORECASE)
_NAME = re.compile(rf"\b({_C})\s+({_S})(?:e?s)?\b", re.IGNORECASE)


class SimulatorError(ValueError):
    """A request the simulator cannot read at all (the server answers 400 with this message)."""


# ---- clip descriptions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    name: str  # "red circle"
    kind: str  # "appear" | "disappear"
    direction: str | None = None

    @property
    def colour(self) -> str:
        return self.name.split()[0]

    @property
    def shape(self) -> str:
        return self.name.split()[1]


def parse_events(text: str) -> list[Event]:
    """The appear/disappear events of a description, in the order it tells them."""
    found = [(m.start(), Event(f"{m.group(1).lower()} {m.group(2).lower()}", "appear", m.group(3).lower())) for m in _APPEAR.finditer(text or "")]
    found += [(m.start(), Event(f"{m.group(1).lower()} {m.group(2).lower()}", "disappear")) for m in _DISAPPEAR.finditer(text or "")]
    return [e for _, e in sorted(found, key=lambda p: p[0])]


def named_objects(text: str) -> list[str]:
    """Every "<colour> <shape>" a text names, singular, in order of first mention."""
    out: list[str] = []
    for m in _NAME.finditer(text or ""):
        name = f"{m.group(1).lower()} {m.group(2).lower()}"
        if name not in out:
            out.append(name)
    return out


@dataclass
class CaptionFacts:
    """What a list of clip descriptions (in time order) says, per object name."""

    first: dict[str, int] = field(default_factory=dict)  # name -> index of the first clip naming it
    moves: dict[str, set[str]] = field(default_factory=dict)  # name -> directions it moves in
    gone: dict[str, int] = field(default_factory=dict)  # name -> first clip where it disappears
    last: dict[str, int] = field(default_factory=dict)  # name -> index of the last clip naming it
    clips: int = 0

    @classmethod
    def of(cls, captions: list[str]) -> "CaptionFacts":
        facts = cls(clips=len(captions))
        for i, caption in enumerate(captions):
            for name in named_objects(caption):
                facts.first.setdefault(name, i)
                facts.last[name] = i
            for e in parse_events(caption):
                if e.kind == "appear":
                    facts.moves.setdefault(e.name, set()).add(e.direction or "")
                else:
                    facts.gone.setdefault(e.name, i)
        return facts


# ---- the oracle ------------------------------------------------------------------------------------
def _option_text(option: str) -> str:
    return re.sub(r"^\s*\(?[A-Ea-e][.):]\s+", "", option or "").strip()


def _key(name: str) -> str:
    return normalize_name(name or "")


def _count_filter(phrase: str) -> tuple[str | None, str | None] | None:
    """(colour, shape) a "how many different <phrase>" question counts; None: not about shapes."""
    words = [normalize_name(w) for w in phrase.lower().split()]
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((w for w in words if w in SHAPES), None)
    generic = {"object", "shape", "thing", "item"}
    if colour or shape or any(w in generic for w in words):
        return colour, shape
    return None


def solve(question: str, options: list[str] | None, clip_captions_in_order: list[str]) -> str | None:
    """The answer the clip descriptions give to a question, or None when it cannot be read.

    Reads the simulator's own question forms, the templates of curation/graph.py
    (count_entities, first_appearance, appeared_before) and those of curation/questions.py
    (order, count_kind, attribute, action, where_went, still_there; not on-screen text). Answers: a letter for multiple choice
    (options plain or "A. text"), a number string, or "Yes"/"No". An order between objects first
    named in the same clip is not known: None."""
    facts = CaptionFacts.of(clip_captions_in_order)
    q = " ".join((question or "").lower().split())
    opts = [_key(_option_text(o)) for o in options or []]

    m = re.search(r"how many (?:of the )?(?:different )?(\w+(?: \w+)?) (?:have|has) (?:disappeared|vanished|left)", q)
    if m and _count_filter(m.group(1)) is not None:
        colour, shape = _count_filter(m.group(1))  # type: ignore[misc]
        return str(sum(1 for n in facts.gone if _matches(n, colour, shape)))
    m = re.search(r"how many different (.+?) (?:have|has) (?:appeared|been seen|shown up|showed up)", q)
    if m:
        wanted = _count_filter(m.group(1))
        if wanted is None:
            return None
        return str(sum(1 for n in facts.first if _matches(n, *wanted)))

    if opts:
        answer = _solve_template(question or "", opts, facts)
        if answer is not _NOT_A_TEMPLATE:
            return answer  # type: ignore[return-value]
        m = re.search(rf"which (?:shape|object|one|of these)(?: shapes| objects)? (?:moved|was seen moving|was moving|moves) ({_D})\b", q)
        if m:
            hits = [i for i, o in enumerate(opts) if m.group(1) in facts.moves.get(o, set())]
            return LETTERS[hits[0]] if len(hits) == 1 else None
        if re.search(r"which of these.*\b(?:has been|was|were|have been) seen\b", q):
            hits = [i for i, o in enumerate(opts) if o in facts.first]
            return LETTERS[hits[0]] if len(hits) == 1 else None
        last = re.search(r"\b(last|latest|most recently|after the others)\b", q)
        first = re.search(r"\b(first|earliest|before the others)\b", q)
        if last or first:
            seen = [(facts.first[o], i) for i, o in enumerate(opts) if o in facts.first]
            if not seen:
                return None
            best = max(seen)[0] if last else min(seen)[0]
            hits = [i for at, i in seen if at == best]
            return LETTERS[hits[0]] if len(hits) == 1 else None
        return None

    fields = templates.parse(templates.STILL_ON_SCREEN, question or "")
    if fields:
        return _still_there(facts, _key(fields["x"]))
    m = re.match(rf"^(?:was|did|is) (?:the |a |an )?(.+?) (?:seen |appear |show up |shown |come )?(before|earlier than|after|later than) (?:the |a |an )?(.+?)\s*\?*$", q)
    if m:
        x, y = facts.first.get(_key(m.group(1))), facts.first.get(_key(m.group(3)))
        if x is None or y is None or x == y:
            return None
        earlier = x < y
        return "Yes" if earlier == (m.group(2) in ("before", "earlier than")) else "No"
    m = re.match(r"^(?:has|have|was|were) (?:a |an |the |any )?(.+?) (?:been )?(?:seen|shown)(?: so far| in the video)?\s*\?*$", q)
    if m:
        return "Yes" if _key(m.group(1)) in facts.first else "No"
    return None


_NOT_A_TEMPLATE = object()


def _still_there(facts: CaptionFacts, name: str) -> str | None:
    """Yes: named in the last description and it does not say the thing left; No: a description
    says it left and none names it after that; else None."""
    if name not in facts.first:
        return None
    gone, last = facts.gone.get(name), facts.last[name]
    if gone is None:
        return "Yes" if last == facts.clips - 1 else None
    return "No" if last <= gone else None


def _one(opts: list[str], wanted: str | None) -> str | None:
    """The letter of the one option that is `wanted`, else None."""
    if wanted is None:
        return None
    hits = [i for i, o in enumerate(opts) if o == _key(wanted)]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def _new_next_to(facts: CaptionFacts, name: str, after: bool) -> str | None:
    """The one name first named right after (just before) `name` was, when `name` is the only
    name first named in its clip and one name alone is first named in the deciding clip."""
    at = facts.first.get(name)
    if at is None or [n for n, i in facts.first.items() if i == at] != [name]:
        return None
    side = [i for i in facts.first.values() if (i > at if after else i < at)]
    if not side:
        return None
    k = min(side) if after else max(side)
    there = [n for n, i in facts.first.items() if i == k]
    return there[0] if len(there) == 1 else None


def _solve_template(question: str, opts: list[str], facts: CaptionFacts):
    """The answer to one of curation/questions.py's multiple-choice phrasings (order, attribute,
    action, where_went) from the descriptions; _NOT_A_TEMPLATE when it is none of them. On-screen
    text questions are not read: the synthetic worlds show no text."""
    for bank, after in ((templates.ORDER_AFTER, True), (templates.ORDER_BEFORE, False)):
        fields = templates.parse(bank, question)
        if fields:
            return _one(opts, _new_next_to(facts, _key(fields["x"]), after))
    fields = templates.parse(templates.ATTRIBUTE, question)
    if fields:
        first, later = templates.parse(templates.REF_FIRST, fields["ref"]), templates.parse(templates.REF_AFTER, fields["ref"])
        name = None
        if first:
            noun = _key(first["noun"])
            kind = sorted((i, n) for n, i in facts.first.items() if n.split()[-1] == noun)
            if kind and [i for i, _ in kind].count(kind[0][0]) == 1:
                name = kind[0][1]
        elif later:
            name = _new_next_to(facts, _key(later["x"]), True)
            if name is not None and name.split()[-1] != _key(later["noun"]):
                name = None
        return _one(opts, name.split()[0] if name else None)
    for bank, where in ((templates.ACTION, False), (templates.WHERE_WENT, True)):
        fields = templates.parse(bank, question)
        if fields:
            name = _key(fields["x"])
            moves = facts.moves.get(name, set())
            if where and name in facts.first and name not in facts.gone:
                return _one(opts, templates.STILL_THERE)
            if len(moves) != 1:
                return None
            d = next(iter(moves))
            return _one(opts, (templates.WHERE_OPTIONS if where else templates.DIRECTION_OPTIONS).get(d))
    return _NOT_A_TEMPLATE


def _matches(name: str, colour: str | None, shape: str | None) -> bool:
    parts = name.split()
    return (colour is None or parts[0] == colour) and (shape is None or parts[-1] == shape)


# ---- reading requests ---------------------------------------------------------------------------------
def _text(content) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


def _schema(body: dict) -> dict:
    fmt = body.get("response_format") or {}
    return fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}


def prompt_kind(body: dict) -> str:
    """graph | qa | think | answer | caption | unknown: from the reply schema's properties, else
    from the prompt text (structured_output: text puts no schema in the request)."""
    props = _schema(body).get("properties") or {}
    if "thought" in props:
        return "think"
    if "relations" in props:
        return "graph"
    if "evidence_clip_ids" in props:
        return "qa"
    if "caption" in props:
        return "caption"
    if set(props) == {"answer"}:
        return "answer"
    text = first_user(body)
    if "New in this clip:" in text:
        return "think"
    if 'Description: "' in text:
        return "graph"
    if "evidence_clip_ids" in text or "Entities (name, type" in text:
        return "qa"
    if "Question (asked at" in text:
        return "answer"
    if "frames from one video clip" in text:
        return "caption"
    return "unknown"


def first_user(body: dict) -> str:
    return next((_text(m.get("content")) for m in body.get("messages") or [] if m.get("role") == "user"), "")


def is_repair(body: dict) -> bool:
    """A repair request carries the rejected reply as an assistant turn."""
    return any(m.get("role") == "assistant" for m in body.get("messages") or [])


def split_item(header: str | None, kind: str) -> tuple[str, str]:
    """(stage, item id) of an X-Vstw-Item header ("think/<window_id>/<clip_id>")."""
    if header and "/" in header:
        stage, _, item_id = header.partition("/")
        return stage, item_id
    return PROMPT_STAGE.get(kind, kind), header or ""


def _line(text: str, label: str) -> str | None:
    m = re.search(rf"^{re.escape(label)}\s*(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


@dataclass
class ThinkPrompt:
    new: list[str]
    new_line: str
    caption: str
    memory: list[str]  # the earlier thoughts, without their Time= prefix
    max_words: int


def read_think(text: str) -> ThinkPrompt:
    new_line = _line(text, "New in this clip:") or "nothing new"
    new = [] if new_line.strip().lower() == "nothing new" else [n.strip() for n in new_line.split(",") if n.strip()]
    memory_block = re.search(r"Memory of the earlier clips:\n(.*?)(?:\n\s*\n|\nWrite |\Z)", text, re.DOTALL)
    memory = []
    for line in (memory_block.group(1) if memory_block else "").splitlines():
        line = line.strip()
        if line and line != "(nothing yet)":
            memory.append(re.sub(r"^Time=\S+\s+", "", line))
    words = re.search(r"at most (\d+) words", text)
    return ThinkPrompt(new, new_line, _line(text, "Current clip:") or "", memory, int(words.group(1)) if words else 30)


@dataclass
class QAPrompt:
    clips: list[str]
    entities: list[dict]  # name, type, clips (indices into clips)
    relations: list[dict]  # subject, predicate, object, clip (index)
    qa_type: str
    end_s: str

    @property
    def first(self) -> dict[str, int]:
        return {e["name"]: min(e["clips"]) for e in self.entities if e["clips"]}

    def moves(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in self.relations:
            m = re.fullmatch(rf"moves?_({_D})", r["predicate"])
            if m:
                out.setdefault(r["subject"], set()).add(m.group(1))
        return out

    def gone(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.relations:
            if r["predicate"].startswith("disappear"):
                out.setdefault(r["subject"], r["clip"])
        return out

    # A graph keeps at most 5 entities and 3 relations per clip (ClipExtraction): where a clip is
    # full, something may be missing, and a question that needs it would have a wrong answer.
    @property
    def full_from(self) -> int | None:
        """The first clip listing 5 entities (names first seen there or later may be missing)."""
        counts = Counter(i for e in self.entities for i in e["clips"])
        full = [i for i, n in counts.items() if n >= 5]
        return min(full) if full else None

    @property
    def trusted_first(self) -> dict[str, int]:
        """First clips that no full clip can have moved."""
        cut = self.full_from
        return {n: i for n, i in self.first.items() if cut is None or i < cut}

    def moves_known(self, name: str) -> bool:
        """Every clip the object is seen in tells how it moves, and none of them holds 3
        relations (the extraction's limit: a second motion of the same name may be cut away)."""
        seen = next((set(e["clips"]) for e in self.entities if e["name"] == name), set())
        told = {r["clip"] for r in self.relations if r["subject"] == name and r["predicate"].startswith("move")}
        per_clip = Counter(r["clip"] for r in self.relations)
        return bool(seen) and seen <= told and all(per_clip[i] < 3 for i in seen)

    def gone_known(self) -> bool:
        """No disappearance can have been cut away (no clip holds 3 of them, none is full)."""
        per_clip = Counter(r["clip"] for r in self.relations if r["predicate"].startswith("disappear"))
        return self.full_from is None and all(n < 3 for n in per_clip.values())


def read_qa(text: str) -> QAPrompt:
    clips = [c.strip() for c in (_line(text, "Clips of the video, in order:") or "").split(",") if c.strip()]
    at = {c: i for i, c in enumerate(clips)}
    entities, relations = [], []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Entities ("):
            section = "entities"
        elif line.startswith("Relations:"):
            section = "relations"
        elif line.startswith("Write one"):
            section = None
        elif section == "entities" and line.startswith("- "):
            m = re.match(r"^- (.+?) \(([\w-]+)\): (.*)$", line)
            if m:
                idx = sorted(at[c.strip()] for c in m.group(3).split(",") if c.strip() in at)
                entities.append({"name": m.group(1).strip(), "type": m.group(2), "clips": idx})
        elif section == "relations" and line.startswith("- "):
            relations += _relation(line[2:], [e["name"] for e in entities], at)
    kind = re.search(r"Write one (multiple choice|numerical|yes no|yes/no) question", text)
    qa_type = {"multiple choice": "multiple_choice", "numerical": "numerical"}.get(kind.group(1) if kind else "", "yes_no")
    end = re.search(r"at the end of the video \(([\d.]+) s\)", text)
    return QAPrompt(clips, entities, relations, qa_type, end.group(1) if end else "")


def _relation(line: str, names: list[str], at: dict[str, int]) -> list[dict]:
    m = re.match(r"^(.*) \(([^()]+)\)$", line)
    if not m or m.group(2) not in at:
        return []
    body = m.group(1)
    subject = next((n for n in sorted(names, key=len, reverse=True) if body.startswith(n + " ")), None)
    if subject is None:
        return []
    predicate, _, obj = body[len(subject) + 1 :].partition(" ")
    return [{"subject": subject, "predicate": predicate, "object": obj, "clip": at[m.group(2)]}]


@dataclass
class AnswerPrompt:
    captions: list[str]
    question: str
    options: list[str]
    qa_type: str


def read_answer(text: str) -> AnswerPrompt:
    head, _, tail = text.partition("Question (asked at")
    block = head.split("in time order:", 1)[-1] if "in time order:" in head else head
    captions = [ln.strip() for ln in block.splitlines() if ln.strip()]
    question = re.match(r"[^)]*\):\s*(.*)", tail)
    rest = tail.split("\n", 1)[1] if "\n" in tail else ""
    options = [m.group(2).strip() for m in re.finditer(r"^\s*\(?([A-E])[.):]\s+(.+)$", rest, re.MULTILINE)]
    if not options:  # all on one line: "Options: A. red circle; B. blue square"
        options = [m.group(2).strip() for m in re.finditer(r"\b([A-E])[.)]\s+([^;\n]+?)(?=\s*;|\s+[A-E][.)]\s|\s*$)", rest.split("\n", 1)[0])]
    low = rest.lower()
    qa_type = "multiple_choice" if options else "numerical" if "number" in low else "yes_no" if "yes or no" in low else ""
    return AnswerPrompt(captions, question.group(1).strip() if question else "", options, qa_type)


# ---- faithful thoughts -------------------------------------------------------------------------------
def _sentence(clauses: list[str], max_words: int) -> str:
    """Clauses joined into one sentence of at most max_words words ("X, and Y.")."""
    clauses = [c for c in clauses if c]
    while len(clauses) > 1 and len(_join(clauses).split()) > max_words:
        clauses = clauses[:-1]
    text = _join(clauses)
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words]).rstrip(",;:") + "."
    return text[:1].upper() + text[1:]


def _join(clauses: list[str]) -> str:
    if len(clauses) == 1:
        body = clauses[0]
    elif len(clauses) == 2:
        body = f"{clauses[0]}, and {clauses[1]}"
    else:
        body = ", ".join(clauses[:-1]) + f", and {clauses[-1]}"
    return body.rstrip(".") + "."


def _appears(name: str, direction: str | None) -> str:
    article = "an" if name[:1] in "aeiou" else "a"
    return f"{article} {name} appears" + (f" and moves {direction}" if direction else "")


_CONTINUE = (
    lambda ds: " and ".join(f"the {n} keeps moving {d}" for n, d in ds),
    lambda ds: ("only the " + ds[0][0] + " is on screen") if len(ds) == 1 else f"{_count_word(len(ds))} shapes are on screen: " + " and ".join(f"the {n}" for n, _ in ds),
    lambda ds: " and ".join(f"the {n} is still in view, heading {d}" for n, d in ds),
)  # fmt: skip
_EMPTY = ("nothing is moving on the screen", "the screen stays empty for now", "no object is in view at the moment")


def _count_word(n: int) -> str:
    return ("no", "one", "two", "three", "four", "five", "six")[n] if n < 7 else str(n)


def thought_clauses(p: ThinkPrompt) -> list[str]:
    """What is new in the clip, as clauses: new objects with their motion, then disappearances."""
    events = parse_events(p.caption)
    moving = {}
    for e in events:
        if e.kind == "appear":
            moving.setdefault(e.name, e.direction)
    new = [_key(n) or n for n in p.new]
    clauses = [_appears(n, moving.get(n)) for n in new]
    # A name seen before whose object left (or moved another way) is another object: say so.
    clauses += [f"another {n} appears and moves {d}" for n, d in moving.items() if n not in new and _another(n, d, p.memory)]
    clauses += [f"the {e.name} disappears" for e in events if e.kind == "disappear"]
    return clauses


def _another(name: str, direction: str | None, memory: list[str]) -> bool:
    """Whether the memory's last word on `name` is that it disappeared, or moved another way."""
    for line in reversed(memory):
        low = line.lower()
        if name not in low:
            continue
        last = low[low.rindex(name) :]
        if re.match(rf"{name}\s+disappears", last):
            return True
        said = re.match(rf"{name}(?:\s+[a-z,]+){{0,5}}?\s+({_D})\b", last)
        return bool(said and direction and said.group(1) != direction)
    return False


def faithful_thought(p: ThinkPrompt) -> str:
    clauses = thought_clauses(p)
    if clauses:
        return _sentence(clauses, p.max_words)
    # Nothing new: what continues, worded unlike the thought before (one form per memory length).
    gone = {e.name for e in parse_events(p.caption) if e.kind == "disappear"}
    continuing: dict[str, str] = {}
    for e in parse_events(p.caption):
        if e.kind == "appear" and e.name not in gone:
            continuing.setdefault(e.name, e.direction or "")
    pairs = list(continuing.items())[:2]
    previous = (p.memory[-1] if p.memory else "").lower()
    forms = _CONTINUE if pairs else _EMPTY
    for shift in range(len(forms)):
        form = forms[(len(p.memory) + shift) % len(forms)]
        text = _sentence([form(pairs) if pairs else form], p.max_words)  # type: ignore[operator]
        if text.lower() != previous:
            return text
    return text


# ---- faithful graph extraction -------------------------------------------------------------------------
def graph_reply(description: str) -> dict:
    names = named_objects(description)[:5]
    entities = [{"name": n, "type": "object", "attributes": [n.split()[0]]} for n in names]
    events = [e for e in parse_events(description) if e.name in names]
    # At most 3 relations: a disappearance happens once, a motion is told in every clip it lasts.
    ranked = sorted(range(len(events)), key=lambda i: (events[i].kind != "disappear", i))[:3]
    relations = []
    for i in sorted(ranked):
        e = events[i]
        if e.kind == "appear":
            relations.append({"subject": e.name, "predicate": f"moves {e.direction}", "object": "screen"})
        else:
            relations.append({"subject": e.name, "predicate": "disappears", "object": "scene"})
    return {"entities": entities, "relations": relations}


# ---- faithful questions ----------------------------------------------------------------------------------
@dataclass
class Question:
    form: str
    question: str
    options: list[str]  # plain texts
    answer: str
    evidence: list[int]  # clip indices
    answer_text: str = ""  # the correct option's text (multiple choice)


def _h(*parts) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _firsts(p: QAPrompt) -> list[str]:
    """One name per first clip (the alphabetically first), in time order: a well-defined order."""
    by_clip: dict[int, str] = {}
    for name, at in sorted(p.trusted_first.items(), key=lambda kv: (kv[1], kv[0])):
        by_clip.setdefault(at, name)
    return [by_clip[k] for k in sorted(by_clip)]


def _pick(options: list, salt) -> object:
    return options[_h(salt) % len(options)]


# Beyond the synthetic worlds' colours and shapes: a long video can show all 18 of theirs.
_OTHER_COLOURS = ("orange", "purple", "pink", "brown")
_OTHER_SHAPES = ("star", "hexagon", "diamond")


def _absent(present: set[str], salt) -> list[str]:
    """Colour-shape names not in `present`, in a seeded order: the worlds' own first, then others."""
    pool = [f"{c} {s}" for c in COLOURS for s in SHAPES if f"{c} {s}" not in present]
    other = [f"{c} {s}" for c in _OTHER_COLOURS for s in SHAPES + _OTHER_SHAPES]
    return sorted(pool, key=lambda n: _h(salt, n)) + sorted(other, key=lambda n: _h(salt, n))


def _two_clips(p: QAPrompt, around: list[int]) -> list[int]:
    out = sorted(set(around))
    for i in range(len(p.clips)):
        if len(out) >= 2:
            break
        if i not in out:
            out = sorted(out + [i])
    return out


def mc_questions(p: QAPrompt, salt: str, max_options: int = 4) -> list[Question]:
    out = []
    firsts = _firsts(p)
    first = p.first
    if len(firsts) >= 2:
        chosen = sorted(firsts, key=lambda n: _h(salt, "pick", n))[:max_options]
        order = sorted(chosen, key=lambda n: _h(salt, "order", n))
        for form, pick, wordings in (
            ("first", min, ("Which of these was the first to appear?", "Which of these shapes showed up earliest?", "Which of these appeared before the others?")),
            ("last", max, ("Which of these was the last to appear?", "Which of these shapes showed up most recently?", "Which of these appeared after the others?")),
        ):  # fmt: skip
            right = pick(order, key=lambda n: first[n])
            out.append(Question(form, str(_pick(wordings, (salt, form))), order, LETTERS[order.index(right)], sorted({first[n] for n in order}), right))
    moves = p.moves()
    for d in DIRECTIONS:
        # Only objects whose every motion the prompt tells: "no relation" is not "did not move that way".
        known = [n for n in first if p.moves_known(n)]
        movers = [n for n in known if d in moves.get(n, set())]
        others = sorted((n for n in known if d not in moves.get(n, set())), key=lambda n: _h(salt, d, n))[: max_options - 1]
        if len(movers) != 1 or not others:
            continue
        order = sorted([movers[0], *others], key=lambda n: _h(salt, "order", n))
        evidence = sorted({first[n] for n in order})
        if len(evidence) >= 2:
            wordings = (f"Which shape moved {d}?", f"Which of these moved {d}?", f"Which object was seen moving {d}?")
            out.append(Question("direction", str(_pick(wordings, (salt, d))), order, LETTERS[order.index(movers[0])], evidence, movers[0]))
    if not out and first:  # the fallback: one object seen, the others never
        right = sorted(first, key=lambda n: _h(salt, "seen", n))[0]
        order = sorted([right, *_absent(set(first), salt)[: max_options - 1]], key=lambda n: _h(salt, "order", n))
        wordings = ("Which of these has been seen so far?", "Which of these was seen in the video?")
        out.append(Question("seen", str(_pick(wordings, (salt, "seen"))), order, LETTERS[order.index(right)], _two_clips(p, [first[right]]), right))
    return out


def numerical_questions(p: QAPrompt, salt: str) -> list[Question]:
    out = []
    first = p.first

    def count(form: str, names: list[str], wording: str) -> None:
        evidence = sorted({first[n] for n in names})
        if len(names) >= 2 and len(evidence) >= 2:
            out.append(Question(form, wording, [], str(len(names)), evidence))

    if p.full_from is None:  # a full clip may have lost a name: no count is sure
        count("count_all", list(first), str(_pick(("How many different objects have been seen so far?", "How many different shapes have appeared so far?"), (salt, "all"))))
        for c in COLOURS:
            count("count_colour", [n for n in first if n.split()[0] == c], f"How many different {c} shapes have been seen so far?")
        for s in SHAPES:
            count("count_shape", [n for n in first if n.split()[-1] == s], f"How many different {s}s have been seen so far?")
    gone = p.gone()
    if p.gone_known() and len(gone) >= 2 and len(set(gone.values())) >= 2:
        out.append(Question("count_gone", "How many of the shapes have disappeared so far?", [], str(len(gone)), sorted(set(gone.values()))))
    if not out and first:
        out.append(Question("count_all", "How many different objects have been seen so far?", [], str(len(first)), _two_clips(p, list(first.values()))))
    return out


def yes_no_questions(p: QAPrompt, salt: str) -> list[Question]:
    out = []
    firsts = _firsts(p)
    first = p.first
    if len(firsts) >= 2:
        a, b = sorted(sorted(firsts, key=lambda n: _h(salt, "pair", n))[:2], key=lambda n: first[n])
        x, y = (a, b) if _h(salt, "flip") % 2 == 0 else (b, a)
        before = first[x] < first[y]
        # Never the template's wording ("Did the X appear before the Y?"): in qa mode mixed, the
        # same question twice would be one question id.
        wordings = [(f"Was the {x} seen before the {y}?", before), (f"Did the {x} show up earlier than the {y}?", before),
                    (f"Was the {x} seen after the {y}?", not before)]  # fmt: skip
        text, yes = wordings[_h(salt, "words") % len(wordings)]
        out.append(Question("before", text, [], "Yes" if yes else "No", sorted({first[x], first[y]})))
    if not out and first:
        real = sorted(first, key=lambda n: _h(salt, "seen", n))[0]
        name = real if _h(salt, "flip") % 2 == 0 else _absent(set(first), salt)[0]
        out.append(Question("seen", f"Has a {name} been seen so far?", [], "Yes" if name in first else "No", _two_clips(p, [first[real]])))
    return out


def write_question(p: QAPrompt, salt: str, max_evidence: int = 10) -> Question | None:
    """One question of the asked type (the form chosen by `salt`), its evidence within the reply
    schema's limit (QAReply: 10 clips); a question that needs more clips is not asked."""
    make = {"multiple_choice": mc_questions, "numerical": numerical_questions, "yes_no": yes_no_questions}[p.qa_type]
    made = make(p, salt)
    candidates = [q for q in made if len(q.evidence) <= max_evidence]
    if not candidates and made:  # nothing fits: the fallback's evidence, shortened (a weak reply, not a wrong one)
        q = made[-1]
        candidates = [Question(q.form, q.question, q.options, q.answer, q.evidence[:max_evidence], q.answer_text)]
    return candidates[_h(salt, "form") % len(candidates)] if candidates else None


def qa_reply(p: QAPrompt, q: Question | None) -> dict:
    if q is None:  # no entity at all: nothing can be asked; a reply the stage will refuse
        return {"type": p.qa_type, "question": "What happens in the video?", "options": [], "answer": "Yes", "evidence_clip_ids": p.clips[:2]}
    return {"type": p.qa_type, "question": q.question, "options": list(q.options), "answer": q.answer,
            "evidence_clip_ids": [p.clips[i] for i in q.evidence]}  # fmt: skip


# ---- injected mistakes -------------------------------------------------------------------------------------
@dataclass
class Injection:
    kind: str
    stage: str
    item: str  # "<stage>/<item_id>"
    text: str | None  # the injected content as it would appear in a chain
    answer: str | None = None
    detail: dict = field(default_factory=dict)

    def record(self) -> dict:
        return asdict(self)


@dataclass
class SimReply:
    content: str
    finish_reason: str = "stop"
    injection: Injection | None = None
    note: str | None = None  # for the server's log (never in the reply)
    prompt: str = "unknown"
    stage: str = ""


_EARLY = (
    lambda base, h: f"{base}, so the answer is {'ABCD'[h % 4]}.",
    lambda base, h: f"{base}; that makes {2 + h % 3} so far, which answers the question.",
    lambda base, h: "\\boxed{" + ("Yes", "No", "B", "2")[h % 4] + "}",
    lambda base, h: f"{base}; final answer: {1 + h % 4}.",
    lambda base, h: f"{base}, and I can already tell the answer: {('yes', 'no')[h % 2]}.",
)
_REPEAT = (
    lambda n, d: f"Once more, the {n} is moving {d}.",
    lambda n, d: f"Again the {n} keeps heading {d}.",
    lambda n, d: f"The {n} is still going {d}, as before.",
)
_MISSING = ("...", "", "Nothing.", "None.", " . ")

# Held-out wordings (`wordings="heldout"`): the same mistakes said in ways no check was written
# against. The checks were built knowing the wordings above; a gate measured only on them
# measures fixed strings. Report both (benchmarks/gate.py --wordings heldout).
_HELDOUT_EARLY = (
    lambda base, h: f"{base}. Clearly option {'ABCD'[h % 4]} is the right one.",
    lambda base, h: f"{base}, so it has to be {('Yes', 'No')[h % 2]}.",
    lambda base, h: f"{base}; my pick for the question is {1 + h % 4}.",
    lambda base, h: f"{base}, which means the reply is {('yes', 'no')[h % 2]}.",
    lambda base, h: f"{base}. The question is settled: {'ABCD'[h % 4]}.",
)
_HELDOUT_REPEAT = (
    lambda n, d: f"The {n} continues its way {d}, just like earlier.",
    lambda n, d: f"Same as before: the {n} drifts {d}.",
    lambda n, d: f"Just as in the last clip, the {n} goes {d}.",
)
_HELDOUT_MISSING = ("N/A.", "No thought.", "-", "(none)", "Skip.")
_HELDOUT_ECHO = (
    lambda p: "Memory of the earlier clips: " + (p.memory[-1] if p.memory else "nothing yet."),
    lambda p: "Mention nothing outside this clip and the memory.",
    lambda p: f"Write one short sentence about the {p.new_line}.",
)
_HELDOUT_THINGS = ("small dog", "red car", "tall man", "coffee cup", "orange star", "purple hexagon", "bicycle", "green balloon")

_LANG = {
    "zh": {"colour": dict(zip(COLOURS, ("红色", "绿色", "蓝色", "黄色", "白色", "品红色"))), "shape": dict(zip(SHAPES, ("圆形", "正方形", "三角形"))),
           "dir": dict(zip(DIRECTIONS, ("左", "右", "上", "下"))), "appear": "一个{c}{s}出现并向{d}移动。", "keep": "{c}{s}继续向{d}移动。", "empty": "画面上什么都没有动。"},
    "ru": {"colour": dict(zip(COLOURS, ("Красный", "Зелёный", "Синий", "Жёлтый", "Белый", "Пурпурный"))), "shape": dict(zip(SHAPES, ("круг", "квадрат", "треугольник"))),
           "dir": dict(zip(DIRECTIONS, ("влево", "вправо", "вверх", "вниз"))), "appear": "{c} {s} появляется и движется {d}.", "keep": "{c} {s} продолжает двигаться {d}.", "empty": "На экране ничего не движется."},
    "es": {"colour": dict(zip(COLOURS, ("rojo", "verde", "azul", "amarillo", "blanco", "magenta"))), "shape": dict(zip(SHAPES, ("circulo", "cuadrado", "triangulo"))),
           "dir": dict(zip(DIRECTIONS, ("la izquierda", "la derecha", "arriba", "abajo"))), "appear": "Un {s} {c} aparece y se mueve hacia {d}.", "keep": "El {s} {c} sigue moviendose hacia {d}.", "empty": "Nada se mueve en la pantalla."},
    "de": {"colour": dict(zip(COLOURS, ("rot", "gruen", "blau", "gelb", "weiss", "magenta"))), "shape": dict(zip(SHAPES, ("Kreis", "Quadrat", "Dreieck"))),
           "dir": dict(zip(DIRECTIONS, ("links", "rechts", "oben", "unten"))), "appear": "Ein {c} {s} erscheint und bewegt sich nach {d}.", "keep": "Der {c} {s} bewegt sich weiter nach {d}.", "empty": "Auf dem Bildschirm bewegt sich nichts."},
    # held-out languages (wordings="heldout")
    "fr": {"colour": dict(zip(COLOURS, ("rouge", "vert", "bleu", "jaune", "blanc", "magenta"))), "shape": dict(zip(SHAPES, ("cercle", "carre", "triangle"))),
           "dir": dict(zip(DIRECTIONS, ("la gauche", "la droite", "le haut", "le bas"))), "appear": "Un {s} {c} apparait et se deplace vers {d}.", "keep": "Le {s} {c} continue de se deplacer vers {d}.", "empty": "Rien ne bouge sur l'ecran."},
    "it": {"colour": dict(zip(COLOURS, ("rosso", "verde", "blu", "giallo", "bianco", "magenta"))), "shape": dict(zip(SHAPES, ("cerchio", "quadrato", "triangolo"))),
           "dir": dict(zip(DIRECTIONS, ("sinistra", "destra", "alto", "basso"))), "appear": "Un {s} {c} appare e si muove verso {d}.", "keep": "Il {s} {c} continua a muoversi verso {d}.", "empty": "Niente si muove sullo schermo."},
}  # fmt: skip
_GERMAN_ENDING = {"Kreis": ("er", "e"), "Quadrat": ("es", "e"), "Dreieck": ("es", "e")}  # (ein ..., der ...)


def _drift(lang: str, name: str | None, direction: str | None, new: bool) -> str:
    t = _LANG[lang]
    if name is None:
        return t["empty"]
    colour, shape = name.split()
    c, s, d = t["colour"][colour], t["shape"][shape], t["dir"][direction or "left"]
    if lang == "de":
        c = c + _GERMAN_ENDING[s][0 if new else 1]
    return (t["appear"] if new else t["keep"]).format(c=c, s=s, d=d)


class TeacherSimulator:
    """Replies to the workbench's prompts; injects mistakes at `rate` among `kinds` (default: all).

    State: the clip descriptions seen in graph prompts, by clip id (a think prompt knows only the
    past; its mistakes about the future need the rest of the video), and request counts."""

    def __init__(self, rate: float = 0.0, kinds: list[str] | tuple[str, ...] | None = None, seed: int = 0, format_share: float = 0.15,
                 wordings: str = "seen"):  # fmt: skip
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {rate}")
        if not 0.0 <= format_share <= 1.0:
            raise ValueError(f"format_share must be within 0..1, got {format_share}")
        self.format_share = format_share
        if wordings not in ("seen", "heldout"):
            raise ValueError(f"wordings must be 'seen' or 'heldout', got {wordings!r}")
        self.wordings = wordings
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown mistake kinds {unknown}; known: {', '.join(KINDS)}")
        self.rate, self.seed = rate, seed
        self.kinds = tuple(k for k in KINDS if kinds is None or k in kinds)
        self.captions: dict[str, str] = {}
        self.requests: Counter[str] = Counter()  # stage -> requests
        self.injected: Counter[str] = Counter()  # kind -> injections

    # ---- state ---------------------------------------------------------------------------------
    def remember_captions(self, captions: dict[str, str]) -> None:
        """Clip id -> description, as graph prompts would teach it (e.g. when graph replies came
        from a cache and never reached this server)."""
        self.captions.update(captions)

    def video_captions(self, clip_id: str) -> tuple[list[str], list[tuple[str, str]]]:
        """(descriptions of the clips before `clip_id`, [(clip id, description) after it]) of its video."""
        video, index = _clip_parts(clip_id)
        before, after = [], []
        for cid, caption in self.captions.items():
            v, i = _clip_parts(cid)
            if v == video and i is not None and index is not None:
                if i < index:
                    before.append((i, caption))
                elif i > index:
                    after.append((i, cid, caption))
        return [c for _, c in sorted(before)], [(cid, c) for _, cid, c in sorted(after)]

    # ---- one request -----------------------------------------------------------------------------
    def reply(self, body: dict, item_header: str | None = None) -> SimReply:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise SimulatorError("the request has no messages")
        kind = prompt_kind(body)
        stage, item_id = split_item(item_header, kind)
        item = f"{stage}/{item_id}" if item_id else f"{stage}/unknown-{hashlib.sha1(first_user(body).encode()).hexdigest()[:10]}"
        self.requests[stage] += 1
        text = first_user(body)
        maker = {"graph": self._graph, "qa": self._qa, "think": self._think, "answer": self._answer, "caption": self._caption}.get(kind)
        if maker is None:
            out = SimReply(json.dumps({"answer": "unknown"}), note=f"{item}: a prompt the simulator does not know")
        else:
            out = maker(body, text, item, item_id, inject=not is_repair(body))
        out.prompt, out.stage = kind, stage
        if out.injection is not None:
            self.injected[out.injection.kind] += 1
        return out

    # ---- the decision -----------------------------------------------------------------------------
    def _chosen(self, item: str, applicable: list[str]) -> str | None:
        """The kind to inject into this item, or None (sha1 of seed and item: reproducible)."""
        if self.rate <= 0 or not applicable:
            return None
        if _h(self.seed, item, "inject") % 1_000_000 >= self.rate * 1_000_000:
            return None
        kinds = [k for k in self.kinds if k in applicable]
        if not kinds:
            return None
        # Reply-format faults apply to every prompt; content mistakes to one stage each. Drawn
        # uniformly, the two format kinds would crowd out the content kinds of a stage with few
        # (qa has 2-3): give the format faults together a fixed share of the injections instead.
        content = [k for k in kinds if k not in FORMAT_KINDS]
        formats = [k for k in kinds if k in FORMAT_KINDS]
        if content and formats:
            draw = _h(self.seed, item, "format") % 1_000_000
            kinds = formats if draw < self.format_share * 1_000_000 else content
        return kinds[_h(self.seed, item, "kind") % len(kinds)]

    def _applicable(self, stage_kinds: list[str]) -> list[str]:
        return [k for k in KINDS if k in stage_kinds or k in FORMAT_KINDS]

    def _format(self, kind: str, content: str, item: str, stage: str) -> SimReply:
        h = _h(self.seed, item, "variant")
        if kind == "truncation":
            cut = content[: max(1, len(content) // 2)]
            return SimReply(cut, "length", Injection(kind, stage, item, cut, None, {"full": content}))
        data = json.loads(content)
        inner = next(iter(data.values())) if len(data) == 1 else None
        prose = inner if isinstance(inner, str) else ", ".join(named_objects(content)) or "nothing in particular"
        variants = (
            content.rstrip("}") + ",}",  # a trailing comma
            content.replace('"', "'"),  # single quotes
            f"Sure! Here is what I see: {prose.replace('{', '(').replace('}', ')')}",  # prose, no JSON object
            content[:-1],  # the closing brace missing
        )
        broken = variants[h % len(variants)]
        return SimReply(broken, "stop", Injection(kind, stage, item, broken, None, {"variant": h % len(variants)}))

    # ---- graph --------------------------------------------------------------------------------------
    def _graph(self, body: dict, text: str, item: str, item_id: str, inject: bool) -> SimReply:
        m = re.search(r'Description: "(.*)"', text, re.DOTALL)
        description = m.group(1) if m else text
        if item_id:
            self.captions[item_id] = description
        content = json.dumps(graph_reply(description))
        kind = self._chosen(item, list(FORMAT_KINDS)) if inject else None
        return self._format(kind, content, item, "graph") if kind else SimReply(content)

    # ---- caption (perceive with a vision teacher): the pixels are not ours ------------------------------
    def _caption(self, body: dict, text: str, item: str, item_id: str, inject: bool) -> SimReply:
        content = json.dumps({"caption": "A short video clip.", "entities": [], "actions": [], "on_screen_text": []})
        kind = self._chosen(item, list(FORMAT_KINDS)) if inject else None
        if kind:
            return self._format(kind, content, item, "perceive")
        return SimReply(content, note=f"{item}: the simulated teacher cannot see frames; use annotated videos (perceive source: annotation)")

    # ---- verify -----------------------------------------------------------------------------------------
    def _answer(self, body: dict, text: str, item: str, item_id: str, inject: bool) -> SimReply:
        p = read_answer(text)
        answer = solve(p.question, p.options, p.captions)
        note = None
        if answer is None:
            answer = {"multiple_choice": "A", "numerical": "1"}.get(p.qa_type, "Yes")
            note = f"{item}: no single answer to the question {p.question!r} (unreadable, or ambiguous options); answered {answer!r}"
        content = json.dumps({"answer": answer})
        stage = item.partition("/")[0]
        kind = self._chosen(item, list(FORMAT_KINDS)) if inject else None
        out = self._format(kind, content, item, stage) if kind else SimReply(content)
        out.note = note
        return out

    # ---- qa -----------------------------------------------------------------------------------------------
    def _qa(self, body: dict, text: str, item: str, item_id: str, inject: bool) -> SimReply:
        p = read_qa(text)
        limit = ((_schema(body).get("properties") or {}).get("evidence_clip_ids") or {}).get("maxItems", 10)
        q = write_question(p, f"{self.seed}|{item}", limit)
        reply = qa_reply(p, q)
        content = json.dumps(reply)
        if not inject or q is None:
            return SimReply(content, note=None if q else f"{item}: the prompt names no entity to ask about")
        applicable = ["answer_leaked"]
        if p.qa_type in ("multiple_choice", "yes_no"):
            applicable.append("wrong_answer")
        if p.qa_type == "numerical":
            applicable.append("wrong_count")
        if p.qa_type == "multiple_choice":
            applicable.append("duplicate_options")
        kind = self._chosen(item, self._applicable(applicable))
        if kind is None:
            return SimReply(content)
        if kind in FORMAT_KINDS:
            return self._format(kind, content, item, "qa")
        h = _h(self.seed, item, "variant")
        bad = dict(reply)
        detail = {"form": q.form, "correct_answer": q.answer, "options": list(q.options)}
        if kind == "wrong_answer":
            if p.qa_type == "yes_no":
                bad["answer"] = "No" if q.answer == "Yes" else "Yes"
            else:
                wrong = [L for L in LETTERS[: len(q.options)] if L != q.answer]
                bad["answer"] = wrong[h % len(wrong)]
        elif kind == "wrong_count":
            n = int(q.answer)
            deltas = [d for d in (1, -1, 2, -2) if n + d >= 0]
            bad["answer"] = str(n + deltas[h % len(deltas)])
        elif kind == "answer_leaked":
            bad["question"] = _leak(q, h)
        elif kind == "duplicate_options":
            variants = (f"The {q.answer_text}.", f"{q.answer_text}s", f"a {q.answer_text}", f"the {q.answer_text}!")
            dup = variants[h % len(variants)]
            options = list(q.options)
            options = options + [dup] if len(options) < 5 else options[:-1] + [dup] if options[-1] != q.answer_text else [dup] + options[1:]
            bad["options"] = options
            bad["answer"] = LETTERS[options.index(q.answer_text)]
            detail["duplicate"] = [q.answer_text, dup]
        return SimReply(json.dumps(bad), injection=Injection(kind, "qa", item, bad["question"], bad["answer"], detail | {"options_sent": bad["options"]}))

    # ---- think ----------------------------------------------------------------------------------------------
    def _think(self, body: dict, text: str, item: str, item_id: str, inject: bool) -> SimReply:
        p = read_think(text)
        faithful = faithful_thought(p)
        content = json.dumps({"thought": faithful})
        if not inject:
            return SimReply(content)
        clip_id = item_id.rpartition("/")[2]
        earlier, later = self.video_captions(clip_id) if clip_id else ([], [])
        events = parse_events(p.caption)
        applicable = ["hallucinated_entity", "future_entity", "early_answer", "prompt_echo", "missing_thought", "language_drift"]
        if any(e.kind == "appear" for e in events):
            applicable.append("wrong_attribute")
        if _future_events(p, earlier, later):
            applicable.append("future_event")
        if p.memory:
            applicable.append("reworded_repeat")
        kind = self._chosen(item, self._applicable(applicable))
        if kind is None:
            return SimReply(content)
        if kind in FORMAT_KINDS:
            return self._format(kind, content, item, "think")
        h = _h(self.seed, item, "variant")
        thought, detail = self._bad_thought(kind, p, earlier, later, h)
        if isinstance(thought, tuple):  # a fallback to another kind
            kind, thought = thought
        reply = json.dumps({"thought": thought})
        return SimReply(reply, injection=Injection(kind, "think", item, " ".join(thought.split()), None, detail))

    def _bad_thought(self, kind: str, p: ThinkPrompt, earlier: list[str], later: list[tuple[str, str]], h: int):
        clauses = thought_clauses(p)
        base = _sentence(clauses[:1], max(3, p.max_words - 8)).rstrip(".") if clauses else ""
        known = set(named_objects(" ".join([p.caption, *p.memory, *earlier, *(c for _, c in later)])))
        events = parse_events(p.caption)
        if kind == "future_entity":
            seen = set(named_objects(" ".join([p.caption, *p.memory, *earlier])))
            for cid, caption in later:
                fresh = [n for n in named_objects(caption) if n not in seen]
                if fresh:
                    name = fresh[h % len(fresh)]
                    clause = _appears(name, next((e.direction for e in parse_events(caption) if e.name == name and e.kind == "appear"), None))
                    return _sentence([base, clause] if base else [clause], p.max_words), {"entity": name, "first_clip_id": cid}
            thought, detail = self._bad_thought("hallucinated_entity", p, earlier, later, h)
            return ("hallucinated_entity", thought), detail | {"fallback_from": "future_entity"}
        if kind == "hallucinated_entity" and self.wordings == "heldout":
            thing = _HELDOUT_THINGS[h % len(_HELDOUT_THINGS)]
            return _sentence([f"{base} next to a {thing}" if base else f"A {thing} comes into view"], p.max_words), {"entity": thing, "wordings": "heldout"}
        if kind == "hallucinated_entity":
            name = _absent(known, h)[0]
            if base:
                return _sentence([f"{base} beside a {name}"], p.max_words), {"entity": name}
            return _sentence([_appears(name, DIRECTIONS[h % 4])], p.max_words), {"entity": name}
        if kind == "wrong_attribute":
            new_keys = {_key(n) for n in p.new}
            appear = [e for e in events if e.kind == "appear"]
            target = next((e for e in appear if e.name in new_keys), appear[0])
            whole = " ".join([p.caption, *earlier, *(c for _, c in later)]).lower()
            colours = [c for c in sorted(COLOURS, key=lambda c: _h(h, c)) if f"{c} {target.shape}" not in known]
            directions = [d for d in DIRECTIONS if d != target.direction and f"{target.name} appears and moves {d}" not in whole]
            name, direction = target.name, target.direction
            if colours and (h % 2 == 0 or not directions):
                name = f"{colours[0]} {target.shape}"
                detail = {"entity": target.name, "attribute": "colour", "said": colours[0], "true": target.colour}
            else:
                pool = directions or [d for d in DIRECTIONS if d != target.direction]
                direction = pool[h % len(pool)]
                detail = {"entity": target.name, "attribute": "direction", "said": direction, "true": target.direction}
            if target.name in new_keys:  # the new object, told wrong, with the rest of what is new
                rest = [c for c in clauses if f" {target.name} appears" not in c]
                return _sentence([_appears(name, direction), *rest], p.max_words), detail
            return _sentence([f"the {name} keeps moving {direction}"], p.max_words), detail
        if kind == "future_event":
            name, event, cid = _future_events(p, earlier, later)[h % len(_future_events(p, earlier, later))]
            clause = f"the {name} {event}"
            return _sentence([base, clause] if base else [clause], p.max_words), {"entity": name, "event": event, "clip_id": cid}
        if kind == "early_answer" and self.wordings == "heldout":
            variant = h % len(_HELDOUT_EARLY)
            return _HELDOUT_EARLY[variant](base or _sentence([_continue_clause(events)], p.max_words).rstrip("."), h), {"variant": variant, "wordings": "heldout"}
        if kind == "prompt_echo" and self.wordings == "heldout":
            variant = h % len(_HELDOUT_ECHO)
            words = _HELDOUT_ECHO[variant](p).split()
            return " ".join(words[: p.max_words]).rstrip(".,;:") + ".", {"variant": variant, "wordings": "heldout"}
        if kind == "early_answer":
            variant = h % len(_EARLY)
            return _EARLY[variant](base or _sentence([_continue_clause(events)], p.max_words).rstrip("."), h), {"variant": variant}
        if kind == "prompt_echo":
            caption = "; ".join(s.strip() for s in re.split(r"(?<=\.)\s+", p.caption) if s.strip()).replace(".;", ";").rstrip(".")
            variants = (f"New in this clip: {p.new_line}.", f"Current clip: {caption}.", f"What is new in the current clip: {p.new_line}.")
            variant = h % len(variants)
            words = variants[variant].split()
            text = " ".join(words[: p.max_words]).rstrip(".,;:") + "."
            return text, {"variant": variant}
        if kind == "reworded_repeat":
            previous = p.memory[-1]
            moving = [e for e in parse_events(previous) if e.kind == "appear"] or [
                Event(n, "appear", next((d for d in DIRECTIONS if re.search(rf"\b{d}\b", previous)), "along")) for n in named_objects(previous)
            ]
            repeats = _HELDOUT_REPEAT if self.wordings == "heldout" else _REPEAT
            if moving:
                thought = repeats[h % len(repeats)](moving[0].name, moving[0].direction)
            else:
                thought = "Once again, " + previous[:1].lower() + previous[1:]
            return thought, {"previous": previous}
        if kind == "missing_thought":
            missing = _HELDOUT_MISSING if self.wordings == "heldout" else _MISSING
            variant = h % len(missing)
            return missing[variant], {"variant": variant}
        if kind == "language_drift":
            lang = ("fr", "it")[h % 2] if self.wordings == "heldout" else ("zh", "ru", "es", "de")[h % 4]
            new_keys = [_key(n) for n in p.new]
            appear = [e for e in events if e.kind == "appear"]
            target = next((e for e in appear if e.name in new_keys), appear[0] if appear else None)
            thought = _drift(lang, target.name if target else None, target.direction if target else None, bool(target and target.name in new_keys))
            return thought, {"language": lang}
        raise ValueError(f"not a think mistake: {kind}")


def _continue_clause(events: list[Event]) -> str:
    moving = [e for e in events if e.kind == "appear"]
    return f"the {moving[0].name} keeps moving {moving[0].direction}" if moving else "nothing is moving on the screen"


def _future_events(p: ThinkPrompt, earlier: list[str], later: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(name, event text, clip id) of what an object of this clip does only in a later clip:
    disappear, or move in a direction it never moved in before."""
    now = " ".join([p.caption, *earlier])
    names = named_objects(p.caption)
    gone_now = {e.name for e in parse_events(now) if e.kind == "disappear"}
    dirs_now = {(e.name, e.direction) for e in parse_events(now) if e.kind == "appear"}
    out: list[tuple[str, str, str]] = []
    for cid, caption in later:
        for e in parse_events(caption):
            if e.name not in names:
                continue
            if e.kind == "disappear" and e.name not in gone_now:
                out.append((e.name, "disappears", cid))
                gone_now.add(e.name)
            elif e.kind == "appear" and (e.name, e.direction) not in dirs_now:
                out.append((e.name, f"moves {e.direction}", cid))
                dirs_now.add((e.name, e.direction))
    return out


def _leak(q: Question, h: int) -> str:
    """The question, worded so that it gives its answer away."""
    lower = q.question[:1].lower() + q.question[1:]
    if q.options:
        variants = (f"{q.question[:-1]} (hint: the {q.answer_text})?", f"Knowing that it is the {q.answer_text}, {lower}", f"{q.question} It is the {q.answer_text}.")
    elif q.answer in ("Yes", "No"):
        variants = (f"{q.question} ({q.answer})", f"{q.question} The answer is {q.answer}.", f"{q.answer}, right? {q.question}")
    else:
        variants = (f"Given that {q.answer} have been seen, {lower}", f"{q.question} ({q.answer})", f"{q.question} The answer is {q.answer}.")
    return variants[h % len(variants)]


def _clip_parts(clip_id: str) -> tuple[str, int | None]:
    m = re.match(r"^(.*)-c(\d+)$", clip_id or "")
    return (m.group(1), int(m.group(2))) if m else (clip_id, None)
