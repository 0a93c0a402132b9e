"""Streaming thoughts written by code from a window's knowledge graph and captions (think mode
`compose`): grounded by construction, so a small teacher (or none) cannot invent, leak or echo.

For clip k of a window a thought says, first, what the clip's human annotations state and
complete in it (`told`: the sentences of subtitles, narrations, dense captions or ASR that END in
clip k, in the annotator's own words; a sentence still running is not told yet), then, from the
graph (entities with their clips, relations with the clip that tells them):
- what is new: the entities first seen in clip k, with what the relations of clip k tell about
  them (moves <direction>, disappears, other predicates);
- what changed since the memory: a disappearance the graph tells, a thing of clip k-1 no longer
  seen ("out of view"), a thing back after a gap, a new direction of motion, a changed count;
- at most one reference back ("first seen at 7 s"), and never anything of a later clip;
- else that the scene continues, naming what is still visible.

Clauses have priorities; the lowest go first when the sentence would pass `max_words` (whole
clauses are dropped, words are never cut in half). Wording comes from phrase banks, picked by a
hash of (seed, clip, clause): the same window always gives the same thoughts, other windows
other words.

"By construction" is checked, not hoped for: every candidate thought runs through the quality
gate's own rule checks (curation.checks thoughts / causality / grounding) against the window's
graph and captions, with the thoughts already written as its memory; the first candidate that
passes is kept, the next phrasing is tried otherwise (this is also what keeps the thoughts of a
static scene from repeating each other).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from curation.checks.base import Issue
from curation.checks.causality import CausalityConfig, check_causality
from curation.checks.graph_index import GraphIndex, build_graph_index
from curation.checks.grounding import GroundingConfig, check_grounding
from curation.checks.text import APPEAR, DIRECTIONS, DISAPPEAR, MOVE, canon, mentions, name_key
from curation.checks.thoughts import ThoughtsConfig, check_thoughts

COMPOSE_VERSION = "compose.v1"

# Literal objects that only say "on screen" ("moves_left" -> "screen"): not worth a word.
_SCREEN_WORDS = frozenset("screen scene view frame picture image video clip".split())
_NUMBER = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# Entity types that are where things happen, not things: said when new, not tracked as gone.
_PLACE_TYPES = frozenset(["place"])

# ---- phrase banks ---------------------------------------------------------------------------------
# {n} a name with its article ("a red circle"), {the} the name with "the", {d} a direction, {t} a
# time in seconds. Words the checks read as events are chosen on purpose: "appears", "shows up"
# (appear), "moving / heads" + direction (motion), "disappears / vanishes" (disappear); the
# "out of view" bank says a thing is not seen without telling a disappearance the graph does not.
NEW_MOVING = (
    "{n} appears and moves {d}",
    "{n} comes into view, moving {d}",
    "{n} shows up and heads {d}",
    "there is now {n}, moving {d}",
    "{n} enters the view and moves {d}",
)
NEW_STILL = (
    "{n} appears",
    "{n} comes into view",
    "{n} shows up",
    "there is now {n}",
    "{n} is now in view",
)
DISAPPEARS = ("{the} disappears", "{the} vanishes", "{the} leaves the view", "{the} is gone now")
OUT_OF_VIEW = ("{the} is out of view now", "{the} is no longer in view", "{the} is not visible any more")
BACK = ("{the} is back, moving {d}", "{the} reappears, moving {d}", "{the} returns and heads {d}")
BACK_STILL = ("{the} is back", "{the} reappears", "{the} returns to view")
TURNS = ("{the} now moves {d}", "{the} changes course and heads {d}", "{the} is now moving {d}")
COUNT = ("{k} things are in view now", "now {k} things are visible", "the view holds {k} things")
REFERENCE = ("{the} was first seen at {t} s", "{the} has been around since {t} s", "{the} dates from {t} s")
CONTINUE_MOVING = (
    "{the} keeps moving {d}",
    "{the} is still moving {d}",
    "{the} continues to move {d}",
    "{the} stays in view, moving {d}",
    "{the} keeps heading {d}",
)
CONTINUE_STILL = (
    "{the} is still in view",
    "{the} remains in view",
    "{the} stays on screen",
    "{the} is still there",
    "{the} remains visible",
)
QUIET = (
    "nothing new happens at {t} s",
    "no change is seen at {t} s",
    "the view stays quiet at {t} s",
    "all is calm at {t} s",
)
# Prefixes that set a thought apart from an earlier one with the same content (a static scene).
TIME_PREFIX = ("at {t} s, ", "by {t} s, ", "around {t} s, ")


def _h(*parts) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


@dataclass
class Clause:
    """One thing a thought can say. Lower `priority` is said first and dropped last."""

    priority: int
    key: str  # what it is about (seeds its phrasing)
    bank: tuple[str, ...]
    values: dict
    names: list[str]  # graph names it says
    kind: str = "fact"  # fact | reference | continue | quiet

    def text(self, shift: int, seed: str) -> str:
        form = self.bank[(_h(seed, self.key) + shift) % len(self.bank)]
        return form.format(**self.values)


@dataclass
class _Window:
    clips: list[dict]
    entities: dict[str, dict]  # entity_id -> row
    seen: list[set[str]]  # clip position -> entity ids seen there
    relations: list[list[dict]]  # clip position -> relations told there
    first: dict[str, int]  # entity_id -> first clip position
    order: dict[str, int] = field(default_factory=dict)


def _window(clips: list[dict], graph: dict) -> _Window:
    order = {c["clip_id"]: k for k, c in enumerate(clips)}
    entities = {e["entity_id"]: e for e in graph.get("entities") or []}
    seen: list[set[str]] = [set() for _ in clips]
    first: dict[str, int] = {}
    for eid, e in entities.items():
        positions = {order[c] for c in (e.get("clip_ids") or []) if c in order}
        if e.get("first_clip_id") in order:
            positions.add(order[e["first_clip_id"]])
        for p in positions:
            seen[p].add(eid)
        if positions:
            first[eid] = min(positions)
    relations: list[list[dict]] = [[] for _ in clips]
    for r in graph.get("relations") or []:
        if r.get("clip_id") in order and r.get("subject") in entities:
            relations[order[r["clip_id"]]].append(r)
    return _Window(clips, entities, seen, relations, first, order)


# ---- reading relations ------------------------------------------------------------------------------
def _pred_words(rel: dict) -> list[str]:
    return [w for w in (rel.get("predicate") or "").replace("_", " ").split() if w]


def motion(rel: dict) -> str | None:
    """The direction a relation says its subject moves ("moves_left", or "moves" + "left")."""
    words = _pred_words(rel)
    if not words or canon(words[0].lower()) != MOVE:
        return None
    obj = str(rel.get("object") or "").lower()
    for w in [*words[1:], *obj.split()]:
        if canon(w.lower()) in DIRECTIONS:
            return canon(w.lower())
    return None


def is_disappearance(rel: dict) -> bool:
    return any(canon(w.lower()) == DISAPPEAR for w in _pred_words(rel)) or (
        bool(_pred_words(rel)) and _pred_words(rel)[0].lower() == "left" and str(rel.get("object") or "").lower() in _SCREEN_WORDS
    )


def _is_appearance(rel: dict) -> bool:
    return any(canon(w.lower()) == APPEAR for w in _pred_words(rel))


# ---- names --------------------------------------------------------------------------------------------
def _article(e: dict) -> str:
    name = e["name"]
    if e.get("type") == "text" or len(name.split()) == 1 and name in ("camera", "scene"):
        return "the"
    return "an" if name[:1].lower() in "aeiou" else "a"


def _with_attributes(e: dict) -> str:
    """The name with one short attribute the name does not say ("plain olive background")."""
    name = e["name"]
    extra = [a for a in (e.get("attributes") or []) if a and " " not in a and a.isalpha() and a.lower() not in name.lower().split()]
    return f"{sorted(extra)[0]} {name}" if extra else name


def _a(e: dict, attributes: bool = True) -> str:
    words = _with_attributes(e) if attributes else e["name"]
    art = _article(e)
    if art != "the":
        art = "an" if words[:1].lower() in "aeiou" else "a"
    return f"{art} {words}"


def _the(e: dict) -> str:
    return f"the {e['name']}"


def _time(s: float) -> str:
    return f"{s:.0f}"


def _relation_clause(w: _Window, k: int, rel: dict, seed_key: str) -> Clause | None:
    """A relation of clip k that is not motion / appear / disappear ("the person holds the cup")."""
    words = _pred_words(rel)
    if not words:
        return None
    obj = rel.get("object")
    if obj in w.entities:
        if w.first.get(obj, 1 << 30) > k:
            return None  # the object is a thing of a later clip: naming it would tell the future
        obj_text, names = _the(w.entities[obj]), [w.entities[obj]["name"]]
    else:
        obj_text, names = str(obj or "").replace("_", " ").strip(), []
        if obj_text.lower() in _SCREEN_WORDS:
            obj_text = ""
    verb = " ".join(words)
    if not (words[0].endswith("s") or words[0] in ("is", "has", "was")):
        verb = "is " + verb
    subject = w.entities[rel["subject"]]
    text = f"{_the(subject)} {verb}" + (f" {obj_text}" if obj_text else "")
    return Clause(4, seed_key, (text,), {}, [subject["name"], *names])


_LOWER_FIRST = frozenset("a an the this that these those there it he she they someone somebody one two three cars people".split())


def _told_clause(w: _Window, k: int, n: int, text: str) -> Clause:
    """An annotation sentence as a clause: its words, its final stop off (a thought joins its
    clauses), the graph names it mentions as the thought's entities."""
    body = text.strip().rstrip(".!").strip()
    first = body.split(" ", 1)[0]
    if first.lower() in _LOWER_FIRST:
        body = first.lower() + body[len(first):]
    names = [e["name"] for e in w.entities.values() if w.first.get(e["entity_id"], k + 1) <= k and mentions(body, name_key(e["name"]))]
    bank = (body.replace("{", "{{").replace("}", "}}"),)  # a clause's bank is a format string
    return Clause(0, f"{w.clips[k]['clip_id']}/told/{n}", bank, {}, names, "told")


