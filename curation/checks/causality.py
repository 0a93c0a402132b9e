"""causality: a streaming thought knows only the clips seen so far.

A thought must not name an entity, or an event (subject + predicate), that the knowledge graph
first places in a later clip, and must not give the answer before the question is asked.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.graph_index import GraphIndex
from curation.checks.text import mentions

_CLAUSE = re.compile(r"[.;!?\n]+")


class CausalityConfig(CheckConfig):
    answer_patterns: list[str] = Field(
        default_factory=lambda: [r"\\boxed", r"\bthe (correct |final )?answer is\b", r"\banswer:\s"],
        description="regular expressions (case-insensitive) that reveal an answer inside a thought",
    )


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def thought_position(thought: dict, i: int, index: GraphIndex | None) -> int:
    if index is not None and thought.get("clip_id") in index.clip_order:
        return index.clip_order[thought["clip_id"]]
    return i


def check_causality(chain: dict, index: GraphIndex | None, cfg: CausalityConfig = CausalityConfig()) -> dict:
    chain_id = chain["chain_id"]
    answer_re = _compiled(tuple(cfg.answer_patterns))
    issues: list[Issue] = []
    for i, t in enumerate(chain.get("thoughts") or []):
        text = t.get("text") if isinstance(t.get("text"), str) else ""
        where = {"thought": i}
        hit = answer_re.search(text)
        if hit:
            issues.append(Issue("answer_before_question", f"thought {i} gives an answer ({hit.group(0)!r}) before the question is asked", where))
        if index is None:
            continue
        pos = thought_position(t, i, index)
        named = index.named_in(text, t.get("entities"))
        for ent in named:
            if ent.first_order > pos:
                issues.append(Issue("thought_leaks_future", f"thought {i} names {ent.display!r}, which the graph first places in a later clip ({ent.first_clip_id})", where))
        # An event is named when its subject and its predicate share a clause of the thought.
        by_id = {e.entity_id: e for e in named}
        clauses = _CLAUSE.split(text)
        for (subject, predicate), first in index.events.items():
            ent = by_id.get(subject)
            if ent is None or first <= pos:
                continue
            if any(mentions(c, predicate) and any(mentions(c, n) for n in ent.names) for c in clauses):
                issues.append(Issue("thought_leaks_future_event", f"thought {i} says {ent.display!r} {' '.join(predicate)!r}, an event the graph first places in a later clip", where))
    return verdict(chain_id, "causality", issues, graph=index is not None)
