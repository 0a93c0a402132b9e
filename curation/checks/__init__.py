"""Rule checks on streaming chains: one small named function per check, each returning a verdict
row (chain x check, with stable reason codes) for the `verdicts` table.

    structure   window and spans stay aligned with VST's 2 fps loader   (structure.py)
    thoughts    non-empty, bounded, not repeated (reworded either), no boilerplate or prompt
                echo, language; one thought per clip of the window, in order (thoughts.py)
    causality   no thought names a thing or an event the window shows later, no time word that
                gives the future away, no early answer                   (causality.py)
    grounding   what a thought names (declared or in its text) is in the window's captions or
                graph by its clip, with the colour/direction/count they give (grounding.py)
    qa          options/answers survive VST's reward parsing; options not near-identical; the
                question does not leak its answer; multi-clip evidence   (qa.py)
    dedup       near-duplicate question+options+answer within a video (MinHash) (dedup.py)

The thoughts are read as text (curation.checks.text): noun phrases, plurals and aliases, events
with multi-word predicates, matched against the window's graph AND captions (graph_index.py).
`run_checks` runs the selected ones on one chain; `find_duplicates` needs the whole corpus first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.checks.base import CHECKER_VERSION, CheckConfig, Issue, not_run, verdict
from curation.checks.causality import CausalityConfig, check_causality
from curation.checks.dedup import DedupConfig, check_dedup, find_duplicates
from curation.checks.graph_index import GraphIndex, build_graph_index
from curation.checks.grounding import GroundingConfig, check_grounding
from curation.checks.qa import QAConfig, check_qa
from curation.checks.structure import StructureConfig, check_structure
from curation.checks.thoughts import ThoughtsConfig, check_thoughts

CheckName = Literal["structure", "thoughts", "causality", "grounding", "qa", "dedup"]
ALL_CHECKS: tuple[str, ...] = ("structure", "thoughts", "causality", "grounding", "qa", "dedup")


class ChecksConfig(CheckConfig):
    """Which checks run, and the thresholds of each (the recipe's `check` stage holds these)."""

    checks: list[CheckName] = Field(default_factory=lambda: list(ALL_CHECKS))
    structure: StructureConfig = StructureConfig()
    thoughts: ThoughtsConfig = ThoughtsConfig()
    causality: CausalityConfig = CausalityConfig()
    grounding: GroundingConfig = GroundingConfig()
    qa: QAConfig = QAConfig()
    dedup: DedupConfig = DedupConfig()


def window_clip_ids(chain: dict, graph: dict | GraphIndex | None, clip_ids: list[str] | None) -> list[str] | None:
    """The window's clips in order: given (clips table), else the graph's, else unknown (None)."""
    if clip_ids:
        return list(clip_ids)
    if isinstance(graph, GraphIndex):
        return list(graph.graph_clip_ids) or None
    if isinstance(graph, dict) and graph.get("clip_ids"):
        return list(graph["clip_ids"])
    return None


def run_checks(
    chain: dict,
    cfg: ChecksConfig = ChecksConfig(),
    graph: dict | GraphIndex | None = None,
    captions: dict[str, dict] | None = None,
    duplicate_of: dict[str, str] | None = None,
    clip_ids: list[str] | None = None,
) -> list[dict]:
    """Verdict rows of the configured checks for one chain (a `chains` row).

    `graph`: the window's `graphs` row (or its prebuilt GraphIndex); `captions`: clip_id -> row
    (the window's clips); `duplicate_of`: the result of `find_duplicates` over the corpus (dedup
    is skipped without it); `clip_ids`: the window's clips in order (default: the graph's), for
    the one-thought-per-clip coverage and the order of memory.
    """
    window = window_clip_ids(chain, graph, clip_ids)
    order = window or [t.get("clip_id") for t in chain.get("thoughts") or []]
    if isinstance(graph, GraphIndex):
        index: GraphIndex | None = graph
        if captions and any(c not in index.caption_clips for c in captions):
            index.add_captions(captions)
    else:
        index = build_graph_index(graph, order, captions)
    out = []
    for name in cfg.checks:
        if name == "structure":
            out.append(check_structure(chain, cfg.structure))
        elif name == "thoughts":
            out.append(check_thoughts(chain, cfg.thoughts, window, captions))
        elif name == "causality":
            out.append(check_causality(chain, index, cfg.causality))
        elif name == "grounding":
            out.append(check_grounding(chain, index, captions, cfg.grounding))
        elif name == "qa":
            out.append(check_qa(chain, cfg.qa))
        elif name == "dedup" and duplicate_of is not None:
            out.append(check_dedup(chain, duplicate_of))
    return out


__all__ = [
    "ALL_CHECKS",
    "CHECKER_VERSION",
    "ChecksConfig",
    "GraphIndex",
    "Issue",
    "build_graph_index",
    "check_causality",
    "check_dedup",
    "check_grounding",
    "check_qa",
    "check_structure",
    "check_thoughts",
    "find_duplicates",
    "not_run",
    "run_checks",
    "verdict",
    "window_clip_ids",
]