# ---- clauses of one clip ----------------------------------------------------------------------------
def clip_clauses(w: _Window, k: int) -> list[Clause]:
    clip = w.clips[k]
    cid = clip["clip_id"]
    now = w.seen[k]
    before = w.seen[k - 1] if k > 0 else set()
    earlier = set().union(*w.seen[:k]) if k > 0 else set()
    rels = w.relations[k]
    moves: dict[str, str] = {}
    gone_now: set[str] = set()
    for r in rels:
        d = motion(r)
        if d is not None:
            moves.setdefault(r["subject"], d)
        if is_disappearance(r):
            gone_now.add(r["subject"])
    gone_before = {r["subject"] for r in w.relations[k - 1] if is_disappearance(r)} if k > 0 else set()
    last_dir: dict[str, str] = {}
    for p in range(k):
        for r in w.relations[p]:
            d = motion(r)
            if d is not None:
                last_dir[r["subject"]] = d
    ent = w.entities
    out: list[Clause] = [_told_clause(w, k, n, text) for n, text in enumerate(clip.get("told") or [])]
    # what is new: places last among the new things (the objects are what a question asks about)
    new = sorted((e for e in now if w.first.get(e) == k), key=lambda e: (ent[e].get("type") in _PLACE_TYPES, ent[e]["name"]))
    for rank, eid in enumerate(new):
        e = ent[eid]
        d = moves.get(eid)
        bank = NEW_MOVING if d else NEW_STILL
        out.append(Clause(0 if rank == 0 else 1, f"{cid}/new/{eid}", bank, {"n": _a(e), "d": d}, [e["name"]]))
    # what changed: disappearances the graph tells, things of the last clip no longer seen,
    # things back after a gap, a new direction of motion
    for eid in sorted(gone_now, key=lambda e: ent[e]["name"]):
        out.append(Clause(1, f"{cid}/gone/{eid}", DISAPPEARS, {"the": _the(ent[eid])}, [ent[eid]["name"]]))
    for eid in sorted(before - now - gone_before - gone_now, key=lambda e: ent[e]["name"]):
        if ent[eid].get("type") not in _PLACE_TYPES:
            out.append(Clause(2, f"{cid}/out/{eid}", OUT_OF_VIEW, {"the": _the(ent[eid])}, [ent[eid]["name"]]))
    for eid in sorted(now & earlier - before, key=lambda e: ent[e]["name"]):
        if w.first.get(eid, k) < k and ent[eid].get("type") not in _PLACE_TYPES:
            d = moves.get(eid)
            out.append(Clause(2, f"{cid}/back/{eid}", BACK if d else BACK_STILL, {"the": _the(ent[eid]), "d": d}, [ent[eid]["name"]]))
    for eid in sorted(now & before, key=lambda e: ent[e]["name"]):
        d = moves.get(eid)
        if d and eid in last_dir and last_dir[eid] != d:
            out.append(Clause(2, f"{cid}/turn/{eid}", TURNS, {"the": _the(ent[eid]), "d": d}, [ent[eid]["name"]]))
    things_now = [e for e in now if ent[e].get("type") not in _PLACE_TYPES]
    things_before = [e for e in before if ent[e].get("type") not in _PLACE_TYPES]
    if k > 0 and 2 <= len(things_now) < len(_NUMBER) and len(things_now) != len(things_before):
        out.append(Clause(3, f"{cid}/count", COUNT, {"k": _NUMBER[len(things_now)]}, []))
    said_relations = {(r["subject"], r.get("predicate"), r.get("object")) for p in range(k) for r in w.relations[p]}
    for r in rels:
        if motion(r) or is_disappearance(r) or _is_appearance(r) or (r["subject"], r.get("predicate"), r.get("object")) in said_relations:
            continue
        c = _relation_clause(w, k, r, f"{cid}/rel/{r['subject']}/{r.get('predicate')}")
        if c is not None:
            out.append(c)
    # the scene continues: what is still visible (things first, the two seen longest)
    if not out:
        still = sorted(now, key=lambda e: (ent[e].get("type") in _PLACE_TYPES, w.first.get(e, k), ent[e]["name"]))[:2]
        for rank, eid in enumerate(still):
            d = moves.get(eid)
            bank = CONTINUE_MOVING if d else CONTINUE_STILL
            out.append(Clause(5 + rank, f"{cid}/still/{eid}", bank, {"the": _the(ent[eid]), "d": d}, [ent[eid]["name"]], "continue"))
        if not still:
            out.append(Clause(5, f"{cid}/quiet", QUIET, {"t": _time(clip["start_s"])}, [], "quiet"))
    # one reference back: a thing of this clip seen since an earlier clip
    old = sorted((e for e in now & before if w.first.get(e, k) < k and ent[e].get("type") not in _PLACE_TYPES), key=lambda e: (w.first[e], ent[e]["name"]))
    if old:
        e = ent[old[0]]
        out.append(Clause(8, f"{cid}/ref/{old[0]}", REFERENCE, {"the": _the(e), "t": _time(float(e.get("first_seen_s") or w.clips[w.first[old[0]]]["start_s"]))}, [e["name"]], "reference"))
    told = [c for c in out if c.kind == "told"]
    if told:  # what the annotator said of a thing is not said again in the graph's words
        said = {n for c in told for n in c.names}
        out = [c for c in out if c.kind == "told" or c.key.split("/")[1] in ("gone", "out") or not set(c.names) <= said or not c.names]
    return sorted(out, key=lambda c: c.priority)


