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

import hashlib
from typing import Literal

import numpy as np
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
    index = DedupIndex(cfg)
    index.add(chains)
    return index.duplicates()


class DedupIndex:
    """Near-duplicate questions over any number of chains, added batch by batch, with compact
    state: per chain its id, a 128-bit hash of its exact (scope, text) key and one 64-bit hash per
    LSH band of its MinHash (about 120 bytes a chain: a million chains cost ~120 MB, never their
    text). `duplicates()` then resolves them as MinHash LSH would, in chain-id order: a chain whose
    exact key an earlier chain has repeats that one; else it repeats the smallest kept chain it
    shares a band with (same scope), else it is kept. Only chains that share a band value with
    another one need that ordered pass, so it runs over those alone."""

    def __init__(self, cfg: DedupConfig = DedupConfig()):
        from datasketch.lsh import _optimal_param

        self.cfg = cfg
        self.bands, self.rows = _optimal_param(cfg.threshold, cfg.num_perm, 0.5, 0.5)  # MinHashLSH's own (b, r)
        self.ids: list[np.ndarray] = []  # fixed-width bytes
        self.exact: list[np.ndarray] = []  # 16-byte (scope, key) digests
        self.band_keys: list[np.ndarray] = []  # (n, bands) uint64: (scope, band index, band values) hashed

    def add(self, chains: list[dict]) -> None:
        """Signatures of the chains that have a question (the others are never duplicates)."""
        from datasketch import MinHash

        chains = [c for c in chains if c.get("qa")]
        if not chains:
            return
        keys = [question_key(c, self.cfg.include_options) for c in chains]
        scopes = [self._scope(c) for c in chains]
        texts = list(dict.fromkeys(keys))  # an exact repeat has the same MinHash: computed once
        # bulk: the permutations are drawn once for all signatures (the slow part of MinHash()).
        signatures = dict(zip(texts, MinHash.bulk([_shingles(t) for t in texts], num_perm=self.cfg.num_perm, seed=1)))
        self.ids.append(np.array([c["chain_id"].encode() for c in chains], dtype=bytes))
        self.exact.append(np.array([_digest(f"{len(s)}:{s}{k}", 16) for s, k in zip(scopes, keys)], dtype="S16"))
        scope_hashes = np.array([int.from_bytes(_digest(s, 8), "little") for s in scopes], dtype=np.uint64)
        self.band_keys.append(self._band_keys(scope_hashes, np.stack([signatures[k].hashvalues for k in keys])))

    def _scope(self, chain: dict) -> str:
        # video and answer partition the corpus exactly: a near-equal question with another
        # answer (or about another video) is never a duplicate, however close its words are
        video = (chain.get("video_id") or "") if self.cfg.scope == "video" else ""
        return video + "\x00" + (answer_key(chain) if self.cfg.include_answer else "")

    def _band_keys(self, scopes: np.ndarray, hashvalues: np.ndarray) -> np.ndarray:
        """(n, bands): each band's r MinHash values, its index and the chain's scope mixed into
        64 bits (MinHashLSH compares the values themselves: two different bands collide with a
        probability of 2^-64)."""
        out = np.empty((len(scopes), self.bands), np.uint64)
        with np.errstate(over="ignore"):
            for band in range(self.bands):
                key = _mix(scopes ^ np.uint64(band + 1))
                for value in hashvalues[:, band * self.rows : (band + 1) * self.rows].T:
                    key = _mix(key ^ value.astype(np.uint64))
                out[:, band] = key
        return out

    def duplicates(self) -> dict[str, str]:
        if not self.ids:
            return {}
        ids, exact, bands = np.concatenate(self.ids), np.concatenate(self.exact), np.concatenate(self.band_keys)
        order = np.argsort(ids, kind="stable")
        ids, exact, bands = ids[order], exact[order], bands[order]
        duplicate_of: dict[int, int] = {}
        first = _first_of_equal(exact)  # index of the first chain (in id order) with the same exact key
        todo = np.flatnonzero(first == np.arange(len(ids)))
        for i in np.flatnonzero(first != np.arange(len(ids))):
            duplicate_of[int(i)] = int(first[i])
        # The LSH pass, over the kept-so-far chains that share a band key with another one.
        shared = _shared_rows(bands[todo])
        owner: dict[int, int] = {}  # band key -> the first (smallest id) kept chain that has it
        for i in todo[shared]:
            keys = bands[i].tolist()
            hits = [owner[k] for k in keys if k in owner]
            if hits:
                duplicate_of[int(i)] = min(hits)
            else:
                for k in keys:
                    owner.setdefault(k, int(i))
        return {ids[i].decode(): ids[j].decode() for i, j in duplicate_of.items()}


def _digest(text: str, size: int) -> bytes:
    return _digest_bytes(text.encode(), size)


def _digest_bytes(data: bytes, size: int) -> bytes:
    return hashlib.blake2b(data, digest_size=size).digest()


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves every output bit (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _first_of_equal(values: np.ndarray) -> np.ndarray:
    """For every position, the first position holding the same value."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group_first = order[np.flatnonzero(starts)]
    first = np.empty(len(values), np.int64)
    first[order] = np.repeat(group_first, np.diff(np.r_[np.flatnonzero(starts), len(values)]))
    return first


def _shared_rows(bands: np.ndarray) -> np.ndarray:
    """Rows with at least one band key that another row has too."""
    if not len(bands):
        return np.zeros(0, bool)
    flat = bands.ravel()
    values, counts = np.unique(flat, return_counts=True)
    repeated = np.isin(flat, values[counts > 1]).reshape(bands.shape)
    return repeated.any(axis=1)


def check_dedup(chain: dict, duplicate_of: dict[str, str]) -> dict:
    kept = duplicate_of.get(chain["chain_id"])
    issues = [Issue("question_near_duplicate", f"question repeats the one of chain {kept}")] if kept else []
    return verdict(chain["chain_id"], "dedup", issues, duplicate_of=kept)
