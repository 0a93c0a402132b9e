"""Where the knowledge graph (and the clip captions) place entities and events in time.

Built once per window and shared by the causality and grounding checks of all its chains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.checks.text import name_key, text_grams


@dataclass
class EntityInfo:
    entity_id: str
    display: str  # the name as the graph gives it, for messages
    names: list[tuple[str, ...]]  # name keys (name, and id when it reads like a name)
    first_order: int  # position of the clip where the graph first places it
    first_clip_id: str | None
    clip_ids: set[str]


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


def build_graph_index(graph: dict | None, clip_ids: list[str]) -> GraphIndex | None:
    """Index a `graphs` row; clip order comes from the chain's thoughts (or the graph's clip_ids)."""
    if graph is None:
        return None
    order = {c: i for i, c in enumerate(graph.get("clip_ids") or clip_ids)}
    for c in clip_ids:
        order.setdefault(c, len(order))
    index = GraphIndex(clip_order=order)
    far = len(order) + 1
    for ent in graph.get("entities") or []:
        names = [k for k in dict.fromkeys([name_key(ent.get("name") or ""), name_key(ent.get("entity_id") or "")]) if k]
        seen = [c for c in (ent.get("clip_ids") or []) if c in order]
        first = ent.get("first_clip_id")
        first_order = order.get(first, min((order[c] for c in seen), default=far))
        info = EntityInfo(ent.get("entity_id") or "", ent.get("name") or ent.get("entity_id") or "", names, first_order, first, set(seen) | ({first} if first else set()))
        index.entities.append(info)
        index.by_id[info.entity_id] = info
        for n in names:
            index.by_name.setdefault(n, []).append(info)
        for c in info.clip_ids:
            index.clip_entities.setdefault(c, set()).update(names)
    by_id = index.by_id
    for rel in graph.get("relations") or []:
        predicate = name_key(rel.get("predicate") or "")
        if not predicate or rel.get("subject") not in by_id:
            continue
        key = (rel["subject"], predicate)
        index.events[key] = min(index.events.get(key, far), order.get(rel.get("clip_id"), far))
    return index
