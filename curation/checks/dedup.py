"""dedup: near-duplicate questions across the corpus (normalised text + MinHash LSH); one is kept.

The kept one is the first by chain id (deterministic whatever the run order); every other member
of a near-duplicate group fails with `question_near_duplicate` and names the kept chain.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.text import normalise


class DedupConfig(CheckConfig):
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of word 1+2-grams above which two questions are duplicates")
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations")
    scope: Literal["corpus", "video"] = Field("corpus", description="compare across the whole corpus, or within one video")
    include_options: bool = Field(True, description="options are part of the compared text (same question, other options = not a duplicate)")


def question_key(chain: dict, include_options: bool) -> str:
    qa = chain.get("qa") or {}
    parts = [qa.get("question") or ""]
    if include_options:
        parts += list(qa.get("options") or [])
    return normalise(" ".join(parts))


def _shingles(text: str) -> list[bytes]:
    """Words and word pairs: a one-word edit in a ten-word question keeps a Jaccard near 0.8."""
    ws = text.split()
    return list({w.encode() for w in ws} | {f"{a} {b}".encode() for a, b in zip(ws, ws[1:])}) or [b""]


def find_duplicates(chains: list[dict], cfg: DedupConfig = DedupConfig()) -> dict[str, str]:
    """chain_id -> chain_id of the kept near-duplicate, for every chain that is not kept."""
    from datasketch import MinHash, MinHashLSH

    ordered = sorted((c for c in chains if c.get("qa")), key=lambda c: c["chain_id"])
    duplicate_of: dict[str, str] = {}
    exact: dict[tuple, str] = {}
    todo: list[tuple[dict, str, str]] = []
    for chain in ordered:
        key = question_key(chain, cfg.include_options)
        scope = chain.get("video_id") if cfg.scope == "video" else ""
        if (scope, key) in exact:  # identical after normalisation: no MinHash needed
            duplicate_of[chain["chain_id"]] = exact[(scope, key)]
        else:
            exact[(scope, key)] = chain["chain_id"]
            todo.append((chain, scope, key))
    # bulk: the permutations are drawn once for all signatures (the slow part of MinHash()).
    signatures = MinHash.bulk([_shingles(key) for _, _, key in todo], num_perm=cfg.num_perm, seed=1)
    lsh: dict[str, MinHashLSH] = {}
    for (chain, scope, _), m in zip(todo, signatures):
        if scope not in lsh:  # building an index is costly (it optimises its bands): once per scope
            lsh[scope] = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
        index = lsh[scope]
        hits = index.query(m)
        if hits:
            duplicate_of[chain["chain_id"]] = min(hits)
        else:
            index.insert(chain["chain_id"], m)
    return duplicate_of


def check_dedup(chain: dict, duplicate_of: dict[str, str]) -> dict:
    kept = duplicate_of.get(chain["chain_id"])
    issues = [Issue("question_near_duplicate", f"question repeats the one of chain {kept}")] if kept else []
    return verdict(chain["chain_id"], "dedup", issues, duplicate_of=kept)
