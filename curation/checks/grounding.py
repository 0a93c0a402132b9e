"""grounding: what a thought names is in the window (graph or captions) by the thought's clip,
with the attributes the window gives it.

- A name the thought declares in its `entities` field must be a thing the window shows at or
  before the thought's clip (memory counts: a thing of an EARLIER clip is grounded)
  -> `thought_not_grounded` otherwise.
- A thing the thought names in its TEXT (a noun phrase whose head is an entity noun of the window,
  or of the built-in lexicon: shapes, people, animals, vehicles, objects) that the window shows
  nowhere -> `thought_names_unknown_entity` (an invented "purple hexagon", "a dog").
- A colour, a direction of motion or a count the window contradicts ("green circle" when the
  window's circles are red; "moves right" when it moves left; "two red circles" when there is
  one) -> `thought_wrong_attribute`.
Plurals, irregular plurals and aliases fold to one key (curation.checks.text.canon). A thing
first shown in a later clip is the causality check's `thought_leaks_future`, not reported here.
`min_grounded_ratio` tolerates a share of ungrounded or unknown names; wrong attributes always fail.
"""

from __future__ import annotations

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, not_run, verdict
from curation.checks.causality import thought_position
from curation.checks.graph_index import GraphIndex, build_graph_index


class GroundingConfig(CheckConfig):
    min_grounded_ratio: float = Field(1.0, ge=0, le=1, description="share of named things that must be grounded (declared names + noun phrases)")


def _window_index(chain: dict, index: GraphIndex | None, captions: dict[str, dict] | None) -> GraphIndex | None:
    """The window's index with its captions in (a caption-only index when there is no graph)."""
    if index is None:
        return build_graph_index(None, [t.get("clip_id") for t in chain.get("thoughts") or []], captions)
    if captions and any(c not in index.caption_clips for c in captions):
        index.add_captions(captions)
    return index


def check_grounding(chain: dict, index: GraphIndex | None, captions: dict[str, dict] | None, cfg: GroundingConfig = GroundingConfig()) -> dict:
    """`captions`: clip_id -> captions row (caption, entities). Needs the graph or the captions."""
    chain_id = chain["chain_id"]
    if index is None and not captions:
        return not_run(chain_id, "grounding", "no_grounding_source", "neither a graph nor clip captions to ground the thoughts in")
    index = _window_index(chain, index, captions)
    assert index is not None
    issues: list[Issue] = []
    named_total = grounded_total = 0
    hard = False
    for i, t in enumerate(chain.get("thoughts") or []):
        text = t.get("text") if isinstance(t.get("text"), str) else ""
        clip_id = t.get("clip_id")
        pos = thought_position(t, i, index)
        where = {"thought": i}
        for name in [d for d in (t.get("entities") or []) if d]:
            named_total += 1
            first = index.first_seen(name)
            if first is not None and first <= pos:
                grounded_total += 1
            else:
                issues.append(Issue("thought_not_grounded", f"thought {i} declares {name!r}, absent from the window's captions and graph up to clip {clip_id}", where))
        facts = index.analyse(text, pos)
        named_total += facts.named - len(facts.future)  # a later thing is causality's to report
        grounded_total += facts.grounded
        for phrase in facts.unknown:
            issues.append(Issue("thought_names_unknown_entity", f"thought {i} names {phrase!r}, which no caption of the window and no graph entity shows", where))
        for what in facts.wrong:
            hard = True
            issues.append(Issue("thought_wrong_attribute", f"thought {i}: {what}", where))
    ratio = grounded_total / named_total if named_total else 1.0
    passed = ratio >= cfg.min_grounded_ratio and not hard  # ungrounded names within the tolerated share stay in details
    return verdict(chain_id, "grounding", issues, score=ratio, passed=passed, named=named_total, grounded=grounded_total)
