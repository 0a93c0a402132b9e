"""dedup: near-duplicate questions (normalised text + MinHash LSH); one of each group is kept.

The key is the question, its options AND its answer, within one video (PLAN I4): the template
count question has the same words in every video, and each of those is a different item; the
same question with the same options and answer about the same video is a duplicate (a near one
too: MinHash over word 1+2-grams). `scope: corpus` drops the video from the key (text-only dedup
across videos, for corpora where the same question about two videos is unwanted).

The kept one is the first by chain id (deterministic whatever the run order); every other member
of a near-duplicate group fails with `question_near_duplicate` and names the kept chain.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.text import normalise
from curation.formats.question import ground_truth


class DedupConfig(CheckConfig):
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of word 1+2-grams above which two questions are duplicates")
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations")
    scope: Literal["video", "corpus"] = Field("video", description="compare within one video (the key holds the video), or across the whole corpus")
    include_options: bool = Field(True, description="options are part of the compared text (same question, other options = not a duplicate)")
    include_answer: bool = Field(True, description="the answer is part of the key (same question, other answer = not a duplicate)")


def question_key(chain: dict, include_options: bool) -> str:
    """The compared text: question [+ options]."""
    qa = chain.get("qa") or {}
    parts = [qa.get("question") or ""]
    if include_options:
        parts += list(qa.get("options") or [])
    return normalise(" ".join(parts))


def answer_key(chain: dict) -> str:
    """The answer as its ground truth ("B", "3", "Yes"), else as written."""
    qa = chain.get("qa") or {}
    truth = ground_truth(qa) if qa.get("type") else None
    return truth if truth is not None else normalise(str(qa.get("answer") or ""))


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
        # video and answer partition the corpus exactly: a near-equal question with another
        # answer (or about another video) is never a duplicate, however close its words are
        scope = ((chain.get("video_id") or "") if cfg.scope == "video" else "") + "\x00" + (answer_key(chain) if cfg.include_answer else "")
        if (scope, key) in exact:  # identical after normalisation: no MinHash needed
            duplicate_of[chain["chain_id"]] = exact[(scope, key)]
        else:
            exact[(scope, key)] = chain["chain_id"]
            todo.append((chain, scope, key))
    # bulk: the permutations are drawn once for all signatures (the slow part of MinHash()).
    signatures = MinHash.bulk([_shingles(key) for _, _, key in todo], num_perm=cfg.num_perm, seed=1)
    lsh: dict[str, MinHashLSH] = {}
    params = None
    for (chain, scope, _), m in zip(todo, signatures):
        if scope not in lsh:  # optimising the bands is costly: once, then reused for every scope
            lsh[scope] = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, params=params)
            params = (lsh[scope].b, lsh[scope].r)
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
