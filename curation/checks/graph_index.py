"""What a window shows, and when: its knowledge graph and its clips' captions, indexed once per
window and shared by the causality and grounding checks of all its chains.

Two views of the same facts:
- entities by name (the graph's rows), for the names a thought declares in `entities`;
- objects by head noun ("circl") with their colours, other modifiers, the clip position where
  they are first seen, and the events told about them (appear, disappear, move + direction, and
  the graph's own predicates, "moves_left" -> ("mov", "left")) with the position each is first
  told. Graph entities and caption phrases with the same head and modifiers are one object.
`analyse(text, position)` matches a thought's noun phrases against the objects: unknown heads
(invented things), colours / directions / counts the window contradicts, and things or events
first seen after the thought's clip. Results are cached per (text, position): the chains of a
window share their thoughts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.checks.text import (
    APPEAR,
    BASE_HEADS,
    COLOUR_NAMES,
    COLOURS,
    DIRECTIONS,
    DISAPPEAR,
    GENERIC_HEADS,
    LEXICON,
    MOVE,
    STOPWORDS,
    TYPE_WORDS,
    Mention,
    directions_told,
    event_key,
    events_told,
    generic_counts,
    is_subsequence,
    name_key,
    noun_phrases,
    parse,
    text_grams,
)

_NOT_HEADS = COLOURS | DIRECTIONS | STOPWORDS | GENERIC_HEADS | {MOVE, APPEAR, DISAPPEAR}


@dataclass
class EntityInfo:
    entity_id: str
    display: str  # the name as the graph gives it, for messages
    names: list[tuple[str, ...]]  # name keys (name, aliases, and id when it reads like a name)
    first_order: int  # position of the clip where the graph first places it
    first_clip_id: str | None
    clip_ids: set[str]


@dataclass
class ObjectInfo:
    """One thing of the window, as its head noun and modifiers (from the graph or a caption)."""

    head: str
    colours: frozenset[str]
    mods: frozenset[str]
    display: str
    first: int  # clip position where it is first seen
    category: str | None = None  # person / animal / vehicle / shape / object (lexicon or graph type)
    events: dict[tuple[str, ...], int] = field(default_factory=dict)  # event -> first position told
    clip_mentions: dict[int, int] = field(default_factory=dict)  # position -> mentions in that caption
    stated_count: int = 0  # the largest count a caption states ("two bikes")
    graph_entities: int = 0  # graph entities merged into this object

    def see(self, pos: int) -> None:
        self.first = min(self.first, pos)

    def tell(self, event: tuple[str, ...], pos: int) -> None:
        self.events[event] = min(self.events.get(event, pos), pos)


@dataclass
class ThoughtFacts:
    """What one thought at one clip position says against the window (see `GraphIndex.analyse`)."""

    named: int = 0  # noun phrases naming a thing (not generic words)
    grounded: int = 0  # of those, things the window shows at or before the thought's clip
    unknown: list[str] = field(default_factory=list)  # things the window never shows
    wrong: list[str] = field(default_factory=list)  # colour / direction / count the window contradicts
    future: list[tuple[str, str | None]] = field(default_factory=list)  # (phrase, clip first seen)
    future_events: list[tuple[str, str, str | None]] = field(default_factory=list)  # (phrase, event, clip)


@dataclass
class GraphIndex:
    clip_order: dict[str, int]
    entities: list[EntityInfo] = field(default_factory=list)
    # event = (subject entity_id, predicate key) -> first clip position where the graph has it
    events: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)
    # clip_id -> name keys of entities the graph places in that clip
    clip_entities: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    # name key / entity id -> entities (to find the entities a text names by set intersection)
    by_name: dict[tuple[str, ...], list[EntityInfo]] = field(default_factory=dict)
    by_id: dict[str, EntityInfo] = field(default_factory=dict)
    # objects by (head, colours, mods), and by head
    objects: dict[tuple, ObjectInfo] = field(default_factory=dict)
    by_head: dict[str, list[ObjectInfo]] = field(default_factory=dict)
    heads: frozenset[str] = BASE_HEADS  # grows only when the graph names heads of its own
    modwords: frozenset[str] = frozenset()  # non-colour modifiers of the graph's names ("big")
    graph_first: list[int] = field(default_factory=list)  # first position of every graph entity
    generic_stated: int = 0  # the largest generic count a caption states ("three shapes")
    caption_clips: set[str] = field(default_factory=set)
    has_graph: bool = False
    graph_clip_ids: list[str] = field(default_factory=list)  # the window's clips as the graph lists them
    _facts: dict[tuple[str, int], ThoughtFacts] = field(default_factory=dict)
    _first_seen: dict[str, int | None] = field(default_factory=dict)

    @property
    def clip_ids(self) -> list[str]:
        return sorted(self.clip_order, key=self.clip_order.get)

    def clip_at(self, pos: int) -> str | None:
        ids = self.clip_ids
        return ids[pos] if 0 <= pos < len(ids) else None

    # ---- entities by name (declared names) -----------------------------------------------------
    def entity(self, ref: str) -> EntityInfo | None:
        if ref in self.by_id:
            return self.by_id[ref]
        found = self.by_name.get(name_key(ref))
        return found[0] if found else None

    def named_in(self, text: str, declared: list[str] | None = None) -> list[EntityInfo]:
        """Entities the text names (any of their names as consecutive words), plus the declared ones."""
        found: dict[str, EntityInfo] = {}
        for gram in text_grams(text) & self.by_name.keys():
            for e in self.by_name[gram]:
                found.setdefault(e.entity_id, e)
        for ref in declared or []:
            e = self.entity(ref)
            if e is not None:
                found.setdefault(e.entity_id, e)
        return list(found.values())

    def first_seen(self, name: str) -> int | None:
        """Earliest clip position where the window shows the thing a declared name names (graph
        entity by name, else the objects its phrase matches); None when it shows it nowhere."""
        if name not in self._first_seen:
            self._first_seen[name] = self._first_seen_of(name)
        return self._first_seen[name]

    def _first_seen_of(self, name: str) -> int | None:
        ent = self.entity(name)
        firsts = [ent.first_order] if ent is not None and ent.first_order < len(self.clip_order) + 1 else []
        for m in noun_phrases(parse(name), self.heads, self.modwords):
            cands = self._candidates(m)
            if isinstance(cands, list) and cands:
                firsts.append(min(r.first for r in cands))
        return min(firsts) if firsts else None

    # ---- objects -------------------------------------------------------------------------------
    def _object(self, head: str, colours: frozenset[str], mods: frozenset[str], display: str, pos: int, category: str | None = None) -> ObjectInfo:
        key = (head, colours, mods)
        obj = self.objects.get(key)
        if obj is None:
            obj = self.objects[key] = ObjectInfo(head, colours, mods, display, pos, category or LEXICON.get(head))
            self.by_head.setdefault(head, []).append(obj)
            if head not in self.heads:
                self.heads = self.heads | {head}
        else:
            obj.see(pos)
            if obj.category is None and category:
                obj.category = category
        return obj

    def add_captions(self, captions: dict[str, dict] | None) -> "GraphIndex":
        """Index the captions of the window's clips (once per clip): their noun phrases become
        objects seen at the clip's position, with the events the caption tells about them."""
        for clip_id, row in (captions or {}).items():
            pos = self.clip_order.get(clip_id)
            if pos is None or clip_id in self.caption_clips:
                continue
            self.caption_clips.add(clip_id)
            texts = [row.get("caption") or "", *(row.get("entities") or [])]
            self._facts.clear()  # what a thought can be grounded in changed
            self._first_seen.clear()
            for text in texts:
                parsed = parse(text)
                for m in noun_phrases(parsed, self.heads, self.modwords):
                    obj = self._object(m.head, m.colours, m.mods & self.modwords, m.display, pos)
                    obj.clip_mentions[pos] = obj.clip_mentions.get(pos, 0) + 1
                    if m.count:
                        obj.stated_count = max(obj.stated_count, m.count)
                    for ev in events_told(m.segment):
                        obj.tell(ev, pos)
                for n, _ in generic_counts(parsed):
                    self.generic_stated = max(self.generic_stated, n)
        return self

    def _candidates(self, m: Mention) -> list[ObjectInfo] | str:
        """The window's objects a phrase can name, or a reason string ("unknown" / "colour")."""
        cands = self.by_head.get(m.head)
        if not cands:
            cat = TYPE_WORDS.get(m.head)
            cands = [o for o in self.objects.values() if cat is not None and o.category == cat]
            if not cands:
                return "unknown"
        if m.colours:
            match = [o for o in cands if m.colours <= o.colours]
            if not match:
                plain = [o for o in cands if not o.colours]  # colour never said: cannot contradict
                if not plain:
                    return "colour"
                match = plain
            cands = match
        if m.mods:
            narrowed = [o for o in cands if m.mods <= o.mods]
            cands = narrowed or cands
        return cands

    # ---- thoughts ------------------------------------------------------------------------------
    def analyse(self, text: str, pos: int) -> ThoughtFacts:
        """The thought's noun phrases against the window, for a thought at clip position `pos`."""
        key = (text, pos)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = self._analyse(text, pos)
        return facts

    def _analyse(self, text: str, pos: int) -> ThoughtFacts:
        facts = ThoughtFacts()
        parsed = parse(text)
        for m in noun_phrases(parsed, self.heads, self.modwords):
            facts.named += 1
            cands = self._candidates(m)
            if cands == "unknown":
                facts.unknown.append(m.display)
                continue
            if cands == "colour":
                colours = sorted({" ".join(sorted(COLOUR_NAMES.get(c, c) for c in o.colours)) for o in self.by_head.get(m.head, [])})
                facts.wrong.append(f"{m.display!r}: the window shows that thing only as {', '.join(colours)}")
                continue
            first = min(o.first for o in cands)
            if first > pos:
                facts.future.append((m.display, self.clip_at(first)))
                continue
            facts.grounded += 1
            self._check_told(m, cands, pos, facts)
            if m.count is not None:
                bound = self._count_bound(cands)
                if m.count > bound:
                    facts.wrong.append(f"{m.display!r}: says {m.count}, the window shows at most {bound}")
        seen_now = None
        for n, head in generic_counts(parsed):
            if seen_now is None:
                seen_now = self._generic_bound(pos)
            if n > seen_now:
                facts.wrong.append(f"{n} {head}: the window shows at most {seen_now} things by this clip")
        return facts

    def _check_told(self, m: Mention, cands: list[ObjectInfo], pos: int, facts: ThoughtFacts) -> None:
        """Directions and events the thought tells about a thing, against when the window tells them."""
        seg = m.segment
        if not seg:
            return
        told_dirs = directions_told(seg)
        if told_dirs:
            known: dict[str, int] = {}
            for o in cands:
                for ev, p in o.events.items():
                    if len(ev) == 2 and ev[0] == MOVE and ev[1] in DIRECTIONS:
                        known[ev[1]] = min(known.get(ev[1], p), p)
            for d in sorted(told_dirs):
                if known and d not in known:
                    facts.wrong.append(f"{m.display!r} moves {d}: the window has it move {', '.join(sorted(known))}")
                elif d in known and known[d] > pos:
                    facts.future_events.append((m.display, f"moves {d}", self.clip_at(known[d])))
        earliest: dict[tuple[str, ...], int] = {}
        for o in cands:
            for ev, p in o.events.items():
                if (len(ev) == 2 and ev[0] == MOVE and ev[1] in DIRECTIONS) or ev in ((MOVE,), (APPEAR,)):
                    # directions: above; a bare "moves" says too little to place in time; a thing
                    # seen by now may "appear" (captions say so of every clip it is visible in)
                    continue
                earliest[ev] = min(earliest.get(ev, p), p)
        for ev, p in earliest.items():
            if p > pos and is_subsequence(ev, seg):
                facts.future_events.append((m.display, " ".join(ev), self.clip_at(p)))

    def _count_bound(self, cands: list[ObjectInfo]) -> int:
        """The most of these things the window can show: distinct objects, a count a caption
        states, mentions in one clip's caption, graph entities (lenient on purpose)."""
        per_clip: dict[int, int] = {}
        for o in cands:
            for p, n in o.clip_mentions.items():
                per_clip[p] = per_clip.get(p, 0) + n
        return max(len(cands), max(o.stated_count for o in cands), max(per_clip.values(), default=0), sum(o.graph_entities for o in cands), 1)

    def _generic_bound(self, pos: int) -> int:
        things = [o for o in self.objects.values() if o.first <= pos]
        per_clip: dict[int, int] = {}
        for o in things:
            for p, n in o.clip_mentions.items():
                if p <= pos:
                    per_clip[p] = per_clip.get(p, 0) + n
        graph_now = sum(1 for f in self.graph_first if f <= pos)
        return max(len(things), graph_now, self.generic_stated, max(per_clip.values(), default=0))


