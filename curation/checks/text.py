"""Small text helpers the checks share: token counts, normalisation, word forms, name matching,
a thought's parse (sentences, noun phrases, events), similarity and script/language guesses.

Everything is rules and small tables, no model download: checks must run at thousands of chains
per second, and what they compare (the thoughts of a window with its graph and captions) is
short, concrete text. Token counts are approximate (words and punctuation marks).

Word forms: `canon` folds a word to one key shared by its plural, irregular plural, verb forms
and a small alias table ("people" -> "person", "moved" -> "mov", "automobile" -> "car",
"slides" -> "mov"); every comparison (names, events, repeats) goes through it, so both sides of
a comparison always fold the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # "_" splits: graph predicates are stored as moves_left
_ARTICLES = {"a", "an", "the"}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


_CJK = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf\u3040-\u30ff\uac00-\ud7af]")


def count_words(text: str) -> int:
    """Words of a thought; a CJK character counts as one word (those scripts write no spaces)."""
    if text.isascii():
        return len(words(text))
    n = 0
    for w in _WORD.findall(text):
        cjk = len(_CJK.findall(w))
        n += cjk + (1 if len(w) > cjk else 0) if cjk else 1
    return n


@lru_cache(maxsize=4096)  # a thought's words serve several checks (shingles, names)
def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


@lru_cache(maxsize=8192)
def normalise(text: str) -> str:
    """Lower case, compatibility forms folded, punctuation dropped, single spaces."""
    return " ".join(words(unicodedata.normalize("NFKC", text)))


# ---- word forms ------------------------------------------------------------------------------
IRREGULAR = {
    "people": "person", "persons": "person", "children": "child", "men": "man", "women": "woman",
    "mice": "mouse", "geese": "goose", "feet": "foot", "teeth": "tooth", "knives": "knife",
    "wolves": "wolf", "oxen": "ox", "lice": "louse", "dice": "die", "sheep": "sheep", "fish": "fish",
    "went": "go", "going": "go", "goes": "go", "gone": "gone", "ran": "run", "flew": "fly", "kept": "keep",
    "saw": "see", "seen": "see", "came": "come", "rode": "ride", "drove": "drive", "shown": "show",
    "is": "is", "was": "was", "has": "has", "this": "this", "its": "its", "his": "his", "us": "us",
    "yes": "yes", "bus": "bus", "gas": "gas", "news": "news", "lens": "lens", "always": "always",
}  # fmt: skip

# word -> canonical word (both folded by `_fold` at import); chains are followed (kid -> child -> person).
ALIASES = {
    "kid": "child", "child": "person", "man": "person", "woman": "person", "boy": "person", "girl": "person",
    "guy": "person", "lady": "person", "gentleman": "person", "human": "person", "individual": "person",
    "baby": "person", "adult": "person",
    "automobile": "car", "auto": "car", "bicycle": "bike", "cycle": "bike", "motorbike": "motorcycle",
    "puppy": "dog", "kitten": "cat", "disc": "circle", "disk": "circle", "aeroplane": "airplane",
    "plane": "airplane", "telephone": "phone", "cellphone": "phone", "smartphone": "phone",
    "television": "tv", "gray": "grey", "color": "colour",
    "leftward": "left", "rightward": "right", "upward": "up", "downward": "down",
    # verbs of the events the graph stores: one key per event kind
    "slide": "move", "drift": "move", "glide": "move", "travel": "move", "travelled": "move", "traveling": "move",
    "roll": "move", "float": "move", "shift": "move", "head": "move", "run": "move", "go": "move",
    "fly": "move", "wander": "move", "walk": "move", "proceed": "move", "motion": "move",
    "reappear": "appear", "emerge": "appear", "enter": "appear", "arrive": "appear",
    "vanish": "disappear", "leave": "disappear", "exit": "disappear", "fade": "disappear", "gone": "disappear",
}  # fmt: skip
_UNDOUBLE = set("bdgmnprt")


def _fold(word: str) -> str:
    """Plural / verb-form folding without the alias table (see `canon`)."""
    w = IRREGULAR.get(word)
    if w is not None:
        word = w
        if word in IRREGULAR:
            return word  # listed as its own fold ("is", "bus"): never stripped
    w = word
    n = len(w)
    if n > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif n > 4 and w.endswith(("ches", "shes", "xes", "zes", "sses", "oes")):
        w = w[:-2]
    elif n > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    n = len(w)
    if n >= 6 and w.endswith("ing"):
        w = w[:-3]
        if len(w) >= 3 and w[-1] == w[-2] and w[-1] in _UNDOUBLE:
            w = w[:-1]
    elif n >= 5 and w.endswith("ied"):
        w = w[:-3] + "y"
    elif n >= 5 and w.endswith("ed") and not w.endswith("eed"):
        w = w[:-2]
        if len(w) >= 3 and w[-1] == w[-2] and w[-1] in _UNDOUBLE:
            w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def _alias_table() -> dict[str, str]:
    folded = {_fold(k): _fold(v) for k, v in ALIASES.items()}
    out = {}
    for k in folded:
        v, hops = folded[k], 0
        while v in folded and folded[v] != v and hops < 5:  # follow kid -> child -> person
            v, hops = folded[v], hops + 1
        if k != v:
            out[k] = v
    return out


_ALIAS = _alias_table()


@lru_cache(maxsize=1 << 16)
def canon(word: str) -> str:
    """One key for a word's forms: "circles"/"circle" -> "circl", "people"/"men" -> "person",
    "moving"/"moved"/"slides" -> "mov", "vanishes"/"leaves" -> "disappear"."""
    w = _fold(word)
    return _ALIAS.get(w, w)


def _canon_set(ws) -> frozenset[str]:
    return frozenset(canon(w) for w in ws)


# Kept for callers that want the fold without aliases.
_stem = _fold


@lru_cache(maxsize=8192)
def name_key(name: str) -> tuple[str, ...]:
    """A name as canonical words without articles: "the red circles" -> ("red", "circl").
    Cached: the chains of one window share their thoughts, and names repeat across the corpus."""
    return tuple(canon(w) for w in words(name) if w not in _ARTICLES)


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


# ---- vocabulary ------------------------------------------------------------------------------
_COLOUR_WORDS = (
    "red green blue yellow white black grey gray orange purple pink brown cyan magenta violet "
    "navy olive maroon teal gold golden silver beige turquoise indigo crimson lime"
).split()
COLOURS = _canon_set(_COLOUR_WORDS)
COLOUR_NAMES = {canon(w): w for w in reversed(_COLOUR_WORDS)}  # canonical -> a word, for messages
DIRECTIONS = _canon_set("left right up down".split())
MOVE, APPEAR, DISAPPEAR = canon("move"), canon("appear"), canon("disappear")

# Nouns that name a thing a thought can invent (head nouns of entity names). Places and scenery
# are left out on purpose: a teacher paraphrases them freely ("lawn" for "grass"), and inventing
# them is rarely what makes a chain wrong.
_LEXICON_RAW = {
    "shape": "circle square triangle rectangle star hexagon pentagon octagon diamond oval ellipse cube "
             "sphere cone cylinder heart arrow ring ball box blob crescent trapezoid polygon",
    "person": "person child player driver worker dancer rider cyclist runner teacher student doctor "
              "police officer soldier chef",
    "animal": "dog cat bird horse cow sheep rabbit fish mouse goose duck bear elephant lion tiger monkey "
              "deer butterfly bee insect snake frog chicken pig goat squirrel zebra giraffe owl parrot",
    "vehicle": "car bike motorcycle bus truck train boat ship airplane helicopter van taxi tractor scooter",
    "object": "phone cup bottle chair table book bag hat umbrella kite balloon knife fork plate bowl key "
              "clock shoe shirt laptop computer lamp guitar piano toy robot apple banana",
}  # fmt: skip
LEXICON: dict[str, str] = {canon(w): cat for cat, ws in _LEXICON_RAW.items() for w in ws.split()}
# A type word names any entity of that category ("an animal" is grounded by the window's dog).
TYPE_WORDS: dict[str, str] = {canon("person"): "person", canon("animal"): "animal", canon("vehicle"): "vehicle"}
# Heads that name nothing in particular: never unknown, only counted ("three shapes so far").
GENERIC_HEADS = _canon_set(
    "shape object thing figure item form something entity one background scene screen frame clip video "
    "picture image view colour color".split()
)
NUMBER_WORDS = {canon(w): i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}
NUMBER_WORDS.pop(canon("one"))  # "the red one": a pronoun far more often than a count
NUMBER_WORDS.pop(canon("zero"))
PRONOUNS = _canon_set("it they he she this that which these those its their".split())
STOPWORDS = _canon_set(
    "a an the some any and or but nor so yet then than as while when where whether if because "
    "is are was were be been being am has have had having do does did done will would can could should "
    "shall may might must of to in on at with by into onto across toward towards through over under "
    "near behind around along past about against between beside within without upon off out "
    "it its they them their this that these those there here he she him her his we our i me my you your "
    "who whom whose which what now also too just very quite rather really only even its itself for "
    "still again once more keep continu remain stay already clip scene second seconds".split()
)
CONTINUATION = _canon_set("keep still continue remain stay".split())
_REPEAT_MARKER = re.compile(r"\b(?:again|once more|as before|like before|same as before|as earlier|once again)\b")


def number_value(tok: str) -> int | None:
    if tok[:1].isdigit():
        return int(tok) if tok.isdigit() and len(tok) < 4 else None
    return NUMBER_WORDS.get(tok)


# ---- a thought's parse ------------------------------------------------------------------------
_ANOTHER = _canon_set("another new second other".split())
_SENTENCE = re.compile(r"[.;!?\n]+(?:\s|$)|[;!?\n]")
_OFFSCREEN = frozenset("screen frame scene picture view clip video image".split())
_UP_PARTICLE = {"show": APPEAR, "pop": APPEAR, "turn": APPEAR}  # "shows up" = appears, not a direction


class Parsed:
    """A text's sentences as canonical words (with the raw words, for messages). Hashed by
    identity: `parse` caches one object per text, and the caches keyed by it need a cheap hash."""

    __slots__ = ("sentences", "raws", "content", "repeat_marker", "continuation")

    def __init__(self, sentences, raws, content, repeat_marker, continuation):
        self.sentences: tuple[tuple[str, ...], ...] = sentences
        self.raws: tuple[tuple[str, ...], ...] = raws
        self.content: frozenset[str] = content  # content words (no stopwords, no repeat/continuation markers)
        self.repeat_marker: bool = repeat_marker  # "again", "once more", "as before"
        self.continuation: bool = continuation  # "keeps", "still", "continues"


_SPECIAL = frozenset(["left", "away", "up"])  # words that may fold with a neighbour ("left the screen")


def _sentence_tokens(raw: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Canonical words of one sentence, with the few multi-word verbs folded first."""
    toks = list(map(canon, raw))
    if _SPECIAL.isdisjoint(raw):
        return tuple(toks), tuple(raw)  # the usual case: word by word
    n = len(raw)
    drop = set()
    for i, w in enumerate(raw):
        nxt = raw[i + 1] if i + 1 < n else ""
        if w == "left" and (nxt in _OFFSCREEN or (nxt in ("the", "this") and i + 2 < n and raw[i + 2] in _OFFSCREEN)):
            toks[i] = DISAPPEAR  # "left the screen": the verb leave, not the direction
        elif nxt == "away" and toks[i] in (MOVE, DISAPPEAR):
            toks[i] = DISAPPEAR  # "goes away", "moves away"
            drop.add(i + 1)
        elif nxt == "up" and _fold(w) in _UP_PARTICLE:
            toks[i] = _UP_PARTICLE[_fold(w)]  # "shows up"
            drop.add(i + 1)
    if not drop:
        return tuple(toks), tuple(raw)
    return tuple(t for i, t in enumerate(toks) if i not in drop), tuple(w for i, w in enumerate(raw) if i not in drop)


