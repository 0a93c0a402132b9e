"""Rule checks on streaming chains: one small named function per check, each returning a verdict
row (chain x check, with stable reason codes) for the `verdicts` table.

    structure   window and spans stay aligned with VST's 2 fps loader   (structure.py)
    thoughts    non-empty, bounded, not repeated, no boilerplate, language (thoughts.py)
    causality   no thought names what the graph places later; no early answer (causality.py)
    grounding   named entities are in the clip's description or graph   (grounding.py)
    qa          options/answers survive VST's reward parsing; multi-clip evidence (qa.py)
    dedup       near-duplicate questions across the corpus (MinHash)     (dedup.py)

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


def run_checks(
    chain: dict,
    cfg: ChecksConfig = ChecksConfig(),
    graph: dict | GraphIndex | None = None,
    captions: dict[str, dict] | None = None,
    duplicate_of: dict[str, str] | None = None,
) -> list[dict]:
    """Verdict rows of the configured checks for one chain (a `chains` row).

    `graph`: the window's `graphs` row (or its prebuilt GraphIndex); `captions`: clip_id -> row;
    `duplicate_of`: the result of `find_duplicates` over the corpus (dedup is skipped without it).
    """
    index = graph if isinstance(graph, GraphIndex) or graph is None else build_graph_index(graph, [t.get("clip_id") for t in chain.get("thoughts") or []])
    out = []
    for name in cfg.checks:
        if name == "structure":
            out.append(check_structure(chain, cfg.structure))
        elif name == "thoughts":
            out.append(check_thoughts(chain, cfg.thoughts))
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
]
