"""thoughts: each streaming thought is real text of a sane length, new, and in the right language."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.text import LANGUAGE_SCRIPT, count_tokens, jaccard, script_ratio, shingles

# Model chatter and template leftovers that must never reach training data.
BOILERPLATE = [
    r"\bas an ai\b",
    r"\bas a (large )?language model\b",
    r"\bi(?: a|')?m (sorry|unable)\b",
    r"\bi cannot (see|help|assist|view)\b",
    r"\blorem ipsum\b",
    r"\{\{.*?\}\}",  # unrendered Jinja/handlebars
    r"\{[a-z_]+\}",  # unfilled str.format placeholder: {entity}
    r"<(?:placeholder|thought|clip|insert)[^>]*>",
    r"\[(?:insert|placeholder|todo)[^\]]*\]",
    r"\bTODO\b",
    r"\bthought \d+:",  # numbering copied from the prompt
]


class ThoughtsConfig(CheckConfig):
    min_tokens: int = Field(2, ge=1, description="approximate tokens (words + punctuation)")
    max_tokens: int = Field(120, ge=1)
    max_similarity: float = Field(0.8, gt=0, le=1, description="word-bigram Jaccard with an earlier thought above this fails")
    language: str = Field("en", description="expected language (checked by script)")
    min_script_ratio: float = Field(0.8, ge=0, le=1, description="share of letters that must be in the language's script")
    boilerplate: list[str] = Field(default_factory=lambda: list(BOILERPLATE), description="regular expressions (case-insensitive)")

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str) -> str:
        if v not in LANGUAGE_SCRIPT:
            raise ValueError(f"unknown language {v!r}; known: {', '.join(sorted(LANGUAGE_SCRIPT))}")
        return v


_COMPILED: dict[tuple[str, ...], re.Pattern] = {}


def _boilerplate_re(patterns: list[str]) -> re.Pattern:
    key = tuple(patterns)
    if key not in _COMPILED:
        _COMPILED[key] = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    return _COMPILED[key]


def check_thoughts(chain: dict, cfg: ThoughtsConfig = ThoughtsConfig()) -> dict:
    chain_id = chain["chain_id"]
    thoughts = chain.get("thoughts") or []
    boiler = _boilerplate_re(cfg.boilerplate)
    script = LANGUAGE_SCRIPT[cfg.language]
    issues: list[Issue] = []
    seen: list[set] = []
    bad: set[int] = set()
    for i, t in enumerate(thoughts):
        text = t.get("text")
        where = {"thought": i}
        before = len(issues)
        if not isinstance(text, str):
            issues.append(Issue("thought_not_text", f"thought {i}: text is {type(text).__name__}, not a string", where))
            bad.add(i)
            continue
        if not text.strip():
            issues.append(Issue("thought_empty", f"thought {i} is empty", where))
            bad.add(i)
            continue
        n = count_tokens(text)
        if n < cfg.min_tokens:
            issues.append(Issue("thought_too_short", f"thought {i}: {n} tokens < {cfg.min_tokens}", where))
        elif n > cfg.max_tokens:
            issues.append(Issue("thought_too_long", f"thought {i}: {n} tokens > {cfg.max_tokens}", where))
        match = boiler.search(text)
        if match:
            issues.append(Issue("thought_boilerplate", f"thought {i}: boilerplate or template leftover {match.group(0)!r}", where))
        ratio = script_ratio(text, script)
        if ratio < cfg.min_script_ratio:
            issues.append(Issue("thought_wrong_language", f"thought {i}: only {ratio:.0%} of its letters are {script} ({cfg.language} expected)", where))
        sh = shingles(text)
        for j, earlier in enumerate(seen):
            sim = jaccard(sh, earlier)
            if sim > cfg.max_similarity:
                issues.append(Issue("thought_near_duplicate", f"thought {i} repeats thought {j} (similarity {sim:.2f})", where | {"of": j}))
                break
        seen.append(sh)
        if len(issues) > before:
            bad.add(i)
    score = (len(thoughts) - len(bad)) / len(thoughts) if thoughts else 0.0
    if not thoughts:
        issues.append(Issue("no_thoughts", "the chain has no thoughts"))
    return verdict(chain_id, "thoughts", issues, score=score)
