"""qa: the question and its ground truth survive VST's reward parsing, and need the whole window."""

from __future__ import annotations

import re

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.formats.question import LETTERS, QA_TYPES, answer_letter, ground_truth, split_option

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
    if answer_letter(qa) is None:
        issues.append(Issue("answer_not_an_option", f"answer {qa.get('answer')!r} is not the letter or text of one of the options"))


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