# ---- sentences -------------------------------------------------------------------------------------------
def sentence(parts: list[str], prefix: str = "") -> str:
    """Clauses as one thought. "; " ends a clause for the checks' parser (curation.checks.text):
    what a clause tells stays with the thing it names."""
    body = prefix + "; ".join(parts)
    return body[:1].upper() + body[1:] + "."


def n_words(text: str) -> int:
    return len(text.split())


def fit(clauses: list[Clause], shift: int, seed: str, max_words: int, prefix: str = "") -> tuple[str, list[str]]:
    """The clauses that fit in max_words, by priority (a lower-priority clause is dropped first)."""
    kept: list[tuple[Clause, str]] = []
    for c in clauses:
        text = c.text(shift, seed)
        if n_words(sentence([t for _, t in kept] + [text], prefix)) <= max_words:
            kept.append((c, text))
    if not kept and clauses:
        words = sentence([clauses[0].text(shift, seed)], prefix).rstrip(".").split()[:max_words]
        return " ".join(words).rstrip(",;:") + ".", list(clauses[0].names)
    names = list(dict.fromkeys(n for c, _ in kept for n in c.names))
    return sentence([t for _, t in kept], prefix), names


# ---- the gate's checks on one candidate ----------------------------------------------------------------
@dataclass(frozen=True)
class GateConfig:
    thoughts: ThoughtsConfig = ThoughtsConfig()
    causality: CausalityConfig = CausalityConfig()
    grounding: GroundingConfig = GroundingConfig()


