"""thoughts: each streaming thought is real text of a sane length, new, in the right language, not
an echo of the prompt, and the thoughts cover the window's clips one per clip, in order.

- empty / punctuation-only / "Nothing." -> `thought_empty`; fewer than `min_words` words ->
  `thought_too_short`; more than `max_tokens` -> `thought_too_long`;
- model chatter and template leftovers -> `thought_boilerplate` (`\\boxed{B}` is not a
  placeholder: it is the causality check's early answer);
- the think prompt copied back ("New in this clip: ...", "Current clip:", "Memory of the earlier
  clips", "Write one short sentence") -> `thought_prompt_echo`;
- wrong script, or (Latin scripts) another language's function words -> `thought_wrong_language`;
- a repeat of an earlier thought -> `thought_near_duplicate`: word pairs (a near copy) or facts,
  (thing, word) pairs after folding forms and aliases (a rewording: "Once more, the red circle
  is moving left." repeats "A red circle appears and moves left."): facts Jaccard at or above
  `max_content_similarity`, or "again"/"once more"/"as before" about only the things an earlier
  thought named. An unmarked continuation ("The red circle keeps moving left.", "... is still in
  view, heading left") is what a thought says of a thing on screen for several clips: only a
  near copy of its words fails; "... is still there." says too little to compare; a
  disappearance the thought's own clip
  description tells is news (another red triangle), not a repeat; "Nothing is moving." twice is
  two empty clips;
- coverage, when the window's clips are known: a clip without a thought ->
  `thought_missing_for_clip`; a second thought for a clip, or one for a clip outside the window
  -> `thought_extra`; thoughts not in the clips' order -> `thoughts_out_of_order`.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.text import (
    DISAPPEAR,
    LANGUAGE_SCRIPT,
    LEXICON,
    TYPE_WORDS,
    Prefilter,
    compile_patterns,
    count_tokens,
    count_words,
    facts,
    jaccard,
    latin_language,
    normalise,
    parse,
    script_ratio,
    shingles,
)

# Model chatter and template leftovers that must never reach training data.
BOILERPLATE = [
    r"\bas an ai\b",
    r"\bas a (large )?language model\b",
    r"\bi(?: a|')?m (sorry|unable)\b",
    r"\bi cannot (see|help|assist|view)\b",
    r"\blorem ipsum\b",
    r"\{\{.*?\}\}",  # unrendered Jinja/handlebars
    r"(?<!\\boxed)(?-i:\{[a-z][a-z_]*\})",  # unfilled str.format placeholder: {entity} (not \boxed{B})
    r"(?-i:\$[a-z][a-z_]{2,}\b)",  # unfilled string.Template placeholder: $caption
    r"<(?:placeholder|thought|clip|insert)[^>]*>",
    r"\[(?:insert|placeholder|todo)[^\]]*\]",
    r"\bTODO\b",
    r"\bthought \d+:",  # numbering copied from the prompt
]
# The think prompt (curation/prompts/think.v*.md) copied into a thought.
PROMPT_ECHO = [
    r"\bnew in this clip\s*:",
    r"\bcurrent clip\s*:",
    r"\bmemory of (?:the )?earlier clips\b",
    r"\bwrite one short sentence\b",
    r"\bmention nothing outside\b",
    r"\bat most \d+ words\b",
    r"\btime=\d",
    r"\(nothing yet\)",
    r"\byou watch a video clip by clip\b",
    r"\bkeep a short memory\b",
    r"\bwhat is new in the current clip\b",
    r"^\s*(?:thought|description|caption|memory|answer|output)\s*:",
]
# What every match of the default lists contains (a cheap prefilter; see text.Prefilter).
BOILERPLATE_PREFILTER = Prefilter(frozenset("ai language sorry unable cannot lorem todo thought placeholder insert".split()), "{$<[")
PROMPT_ECHO_PREFILTER = Prefilter(frozenset("new current earlier write mention most time yet watch memory".split()), ":")
# Whole thoughts that say nothing (after normalisation).
NULL_THOUGHTS = frozenset(
    ["nothing", "none", "n a", "na", "null", "empty", "nothing new", "no change", "no changes", "nothing happens",
     "nothing to report", "same", "same as before", "no thought", "skip", "idk", "unknown", "no"]
)  # fmt: skip


class ThoughtsConfig(CheckConfig):
    min_tokens: int = Field(2, ge=1, description="approximate tokens (words + punctuation)")
    min_words: int = Field(2, ge=1, description="words (a CJK character counts as one); 'Nothing.' has one")
    max_tokens: int = Field(120, ge=1)
    max_similarity: float = Field(0.8, gt=0, le=1, description="word-bigram Jaccard with an earlier thought above this fails (near copy)")
    max_content_similarity: float = Field(0.8, gt=0, le=1, description="Jaccard of (thing, word) facts (forms and aliases folded) at or above this is a reworded repeat; 1.0 turns it off")
    min_content_words: int = Field(3, ge=1, description="thoughts with fewer facts are not compared by content")
    language: str = Field("en", description="expected language (checked by script, and by function words for Latin scripts)")
    min_script_ratio: float = Field(0.8, ge=0, le=1, description="share of letters that must be in the language's script")
    # tuples: the config is hashable, so per-text results can be cached under it
    boilerplate: tuple[str, ...] = Field(default_factory=lambda: tuple(BOILERPLATE), description="regular expressions (case-insensitive)")
    prompt_echo: tuple[str, ...] = Field(default_factory=lambda: tuple(PROMPT_ECHO), description="regular expressions (case-insensitive) of the think prompt's own words")

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str) -> str:
        if v not in LANGUAGE_SCRIPT:
            raise ValueError(f"unknown language {v!r}; known: {', '.join(sorted(LANGUAGE_SCRIPT))}")
        return v


def _repeat_of(text: str, earlier: list[tuple[int, str]], cfg: ThoughtsConfig, told_again: frozenset[str]) -> tuple[int, float, str] | None:
    """(j, similarity, how) of the earlier thought this one repeats, or None.

    `told_again`: the point events (disappearances) the thought's own clip description tells:
    restating one of those is news (another red triangle disappears), not a repeat."""
    if not earlier:
        return None
    sh = shingles(text)
    mine = parse(text)
    if told_again and facts(mine) & told_again:
        return None
    if _EMPTY_SCENE.search(text):
        own = facts(mine)
        if not any(":" in f for f in own) and not any(f in _FACT_THINGS for f in own):
            return None  # "Nothing is moving on the screen." twice: two empty clips, not a repeat
    for j, other in earlier:
        sim = jaccard(sh, shingles(other))
        if sim > cfg.max_similarity:
            return j, sim, "word pairs"
    if cfg.max_content_similarity >= 1.0:
        return None
    # Facts cost a parse of the phrases: only when the content words come close (or a marker asks).
    if not (mine.repeat_marker or (not mine.continuation and any(jaccard(mine.content, parse(other).content) >= 0.6 for _, other in earlier))):
        return None
    own = facts(mine)
    if len(own) < cfg.min_content_words and not mine.repeat_marker:
        return None  # "The red circle is still there.": too little said to be a repeat
    if any(f.endswith(":another") for f in own):
        return None  # "another red circle appears": a second thing of a known name is news
    things = {f for f in own if ":" not in f}
    similar = []
    for j, other in earlier:
        theirs = facts(parse(other))
        if any(f"{thing}:another" in theirs for thing in things):
            similar.clear()  # "another white circle": what was said of the first one is not repeated
        sim = jaccard(own, theirs)
        # "again" / "once more" about only the things an earlier thought named: said before
        marked = mine.repeat_marker and things and things <= {f for f in theirs if ":" not in f}
        if marked or (sim >= cfg.max_content_similarity and not mine.continuation):
            similar.append((j, sim))
    # A marked restatement ("once more", "again", "as before") repeats; an unmarked continuation
    # ("keeps moving left", "is still in view, heading left") is what a streaming thought says
    # of a thing that stays on screen for several clips: only a near copy of its words repeats.
    if similar:
        j, sim = similar[-1]
        return j, sim, "content"
    return None


_EMPTY_SCENE_RE = (r"\b(?:nothing|no (?:object|shape|thing)s?|empty|nobody|no one)\b",)
_EMPTY_SCENE = compile_patterns(_EMPTY_SCENE_RE, _EMPTY_SCENE_RE, Prefilter(frozenset("nothing no empty nobody".split())))
_FACT_THINGS = frozenset(LEXICON) | frozenset(TYPE_WORDS)


def _point_events(caption_row: dict | None) -> frozenset[str]:
    return _disappearances(caption_row.get("caption") or "") if caption_row else _NONE


_NONE: frozenset[str] = frozenset()


@lru_cache(maxsize=4096)
def _disappearances(caption: str) -> frozenset[str]:
    return frozenset(f for f in facts(parse(caption)) if f.endswith(":" + DISAPPEAR))


def _coverage(thoughts: list[dict], window_clips: list[str], issues: list[Issue]) -> set[int]:
    """One thought per clip of the window, in the clips' order; the bad thoughts' indices."""
    order = {c: k for k, c in enumerate(window_clips)}
    bad: set[int] = set()
    seen: dict[str, int] = {}
    last = -1
    for i, t in enumerate(thoughts):
        clip = t.get("clip_id")
        where = {"thought": i}
        if clip not in order:
            issues.append(Issue("thought_extra", f"thought {i} is for clip {clip!r}, not a clip of this window", where))
            bad.add(i)
        elif clip in seen:
            issues.append(Issue("thought_extra", f"thought {i} is a second thought for clip {clip} (thought {seen[clip]} is the first)", where | {"of": seen[clip]}))
            bad.add(i)
        else:
            seen[clip] = i
            if order[clip] < last:
                issues.append(Issue("thoughts_out_of_order", f"thought {i} (clip {clip}) comes after a thought for a later clip", where))
                bad.add(i)
            last = max(last, order[clip])
    for clip in window_clips:
        if clip not in seen:
            issues.append(Issue("thought_missing_for_clip", f"clip {clip} of the window has no thought", {"clip": clip}))
    return bad


@lru_cache(maxsize=8192)  # the chains of a window share their thoughts: once per text
def _text_issues(text: str, cfg: ThoughtsConfig) -> tuple[tuple[str, str], ...]:
    """(code, message with {i} for the thought's index) of one thought's own text."""
    out: list[tuple[str, str]] = []
    norm = normalise(text)
    if not norm or norm in NULL_THOUGHTS:
        return (("thought_empty", f"thought {{i}} says nothing ({text.strip()[:40]!r})"),)
    n, nw = count_tokens(text), count_words(text)
    if n < cfg.min_tokens or nw < cfg.min_words:
        out.append(("thought_too_short", f"thought {{i}}: {nw} word(s), {n} tokens (at least {cfg.min_words} words, {cfg.min_tokens} tokens)"))
    elif n > cfg.max_tokens:
        out.append(("thought_too_long", f"thought {{i}}: {n} tokens > {cfg.max_tokens}"))
    match = compile_patterns(tuple(cfg.boilerplate), tuple(BOILERPLATE), BOILERPLATE_PREFILTER).search(text)
    if match:
        out.append(("thought_boilerplate", f"thought {{i}}: boilerplate or template leftover {_braces(match.group(0))!r}"))
    match = compile_patterns(tuple(cfg.prompt_echo), tuple(PROMPT_ECHO), PROMPT_ECHO_PREFILTER).search(text)
    if match:
        out.append(("thought_prompt_echo", f"thought {{i}} copies the prompt ({_braces(match.group(0))!r})"))
    script = LANGUAGE_SCRIPT[cfg.language]
    ratio = script_ratio(text, script)
    if ratio < cfg.min_script_ratio:
        out.append(("thought_wrong_language", f"thought {{i}}: only {ratio:.0%} of its letters are {script} ({cfg.language} expected)"))
    elif script == "latin" and cfg.language in ("en", "fr", "de", "es", "it", "pt"):
        lang = latin_language(text, cfg.language)
        if lang is not None and lang != cfg.language:
            out.append(("thought_wrong_language", f"thought {{i}} reads as {lang} ({cfg.language} expected)"))
    return tuple(out)


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")  # a matched "{entity}" inside a message template


@lru_cache(maxsize=4096)
def _repeats(texts: tuple[str | None, ...], told: tuple[frozenset[str], ...], cfg: ThoughtsConfig) -> tuple[tuple[int, int, float, str], ...]:
    """(i, j, similarity, how) for every thought i that repeats an earlier thought j."""
    out = []
    earlier: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            continue
        norm = normalise(text)
        if not norm or norm in NULL_THOUGHTS:
            continue
        rep = _repeat_of(text, earlier, cfg, told[i])
        if rep is not None:
            out.append((i, *rep))
        earlier.append((i, text))
    return tuple(out)


def check_thoughts(chain: dict, cfg: ThoughtsConfig = ThoughtsConfig(), window_clips: list[str] | None = None, captions: dict[str, dict] | None = None) -> dict:
    """`window_clips`: the window's clip ids in order (coverage is checked only when given);
    `captions`: clip_id -> captions row (a disappearance its own clip tells is not a repeat)."""
    chain_id = chain["chain_id"]
    thoughts = chain.get("thoughts") or []
    issues: list[Issue] = []
    bad: set[int] = set()
    texts = tuple(t.get("text") for t in thoughts)
    told = tuple(_point_events((captions or {}).get(t.get("clip_id"))) for t in thoughts)
    repeats = {i: (j, sim, how) for i, j, sim, how in _repeats(texts, told, cfg)}
    for i, text in enumerate(texts):
        where = {"thought": i}
        if not isinstance(text, str):
            issues.append(Issue("thought_not_text", f"thought {i}: text is {type(text).__name__}, not a string", where))
            bad.add(i)
            continue
        own = _text_issues(text, cfg)
        issues += [Issue(code, message.format(i=i), where) for code, message in own]
        if i in repeats:
            j, sim, how = repeats[i]
            issues.append(Issue("thought_near_duplicate", f"thought {i} repeats thought {j} ({how}, similarity {sim:.2f})", where | {"of": j}))
        if own or i in repeats:
            bad.add(i)
    if window_clips:
        bad |= _coverage(thoughts, window_clips, issues)
    score = (len(thoughts) - len(bad)) / len(thoughts) if thoughts else 0.0
    if not thoughts:
        issues.append(Issue("no_thoughts", "the chain has no thoughts"))
    return verdict(chain_id, "thoughts", issues, score=score)
