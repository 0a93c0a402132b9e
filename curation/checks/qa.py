"""qa: the question and its ground truth survive VST's reward parsing, need the whole window, and
the question does not give its answer away.

- options: 2-5, lettered A-E in order, not empty; the same text twice -> `options_not_unique`;
  the same after normalisation (case, punctuation, articles, plurals, aliases: "the child" vs
  "child", "Red circle." vs "red circles") -> `options_near_identical`;
- the answer leaked by the question -> `answer_leaked_in_question`: multiple choice, the correct
  option's text is in the question and no other option's is ("Which came first, the red circle
  or the blue square?" names both: no leak); numerical, the answer's number is in the question
  (digits, or two..twelve in words); yes/no, the question says "yes" or "no" outside
  "yes or no" / "yes/no".
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.checks.text import NUMBER_WORDS, canon, name_key, words
from curation.formats.question import LETTERS, QA_TYPES, answer_letter, ground_truth, option_texts, split_option

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


class QAConfig(CheckConfig):
    min_options: int = Field(2, ge=2, le=5)
    max_options: int = Field(5, ge=2, le=5, description="VST's reward only finds letters A-E")
    min_evidence_clips: int = Field(2, ge=1, description="distinct clips of the window the answer needs")


def _check_options(qa: dict, cfg: QAConfig, issues: list[Issue]) -> None:
    options = qa.get("options") or []
    if not (cfg.min_options <= len(options) <= cfg.max_options):
        issues.append(Issue("options_count_out_of_range", f"{len(options)} options; {cfg.min_options}-{cfg.max_options} allowed (letters A-E)"))
    texts = []
    for i, option in enumerate(options):
        letter, text = split_option(option or "")
        expected = chr(ord("A") + i)
        if letter is not None and (letter.upper() != expected or letter.upper() not in LETTERS):
            issues.append(Issue("option_letter_invalid", f"option {i + 1} is lettered {letter!r}; expected {expected!r} (A-E in order)"))
        if not text:
            issues.append(Issue("option_empty", f"option {i + 1} is empty"))
        texts.append(text.lower())
    if len(set(texts)) != len(texts):
        issues.append(Issue("options_not_unique", "two options have the same text"))
    else:
        keys = [option_key(t) for t in texts]
        for k, key in enumerate(keys):
            if key and key in keys[:k]:
                j = keys.index(key)
                issues.append(Issue("options_near_identical", f"options {j + 1} and {k + 1} ({texts[j]!r}, {texts[k]!r}) are the same after normalisation"))
                break
    if answer_letter(qa) is None:
        issues.append(Issue("answer_not_an_option", f"answer {qa.get('answer')!r} is not the letter or text of one of the options"))


def option_key(text: str) -> tuple[str, ...]:
    """An option as canonical words without articles: "The children." -> ("person",)."""
    key = name_key(text)
    return key[1:] if key[:1] == (canon("some"),) else key


_YES_NO_PAIR = re.compile(r"\byes\s*(?:/|or|,)\s*no\b|\bno\s*(?:/|or|,)\s*yes\b", re.IGNORECASE)
_YES_NO = re.compile(r"\byes\b|\bno\s*[.!?),;:]|\bno\s*$|\banswer\W+no\b", re.IGNORECASE)


def _phrase_in(phrase: tuple[str, ...], text: tuple[str, ...]) -> bool:
    n = len(phrase)
    return n > 0 and any(text[i : i + n] == phrase for i in range(len(text) - n + 1))


def answer_leak(qa: dict) -> str | None:
    """Why the question text gives its answer away, or None."""
    return _answer_leak(qa.get("question") or "", qa.get("type"), tuple(qa.get("options") or ()), qa.get("answer"))


@lru_cache(maxsize=4096)  # template questions repeat across windows and videos
def _answer_leak(question: str, kind: str | None, options: tuple[str, ...], answer: str | None) -> str | None:
    qa = {"question": question, "type": kind, "options": list(options), "answer": answer}
    if kind == "multiple_choice":
        letter = answer_letter(qa)
        texts = option_texts(qa.get("options") or [])
        if letter is None or not texts:
            return None
        q = name_key(question)
        keys = [option_key(t) for t in texts]
        correct = keys[ord(letter) - ord("A")]
        # an option too small to be a name ("1", "a") would match by chance
        if not any(len(w) >= 3 and w.isalpha() for w in correct) or not _phrase_in(correct, q):
            return None
        if any(_phrase_in(k, q) for i, k in enumerate(keys) if i != ord(letter) - ord("A") and k):
            return None  # the question names other options too: it asks between them
        return f"the question names the correct option {texts[ord(letter) - ord('A')]!r} and no other"
    if kind == "numerical":
        truth = ground_truth(qa)
        if truth is None:
            return None
        for w in words(question):
            value = float(w) if w.isdigit() else NUMBER_WORDS.get(canon(w))
            if value is not None and str(int(value) if float(value).is_integer() else value) == truth:
                return f"the question contains the answer {truth}"
        return None
    if kind == "yes_no":
        stripped = _YES_NO_PAIR.sub(" ", question)
        hit = _YES_NO.search(stripped)
        return f"the question says {hit.group(0).strip()!r}" if hit else None
    return None


def check_qa(chain: dict, cfg: QAConfig = QAConfig()) -> dict:
    chain_id = chain["chain_id"]
    qa = chain.get("qa")
    if not qa:
        return verdict(chain_id, "qa", [Issue("qa_missing", "the chain has no question")])
    issues: list[Issue] = []
    kind = qa.get("type")
    if kind not in QA_TYPES:
        issues.append(Issue("qa_type_unknown", f"question type {kind!r}; known: {', '.join(QA_TYPES)}"))
    if not (qa.get("question") or "").strip():
        issues.append(Issue("question_empty", "the question is empty"))
    if kind == "multiple_choice":
        _check_options(qa, cfg, issues)
    elif kind == "numerical" and ground_truth(qa) is None:
        issues.append(Issue("answer_not_numeric", f"numerical answer {qa.get('answer')!r} does not parse as a number"))
    elif kind == "yes_no" and ground_truth(qa) is None:
        issues.append(Issue("answer_not_yes_no", f"yes/no answer {qa.get('answer')!r} is not Yes or No"))

    leak = answer_leak(qa) if kind in QA_TYPES and (qa.get("question") or "").strip() else None
    if leak:
        issues.append(Issue("answer_leaked_in_question", leak))

    final = chain.get("final_answer")
    truth = ground_truth(qa) if kind in QA_TYPES else None
    if final and truth is not None:
        m = _BOXED.search(final)
        inside = m.group(1).strip() if m else None
        if inside is None or ground_truth({**qa, "answer": inside}) != truth:
            issues.append(Issue("final_answer_mismatch", f"final answer {final!r} does not box the ground truth {truth!r}"))

    window_clips = {t.get("clip_id") for t in chain.get("thoughts") or []}
    evidence = list(dict.fromkeys(qa.get("evidence_clip_ids") or []))
    outside = [c for c in evidence if c not in window_clips]
    if outside:
        issues.append(Issue("evidence_outside_window", f"evidence clips {outside} are not clips of this window"))
    inside_clips = [c for c in evidence if c in window_clips]
    if len(inside_clips) < cfg.min_evidence_clips:
        issues.append(Issue("evidence_too_few_clips", f"evidence spans {len(inside_clips)} distinct clip(s) of the window; at least {cfg.min_evidence_clips} needed"))
    return verdict(chain_id, "qa", issues, qa_type=kind, evidence_clips=len(inside_clips))