def thought_issues(thoughts: list[dict], i: int, index: GraphIndex | None, captions: dict[str, dict], cfg: GateConfig = GateConfig()) -> list[Issue]:
    """The rule checks' issues (thoughts / causality / grounding) about thought i of `thoughts`
    (the thoughts before it are its memory: repeats are judged against them)."""
    chain = {"chain_id": "compose", "thoughts": thoughts[: i + 1]}
    out = []
    verdicts = [check_thoughts(chain, cfg.thoughts, None, captions), check_causality(chain, index, cfg.causality), check_grounding(chain, index, captions, cfg.grounding)]
    for v in verdicts:
        for issue in json.loads(v["details"]).get("issues") or []:
            if (issue.get("where") or {}).get("thought") == i:
                out.append(Issue(f"{v['check']}:{issue['code']}", issue["message"], issue.get("where") or {}))
        if v["status"] != "ok":
            out.append(Issue(f"{v['check']}:{v['reason']}", v.get("error") or "", {}))
    return out


# ---- a window -------------------------------------------------------------------------------------------
def caption_rows(clips: list[dict]) -> dict[str, dict]:
    return {c["clip_id"]: {"caption": c.get("caption") or "", "entities": c.get("entities") or []} for c in clips}


def window_index(clips: list[dict], graph: dict, captions: dict[str, dict] | None = None) -> GraphIndex | None:
    return build_graph_index(graph, [c["clip_id"] for c in clips], captions if captions is not None else caption_rows(clips))


