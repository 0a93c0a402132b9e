"""Answer verification: every answer re-derived independently of the step that wrote it.

Pure logic, no I/O (the stage is pipelines/stages/verify.py):
- template questions (curation.graph and curation.questions templates, every one of them) are
  recomputed from the graph of the window they are asked in, reading what the model will see
  (the question text and its options) rather than trusting the stored answer; for the order
  templates (first_appearance, appeared_before, order), where the captions name the entities,
  the order they are first named in is checked too;
- teacher-written questions are answered again k times by the teacher without the proposed
  answer; `agreement` keeps them when enough of the k answers equal it (self-consistency, as
  Video-R1 keeps chains with reward > 0.6);
(Questions whose text gives their answer away are the `qa` rule check's: curation/checks/qa.py.)
Answers are compared after normalisation: letters A-E, numbers numerically, Yes/No in any case.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

from curation.formats.question import LETTERS, format_number, ground_truth, option_texts, parse_number, split_option
from curation.graph import _PLURALS, APPEARED_BEFORE, mentions, normalize_name
from curation.questions import ORDER_AFTER, ORDER_BEFORE, WindowFacts, parse, recompute
from curation.questions import TEMPLATES as QUESTION_TEMPLATES

VERSION = "answer-verify/1"
CHECK = "answer"

# Reason codes (docs/reason-codes.md, table "Check verdicts", check `answer`)
DISAGREES_GRAPH = "answer_disagrees_graph"
DISAGREES_CAPTIONS = "answer_disagrees_captions"
DISAGREES_TEACHER = "answer_disagrees_teacher"
UNVERIFIABLE = "answer_unverifiable"

TEMPLATES = QUESTION_TEMPLATES  # every template the qa stage writes is recomputed here

_NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


# ---- normalisation ------------------------------------------------------------------------
def normalize_answer(text: str | None, qa_type: str, options: list[str] | None = None) -> str | None:
    """The canonical answer in a reply ("B", "3", "Yes"), or None when none can be read.

    Multiple choice: a letter within the options ("B", "(b)", "B. red circle", "\\boxed{B}",
    "The answer is B") or an option's text; numerical: the one number of the reply (digits or a
    word up to twelve); yes/no: a reply that starts with yes or no."""
    if text is None:
        return None
    raw = text.strip()
    boxed = _BOXED.search(raw)
    if boxed:
        raw = boxed.group(1).strip()
    raw = re.sub(r"^(the\s+)?(final\s+)?answer\s*(is|:)\s*", "", raw, flags=re.IGNORECASE).strip().strip("*").strip()
    if qa_type == "multiple_choice":
        return _letter(raw, options or [])
    if qa_type == "numerical":
        return _number(raw)
    if qa_type == "yes_no":
        m = re.match(r"^(yes|no)\b", raw, flags=re.IGNORECASE)
        return m.group(1).capitalize() if m else None
    return None


def _letter(raw: str, options: list[str]) -> str | None:
    n = len(options) if options else len(LETTERS)
    raw = re.sub(r"^(option|letter|choice)\s+", "", raw, flags=re.IGNORECASE)
    m = re.fullmatch(r"\(?([A-Ea-e])\)?[.:)]?", raw)
    letter, text = (m.group(1), "") if m else split_option(raw)
    if letter is not None:
        letter = letter.upper()
        return letter if letter in LETTERS[:n] else None
    # The option's text alone ("red circle"): its letter, when it names exactly one option.
    wanted = normalize_name(text)
    hits = [i for i, o in enumerate(option_texts(options)) if normalize_name(o) == wanted]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def _number(raw: str) -> str | None:
    value = parse_number(raw)
    if value is None:
        found = re.findall(r"-?\d+(?:\.\d+)?", raw.replace(",", ""))
        words = [w for w in re.findall(r"[a-z]+", raw.lower()) if w in _NUMBER_WORDS]
        if len(found) + len(words) != 1:  # "2 or 3": not one answer
            return None
        value = float(found[0]) if found else float(_NUMBER_WORDS[words[0]])
    return format_number(value) if math.isfinite(value) else None


def same_answer(a: str | None, b: str | None, qa_type: str) -> bool:
    """Equal after normalisation (numbers numerically)."""
    if a is None or b is None:
        return False
    if qa_type == "numerical":
        x, y = parse_number(a), parse_number(b)
        return x is not None and y is not None and math.isclose(x, y, rel_tol=0, abs_tol=1e-9)
    return a.strip().lower() == b.strip().lower()


def proposed_answer(qa: dict) -> str | None:
    """The chain's answer in canonical form, or None when it does not fit its type."""
    return ground_truth(qa or {})


# ---- a verification's outcome ---------------------------------------------------------------
@dataclass
class Outcome:
    passed: bool | None
    reason: str | None
    message: str
    score: float | None = None
    details: dict = field(default_factory=dict)