_NOT_CONTENT = STOPWORDS | {"from"}


@lru_cache(maxsize=8192)
def parse(text: str) -> Parsed:
    low = (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower()
    sentences, raws = [], []
    for part in _SENTENCE.split(low):
        raw = _WORD.findall(part)
        if raw:
            t, r = _sentence_tokens(raw)
            sentences.append(t)
            raws.append(r)
    flat = set().union(*sentences)
    marker = ("again" in low or "once" in low or "before" in low or "earlier" in low) and _REPEAT_MARKER.search(low) is not None
    return Parsed(tuple(sentences), tuple(raws), frozenset(flat - _NOT_CONTENT), marker, not CONTINUATION.isdisjoint(flat))


class Mention:
    """A noun phrase of a text: "two red circles" -> head "circl", colours {"red"}, count 2."""

    __slots__ = ("head", "colours", "mods", "count", "segment", "display", "another")

    def __init__(self, head, colours, mods, count, segment, display, another=False):
        self.head: str = head
        self.colours: frozenset[str] = colours
        self.mods: frozenset[str] = mods  # other known modifiers ("big"), to tell same-head entities apart
        self.count: int | None = count
        self.segment: tuple[str, ...] = segment  # content words told about it (to the next phrase; "it ..." sentences too)
        self.display: str = display  # the words as written, for messages
        self.another: bool = another  # "another red circle": a second thing of that name, not the one seen before

    def __repr__(self) -> str:
        return f"Mention({self.display!r}, head={self.head!r}, count={self.count}, segment={self.segment})"


@lru_cache(maxsize=16384)  # Parsed hashes by identity; windows without heads of their own share BASE_HEADS
def noun_phrases(parsed: Parsed, heads: frozenset[str], modwords: frozenset[str]) -> tuple[Mention, ...]:
    """The noun phrases of a parsed text whose head is in `heads`, each with what the text says
    about it. A head followed by another head is a modifier ("car door" names a door)."""
    found: list[tuple[int, int, tuple[str, ...], tuple[str, ...]]] = []  # (first word, head, toks, raws)
    segs: list[list[str]] = []
    stop = STOPWORDS
    for toks, raws in zip(parsed.sentences, parsed.raws):
        if heads.isdisjoint(toks):  # most sentences of a thought: one set test
            if segs and toks and toks[0] in PRONOUNS:  # "It moves left." tells about the last phrase
                segs[-1].extend(t for t in toks if t not in stop)
            continue
        n = len(toks)
        starts: list[tuple[int, int]] = []
        for i, t in enumerate(toks):
            if t in heads and t not in COLOURS and not (i + 1 < n and toks[i + 1] in heads and toks[i + 1] not in COLOURS):
                j = i
                while j > 0 and (toks[j - 1] in COLOURS or toks[j - 1] in modwords):
                    j -= 1
                starts.append((j, i))
        if not starts:
            continue
        if segs and starts[0][0] > 0 and toks[0] in PRONOUNS:
            segs[-1].extend(t for t in toks[: starts[0][0]] if t not in stop)
        for k, (j, i) in enumerate(starts):
            end = starts[k + 1][0] if k + 1 < len(starts) else n
            segs.append([t for t in toks[i + 1 : end] if t not in stop])
            found.append((j, i, toks, raws))
    out = []
    for (j, i, toks, raws), seg in zip(found, segs):
        mods = toks[j:i]
        before = toks[j - 1] if j > 0 else None
        out.append(Mention(
            toks[i],
            frozenset(m for m in mods if m in COLOURS) if mods else _EMPTY,
            frozenset(m for m in mods if m not in COLOURS) if mods else _EMPTY,
            number_value(before) if before is not None else None,
            tuple(seg),
            " ".join(raws[j : i + 1]),
            before in _ANOTHER,
        ))  # fmt: skip
    return tuple(out)


_EMPTY: frozenset[str] = frozenset()


@lru_cache(maxsize=4096)
def generic_counts(parsed: Parsed) -> tuple[tuple[int, str], ...]:
    """Counts of things named generically: "three shapes", "2 red objects" -> ((3, "shapes"), ...).
    Generic words are not phrase heads (they would cut "a red circle appears in the scene and
    moves left" in two); only a number in front makes them a claim."""
    out = []
    for toks, raws in zip(parsed.sentences, parsed.raws):
        for i, t in enumerate(toks):
            if t in GENERIC_HEADS and i > 0:
                j = i
                while j > 0 and toks[j - 1] in COLOURS:
                    j -= 1
                n = number_value(toks[j - 1]) if j > 0 else None
                if n is not None:
                    out.append((n, raws[i]))
    return tuple(out)


BASE_HEADS = frozenset(LEXICON) | frozenset(TYPE_WORDS)  # the heads every window knows
_FACT_HEADS = BASE_HEADS


@lru_cache(maxsize=8192)
def facts(parsed: Parsed) -> frozenset[str]:
    """What a text says, as (thing, word) facts: "A red circle appears and moves left; the blue
    square stays." -> {"red circl", "red circl:appear", "red circl:mov", "red circl:left",
    "blu squar", "blu squar:stay"}; sentences naming no thing add their content words. Comparing
    facts, not loose words, keeps two thoughts about different things apart even when they
    share most words."""
    out: set[str] = set()
    for m in noun_phrases(parsed, _FACT_HEADS, _EMPTY):
        ent = " ".join([*sorted(m.colours), m.head])
        out.add(ent)
        out.update(f"{ent}:{t}" for t in m.segment if t != "from")
        if m.another:
            out.add(f"{ent}:another")
    for toks in parsed.sentences:
        if not any(t in _FACT_HEADS for t in toks) and not (out and toks[0] in PRONOUNS):
            out.update(t for t in toks if t not in STOPWORDS and t != "from")
    return frozenset(out)


def directions_told(segment: tuple[str, ...]) -> set[str]:
    """Directions of motion a segment tells: a direction within three words after a motion verb."""
    out = set()
    for i, t in enumerate(segment):
        if t in DIRECTIONS and MOVE in segment[max(0, i - 3) : i] and segment[i - 1] != "from":  # "from left to right"
            out.add(t)
    return out


@lru_cache(maxsize=8192)
def events_told(segment: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
    """The canonical events of a segment: appear, disappear, (move, direction)."""
    out: set[tuple[str, ...]] = set()
    if APPEAR in segment:
        out.add((APPEAR,))
    if DISAPPEAR in segment:
        out.add((DISAPPEAR,))
    for d in directions_told(segment):
        out.add((MOVE, d))
    return frozenset(out)


def is_subsequence(needle: tuple[str, ...], hay: tuple[str, ...]) -> bool:
    it = iter(hay)
    return all(any(h == n for h in it) for n in needle)


@lru_cache(maxsize=4096)
def event_key(predicate: str, obj: str | None = None) -> tuple[str, ...]:
    """A graph relation as event words: "moves_left" -> ("mov", "left"); the literal object, if
    any, is part of it ("moves" + "left")."""
    toks = [canon(w) for w in words(predicate.replace("_", " ")) if w not in _ARTICLES]
    if obj:
        toks += [canon(w) for w in words(obj.replace("_", " ")) if w not in _ARTICLES]
    return tuple(t for t in toks if t not in STOPWORDS)


# ---- similarity ------------------------------------------------------------------------------
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


# ---- scripts and languages ----------------------------------------------------------------------
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


# Function words that only one of the Latin-script languages uses (words two languages share,
# such as "a", "in", "die", "la", are left out): enough to tell a French thought from an English one.
FUNCTION_WORDS = {
    "en": frozenset("the and is are of with its it this that then while moves appears from into as".split()),
    "fr": frozenset("le les une des et est du au aux vers dans avec sur puis il elle se qui gauche droite".split()),
    "de": frozenset("der das und ist ein eine sich nach nicht mit von auf dem nichts rechts oben unten bewegt erscheint weiter "
                    "bildschirm kreis quadrat dreieck".split()),
    "es": frozenset("el los las una y es hacia del con se en la nada mueve aparece sigue izquierda derecha pantalla "
                    "circulo cuadrado triangulo".split()),
    "it": frozenset("il lo gli una e è verso del della con si sinistra destra appare cerchio quadrato".split()),
    "pt": frozenset("o os uma e é para do da com se esquerda direita aparece".split()),
}


_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _fw in FUNCTION_WORDS.items():
    for _w in _fw:
        _WORD_LANGS[_w] = (*_WORD_LANGS.get(_w, ()), _lang)


_ALL_FUNCTION_WORDS = frozenset(_WORD_LANGS)
_FOREIGN = {lang: frozenset(w for w, langs in _WORD_LANGS.items() if set(langs) - {lang}) for lang in FUNCTION_WORDS}


@lru_cache(maxsize=4096)
def latin_language(text: str, expected: str = "en") -> str | None:
    """Another Latin-script language the text is written in, judged by function words: at least
    three of that language's and twice as many as of the expected language's; else None."""
    ws = words(text)
    if len(ws) < 3 or _FOREIGN.get(expected, _ALL_FUNCTION_WORDS).isdisjoint(ws):
        return None
    counts: dict[str, int] = {}
    for w in ws:
        for lang in _WORD_LANGS.get(w, ()):
            counts[lang] = counts.get(lang, 0) + 1
    best, hits = None, max(2, 2 * counts.get(expected, 0) - 1)
    for lang, n in counts.items():
        if lang != expected and n > hits:
            best, hits = lang, n
    return best


# ---- regular-expression lists with a literal prefilter ---------------------------------------------
@dataclass(frozen=True)
class Prefilter:
    """What every match of a default pattern list contains: one of `words` (lower-case words of
    the text), one of `chars` (substrings), or, with `unit_numbers`, a number glued to a unit
    ("5s"). A set test is far cheaper than the alternation, and most thoughts contain none."""

    words: frozenset[str] = frozenset()
    chars: str = ""
    unit_numbers: bool = False
    phrases: tuple[str, ...] = ()  # lower-case substrings made of common words ("in a while")

    def __post_init__(self) -> None:
        pattern = "|".join(([f"[{re.escape(self.chars)}]"] if self.chars else []) + ([r"\d[a-zA-Z]"] if self.unit_numbers else []))
        object.__setattr__(self, "_other", re.compile(pattern) if pattern else None)

    def may_match(self, text: str) -> bool:
        if not self.words.isdisjoint(words(text)):
            return True
        if self.phrases and any(p in text.lower() for p in self.phrases):
            return True
        return self._other is not None and self._other.search(text) is not None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Patterns:
    """Case-insensitive regular expressions searched as one, behind an optional prefilter."""

    regex: re.Pattern | None
    prefilter: Prefilter | None = None

    def search(self, text: str) -> re.Match | None:
        if self.regex is None or (self.prefilter is not None and not self.prefilter.may_match(text)):
            return None
        return self.regex.search(text)


@lru_cache(maxsize=64)
def compile_patterns(patterns: tuple[str, ...], defaults: tuple[str, ...] = (), prefilter: Prefilter | None = None) -> Patterns:
    """`prefilter` applies only when `patterns` are the `defaults` it was written for."""
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
    return Patterns(regex, prefilter if patterns == defaults else None)