def _candidates(clauses: list[Clause], seed: str, max_words: int, t: str):
    """Candidate (text, names) in the order tried: each phrasing shift of all clauses, then the
    same with a time prefix, then the first clause alone (the others dropped)."""
    n = max((len(c.bank) for c in clauses), default=1)
    for shift in range(n):
        yield fit(clauses, shift, seed, max_words)
    for shift in range(n):
        prefix = TIME_PREFIX[(_h(seed, "prefix", t) + shift) % len(TIME_PREFIX)].format(t=t)
        yield fit(clauses, shift, seed, max_words, prefix)
    for shift in range(n):
        yield fit(clauses[:1], shift, seed, max_words)


def compose_thoughts(clips: list[dict], graph: dict, seed: str, max_words: int = 30, captions: dict[str, dict] | None = None,
                     index: GraphIndex | None = None) -> list[dict]:  # fmt: skip
    """One thought per clip of a window (clips in time order: clip_id, start_s, end_s, caption).

    Each thought is a `chains.thoughts` item with source "composed". `seed` (the window id)
    picks the wording. `captions` and `index` (caption_rows, window_index) are built when not given."""
    captions = captions if captions is not None else caption_rows(clips)
    index = index if index is not None else window_index(clips, graph, captions)
    w = _window(clips, graph)
    thoughts: list[dict] = []
    for k, clip in enumerate(clips):
        clauses = clip_clauses(w, k)
        base = {"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"], "source": "composed", "fallback": None}
        t = _time(clip["start_s"])
        chosen = first = None
        for text, names in _candidates(clauses, f"{seed}|{clip['clip_id']}", max_words, t):
            thought = {**base, "text": text, "entities": names}
            first = first or thought
            if not thought_issues([*thoughts, thought], k, index, captions):
                chosen = thought
                break
        chosen = chosen or first  # nothing passes: the first candidate, for the gate to report
        if chosen is None:  # a clip without clauses cannot happen (quiet), but never return less
            chosen = {**base, "text": sentence([QUIET[0].format(t=t)]), "entities": []}
        thoughts.append(chosen)
    return thoughts