# ---- template questions: recomputed from the graph -------------------------------------------
_TYPE_OF_PLURAL = {plural: etype for etype, plural in _PLURALS.items()}


def _entity(entities: list[dict], name: str) -> dict | None:
    key = normalize_name(name)
    return next((e for e in entities if e.get("name") == key), None)


def _order(e: dict) -> tuple:
    return (e.get("first_seen_s") or 0.0, e.get("name") or "")


def recompute_template(template: str, qa: dict, details: dict, entities: list[dict], relations: list[dict] | None = None,
                       clip_ids: list[str] | None = None) -> tuple[str | None, str]:  # fmt: skip
    """(answer the window's graph gives, how it was found); answer None when the question cannot
    be read against the graph. The question text and options win over the stored details: the
    answer must hold for what the model sees. The templates over relations read the question
    against their phrase banks (curation.questions.recompute)."""
    if template not in ("count_entities", "first_appearance", "appeared_before"):
        return recompute(template, qa, WindowFacts.of(entities, relations, clip_ids))
    if template == "count_entities":
        m = re.search(r"how many different (\w+)", qa.get("question") or "", flags=re.IGNORECASE)
        etype = _TYPE_OF_PLURAL.get(m.group(1).lower()) if m else None
        etype = etype or (m.group(1).lower()[:-1] if m and m.group(1).lower().endswith("s") else None) or details.get("entity_type")
        if not etype:
            return None, "the question names no entity type"
        found = sorted(e["name"] for e in entities if e.get("type") == etype)
        return str(len(found)), f"{len(found)} {etype} entities in the window graph: {', '.join(found)}"
    if template == "first_appearance":
        texts = option_texts(qa.get("options") or [])
        found = [_entity(entities, t) for t in texts]
        missing = [t for t, e in zip(texts, found) if e is None]
        if missing or not found:
            return None, f"options not in the window graph: {', '.join(missing) or '(no options)'}"
        first = min(range(len(found)), key=lambda i: _order(found[i]))  # type: ignore[arg-type]
        return LETTERS[first], f"{texts[first]!r} is first seen at {found[first]['first_seen_s']:.1f}s ({found[first]['first_clip_id']})"  # type: ignore[index]
    if template == "appeared_before":
        x_name, y_name = before_pair(qa, details)
        x, y = (_entity(entities, x_name or ""), _entity(entities, y_name or ""))
        if x is None or y is None:
            return None, f"not in the window graph: {', '.join(n or '?' for n, e in ((x_name, x), (y_name, y)) if e is None)}"
        answer = "Yes" if (x.get("first_seen_s") or 0.0) < (y.get("first_seen_s") or 0.0) else "No"
        return answer, f"{x['name']} first seen at {x['first_seen_s']:.1f}s, {y['name']} at {y['first_seen_s']:.1f}s"
    return None, f"unknown template {template!r}"


def before_pair(qa: dict, details: dict) -> tuple[str | None, str | None]:
    """(X, Y) of "Did the X appear before the Y?" as the question the model sees says it (a
    reviewer may have reworded it), else as the questions table recorded it."""
    fields = parse(APPEARED_BEFORE, qa.get("question") or "")
    return (fields["x"], fields["y"]) if fields else (details.get("first"), details.get("second"))


def first_mention(name: str, captions: list[str]) -> int | None:
    """Index of the first caption (in time order) that names the entity."""
    key = normalize_name(name)
    return next((i for i, c in enumerate(captions) if c and mentions(c, key)), None)


def caption_answer(template: str, qa: dict, details: dict, captions: list[str]) -> str | None:
    """The answer the captions give for an order question, when every entity it is about is named
    in them at distinct clips; None otherwise (nothing to compare, not a disagreement)."""
    if template == "order":
        return _caption_order_answer(qa, captions)
    if template == "first_appearance":
        names = option_texts(qa.get("options") or [])
    elif template == "appeared_before":
        names = [n or "" for n in before_pair(qa, details)]
    else:
        return None
    firsts = [first_mention(n, captions) for n in names]
    if not names or any(f is None for f in firsts):
        return None
    earliest = min(firsts)  # type: ignore[type-var]
    if firsts.count(earliest) > 1:
        return None  # first named in the same clip: the captions cannot order them
    if template == "first_appearance":
        return LETTERS[firsts.index(earliest)]
    return "Yes" if firsts[0] < firsts[1] else "No"  # type: ignore[operator]


