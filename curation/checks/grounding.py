"""grounding: the entities a thought names are in that clip's description or graph."""

from __future__ import annotations

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, not_run, verdict
from curation.checks.graph_index import GraphIndex
from curation.checks.text import mentions, name_key


class GroundingConfig(CheckConfig):
    min_grounded_ratio: float = Field(1.0, ge=0, le=1, description="share of named entities that must be grounded")


def named_entities(thought: dict, index: GraphIndex | None) -> list[str]:
    """The entities a thought names: those it declares, else graph entities its text mentions."""
    declared = [d for d in (thought.get("entities") or []) if d]
    if declared or index is None:
        return declared
    return [e.display for e in index.named_in(thought.get("text") or "")]


def check_grounding(chain: dict, index: GraphIndex | None, captions: dict[str, dict] | None, cfg: GroundingConfig = GroundingConfig()) -> dict:
    """`captions`: clip_id -> captions row (caption, entities). Needs the graph or the captions."""
    chain_id = chain["chain_id"]
    if index is None and not captions:
        return not_run(chain_id, "grounding", "no_grounding_source", "neither a graph nor clip captions to ground the thoughts in")
    captions = captions or {}
    issues: list[Issue] = []
    named_total = grounded_total = 0
    for i, t in enumerate(chain.get("thoughts") or []):
        clip_id = t.get("clip_id")
        cap = captions.get(clip_id) or {}
        caption_text = " ; ".join([cap.get("caption") or "", *(cap.get("entities") or [])])
        graph_names = index.clip_entities.get(clip_id, set()) if index is not None else set()
        for name in named_entities(t, index):
            named_total += 1
            key = name_key(name)
            ent = index.entity(name) if index is not None else None
            keys = {key, *(ent.names if ent else [])}
            if keys & graph_names or any(mentions(caption_text, k) for k in keys):
                grounded_total += 1
            else:
                issues.append(Issue("thought_not_grounded", f"thought {i} names {name!r}, absent from clip {clip_id}'s description and graph", {"thought": i}))
    ratio = grounded_total / named_total if named_total else 1.0
    passed = ratio >= cfg.min_grounded_ratio  # ungrounded names within the tolerated share stay in details
    return verdict(chain_id, "grounding", issues, score=ratio, passed=passed, named=named_total, grounded=grounded_total)