def _head_and_mods(key: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """The head noun of a name key (its last word that can be one) and the words before it."""
    for i in range(len(key) - 1, -1, -1):
        if key[i] not in _NOT_HEADS:
            return key[i], tuple(w for w in key[:i] if w not in STOPWORDS)
    return None, ()


def _entity_names(ent: dict) -> list[tuple[str, ...]]:
    raw = [ent.get("name") or "", *(ent.get("aliases") or []), ent.get("entity_id") or ""]
    return [k for k in dict.fromkeys(name_key(r) for r in raw) if k]


def build_graph_index(graph: dict | None, clip_ids: list[str], captions: dict[str, dict] | None = None) -> GraphIndex | None:
    """Index a window: its `graphs` row and/or its captions (clip_id -> captions row). Clip order
    comes from the graph's clip_ids, else `clip_ids` (the window's clips, or the chain's thoughts);
    clips of `clip_ids` the graph does not list come after (the check stage appends the video's
    clips after the window: what they show is the future of every thought). None when there is
    neither a graph nor a caption."""
    if graph is None and not captions:
        return None
    order = {c: i for i, c in enumerate((graph or {}).get("clip_ids") or clip_ids)}
    for c in clip_ids:
        order.setdefault(c, len(order))
    index = GraphIndex(clip_order=order, has_graph=graph is not None, graph_clip_ids=list((graph or {}).get("clip_ids") or []))
    far = len(order) + 1
    entity_objects: dict[str, ObjectInfo] = {}
    # Non-colour modifiers first: caption phrases keep only the modifiers the graph uses.
    mods: set[str] = set()
    entities = (graph or {}).get("entities") or []
    all_names = [_entity_names(ent) for ent in entities]
    for ent, names in zip(entities, all_names):
        for key in names[:-1] if len(names) > 1 else names:  # not the id ("e-red-circle")
            mods.update(w for w in _head_and_mods(key)[1] if w not in COLOURS)
        for attr in ent.get("attributes") or []:
            mods.update(w for w in name_key(attr) if w not in COLOURS and w not in STOPWORDS)
    index.modwords = frozenset(mods) if mods else frozenset()
    for ent, names in zip(entities, all_names):
        seen = [c for c in (ent.get("clip_ids") or []) if c in order]
        first = ent.get("first_clip_id")
        first_order = order.get(first)
        if first_order is None:
            first_order = min((order[c] for c in seen), default=far)
        info = EntityInfo(ent.get("entity_id") or "", ent.get("name") or ent.get("entity_id") or "", names, first_order, first, set(seen) | ({first} if first else set()))
        index.entities.append(info)
        index.by_id[info.entity_id] = info
        index.graph_first.append(first_order)
        for n in names:
            index.by_name.setdefault(n, []).append(info)
        for c in info.clip_ids:
            index.clip_entities.setdefault(c, set()).update(names)
        attrs = [w for a in ent.get("attributes") or [] for w in name_key(a)]
        category = ent.get("type") if ent.get("type") in ("person", "animal", "vehicle") else None
        for n in names[:-1] if len(names) > 1 else names:  # the id is a name only when nothing else is
            head, before = _head_and_mods(n)
            if head is None:
                continue
            colours = frozenset(w for w in (*before, *attrs) if w in COLOURS)
            other = frozenset(w for w in (*before, *attrs) if w in index.modwords)
            obj = index._object(head, colours, other, info.display, first_order, category)
            obj.graph_entities += 1
            if seen:
                obj.see(min(order[c] for c in seen))
            entity_objects.setdefault(info.entity_id, obj)
    for rel in (graph or {}).get("relations") or []:
        subject = rel.get("subject")
        predicate = name_key((rel.get("predicate") or "").replace("_", " "))
        if not predicate or subject not in index.by_id:
            continue
        pos = order.get(rel.get("clip_id"), far)
        key = (subject, predicate)
        index.events[key] = min(index.events.get(key, far), pos)
        obj_ref = rel.get("object")
        if obj_ref in index.by_id:
            continue  # a relation between two things: the predicate alone does not place the event
        obj = entity_objects.get(subject)
        if obj is None:
            continue
        # The predicate as its own event ("explodes"), plus the canonical events it and its literal
        # object tell: "moves_left" / "moves" + "left" = (mov, left); "disappears" + "screen" = disappear.
        ev = event_key(rel.get("predicate") or "")
        if ev:
            obj.tell(ev, pos)
        for canonical in events_told(event_key(rel.get("predicate") or "", obj_ref)):
            obj.tell(canonical, pos)
    index.add_captions(captions)
    return index