def _caption_order_answer(qa: dict, captions: list[str]) -> str | None:
    """An order question answered from the captions: among the options, the one first named
    right after (just before) the anchor, when the anchor and every option are named at clips
    that decide it; None otherwise."""
    question = qa.get("question") or ""
    after, before = parse(ORDER_AFTER, question), parse(ORDER_BEFORE, question)
    fields = after or before
    if fields is None:
        return None
    anchor = first_mention(fields["x"], captions)
    firsts = [first_mention(n, captions) for n in option_texts(qa.get("options") or [])]
    if anchor is None or not firsts or any(f is None for f in firsts):
        return None
    side = [f for f in firsts if (f > anchor if after else f < anchor)]  # type: ignore[operator]
    if not side:
        return None
    best = min(side) if after else max(side)
    return LETTERS[firsts.index(best)] if firsts.count(best) == 1 else None


def verify_template(template: str, qa: dict, details: dict, entities: list[dict] | None, captions: list[str] | None,
                    relations: list[dict] | None = None, clip_ids: list[str] | None = None) -> Outcome:  # fmt: skip
    proposed = proposed_answer(qa)
    if proposed is None:
        return Outcome(False, UNVERIFIABLE, f"the answer {qa.get('answer')!r} does not fit the type {qa.get('type')!r}")
    if entities is None:
        return Outcome(False, UNVERIFIABLE, "the window has no graph to recompute the answer from")
    recomputed, how = recompute_template(template, qa, details, entities, relations, clip_ids)
    info = {"method": "template", "template": template, "proposed": proposed, "recomputed": recomputed, "how": how}
    if recomputed is None:
        return Outcome(False, UNVERIFIABLE, f"cannot recompute the {template} answer: {how}", details=info)
    if not same_answer(proposed, recomputed, qa.get("type") or ""):
        return Outcome(False, DISAGREES_GRAPH, f"answer {proposed!r}, the window graph gives {recomputed!r} ({how})", 0.0, info)
    if captions is not None:
        from_captions = caption_answer(template, qa, details, captions)
        info["from_captions"] = from_captions
        if from_captions is not None and not same_answer(proposed, from_captions, qa.get("type") or ""):
            return Outcome(False, DISAGREES_CAPTIONS, f"answer {proposed!r}, the order in which the captions first name them gives {from_captions!r}", 0.0, info)
    return Outcome(True, None, how, 1.0, info)


# ---- teacher-written questions: k independent answers -----------------------------------------
def attempt_order(n_options: int, seed: str, attempt: int) -> list[int]:
    """Original option indices in the order attempt `attempt` shows them. Attempt 0 keeps the
    stored order; attempt a shifts every option by a places along a seeded cycle of the options,
    so over the first n attempts each position shows a different option (a teacher that always
    picks the same position cannot agree with itself)."""
    identity = list(range(n_options))
    if n_options < 2 or attempt % n_options == 0:
        return identity
    cycle = identity[:]
    random.Random(seed).shuffle(cycle)
    where = {option: i for i, option in enumerate(cycle)}
    return [cycle[(where[i] + attempt) % n_options] for i in identity]


def map_back(letter: str | None, order: list[int]) -> str | None:
    """The original letter of the option shown at `letter` under `order`."""
    if letter is None or letter not in LETTERS[: len(order)]:
        return None
    return LETTERS[order[LETTERS.index(letter)]]


def needed(k: int, min_agreement: float) -> int:
    """How many of k answers must agree: the share rounded up (0.6 of 3 -> 2, of 5 -> 3)."""
    return max(1, math.ceil(min_agreement * k - 1e-9))


def agreement(proposed: str, answers: list[str | None], failures: list[str], qa_type: str, k: int, min_agreement: float) -> Outcome:
    """Outcome of k attempts. `answers`: the normalised answer of each attempt that got a reply
    (None: unreadable); `failures`: reason codes of attempts the teacher could not serve.

    Passed when at least needed(k) answers equal the proposed one. When the attempts that failed
    could still change that, the check did not run (passed None, the teacher's reason): a rerun
    asks only for what is missing."""
    agree = sum(1 for a in answers if same_answer(a, proposed, qa_type))
    need = needed(k, min_agreement)
    share = agree / k if k else 0.0
    info = {"method": "teacher", "proposed": proposed, "answers": answers, "failed_attempts": failures,
            "agreement": round(share, 4), "needed": need, "k": k}  # fmt: skip
    if agree >= need:
        return Outcome(True, None, f"{agree} of {k} answers equal {proposed!r}", share, info)
    if failures and agree + len(failures) >= need:
        return Outcome(None, failures[0], f"{len(failures)} of {k} teacher calls failed ({', '.join(sorted(set(failures)))}); {agree} answers agree so far", None, info)
    readable = [a for a in answers if a is not None]
    if not readable:
        return Outcome(False, UNVERIFIABLE, f"none of the {k} replies holds a readable {qa_type.replace('_', ' ')} answer", 0.0, info)
    return Outcome(False, DISAGREES_TEACHER, f"{agree} of {k} answers equal {proposed!r} (need {need}); the teacher answered {readable}", share, info)
