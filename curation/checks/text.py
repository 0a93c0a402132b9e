"""Small text helpers the checks share: token counts, normalisation, name matching, similarity.

Token counts are approximate (words and punctuation marks, no tokenizer load): checks must run at
thousands of chains per second, and the bounds they enforce are coarse anyway.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_ARTICLES = {"a", "an", "the"}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@lru_cache(maxsize=4096)  # a thought's words serve several checks (shingles, names)
def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def normalise(text: str) -> str:
    """Lower case, compatibility forms folded, punctuation dropped, single spaces."""
    return " ".join(words(unicodedata.normalize("NFKC", text)))


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # Plural and simple verb forms: "circles" ~ "circle"; enough for name matching.
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=8192)
def name_key(name: str) -> tuple[str, ...]:
    """A name as stemmed words without articles: "the red circles" -> ("red", "circle").
    Cached: the chains of one window share their thoughts, and names repeat across the corpus."""
    return tuple(_stem(w) for w in words(name) if w not in _ARTICLES)


MAX_NAME_WORDS = 4


@lru_cache(maxsize=4096)  # small: reuse is within a window, and big caches slow the GC
def text_grams(text: str) -> frozenset[tuple[str, ...]]:
    """Every run of 1..MAX_NAME_WORDS consecutive name-key words of `text` (for `mentions`)."""
    key = name_key(text)
    grams: set[tuple[str, ...]] = set()
    for n in range(1, MAX_NAME_WORDS + 1):
        grams.update(zip(*(key[i:] for i in range(n))))  # zip builds the n-grams in C
    return frozenset(grams)


def mentions(text: str, name: tuple[str, ...]) -> bool:
    """True when the words of `name` (a name_key) occur consecutively in `text`."""
    if not name:
        return False
    if len(name) <= MAX_NAME_WORDS:
        return name in text_grams(text)
    key = name_key(text)
    return any(key[i : i + len(name)] == name for i in range(len(key) - len(name) + 1))


@lru_cache(maxsize=4096)
def shingles(text: str, n: int = 2) -> frozenset[tuple[str, ...]]:
    ws = words(text)
    if len(ws) < n:
        return frozenset({tuple(ws)} if ws else ())
    return frozenset(zip(*(ws[i:] for i in range(n))))


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


# Letters per script, as regular-expression classes, for the language check (no model download).
SCRIPTS = {
    "latin": "A-Za-z\u00c0-\u024f",
    "cjk": "\u4e00-\u9fff\u3400-\u4dbf\u3040-\u30ff\uac00-\ud7af",
    "cyrillic": "\u0400-\u04ff",
    "arabic": "\u0600-\u06ff",
}
LANGUAGE_SCRIPT = {"en": "latin", "fr": "latin", "de": "latin", "es": "latin", "it": "latin", "pt": "latin",
                   "zh": "cjk", "ja": "cjk", "ko": "cjk", "ru": "cyrillic", "ar": "arabic"}
_LETTER = re.compile(r"[^\W\d_]")
_SCRIPT_RE = {name: re.compile(f"[{chars}]") for name, chars in SCRIPTS.items()}


def script_ratio(text: str, script: str) -> float:
    """Share of the letters of `text` written in `script` (1.0 when there are no letters)."""
    if script == "latin" and text.isascii():
        return 1.0  # every ASCII letter is Latin
    letters = len(_LETTER.findall(text))
    if not letters:
        return 1.0
    return len(_SCRIPT_RE[script].findall(text)) / letters
