"""Questions, options and answers as VST's files and rewards expect them.

Options may come bare ("red") or lettered ("B. red", "(B) red"); they are shown lettered A-E, one
per line under the question. Ground truths: a letter for multiple choice, a number for
numerical, "Yes"/"No" for yes/no (spec section 3).
"""

from __future__ import annotations

import math
import re

LETTERS = "ABCDE"  # VST's multiple-choice reward only ever finds A-E
DATA_SOURCE = {"multiple_choice": "multiple choice", "numerical": "numerical", "yes_no": "yes or no"}
QA_TYPES = tuple(DATA_SOURCE)

_LETTERED = re.compile(r"^\s*\(?([A-Za-z])\s*[\.\):]\s*(.*)$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def split_option(option: str) -> tuple[str | None, str]:
    """("B", "red") for "B. red" / "(B) red"; (None, "red") for a bare option."""
    m = _LETTERED.match(option)
    if m and m.group(2).strip():
        return m.group(1), m.group(2).strip()
    return None, option.strip()


def option_texts(options: list[str]) -> list[str]:
    return [split_option(o)[1] for o in options]


def option_lines(options: list[str]) -> list[str]:
    """Options as shown: "A. red", "B. blue", ... (letters by position)."""
    return [f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(option_texts(options))]


def prompt_text(qa: dict) -> str:
    """The question as shown to the model: with its options for multiple choice."""
    question = (qa.get("question") or "").strip()
    if qa.get("type") == "multiple_choice" and qa.get("options"):
        return question + "\n" + "\n".join(option_lines(qa["options"]))
    return question


def answer_letter(qa: dict) -> str | None:
    """The letter of the correct option, from a letter ("B", "B.", "(B)") or the option's text."""
    answer = (qa.get("answer") or "").strip()
    texts = option_texts(qa.get("options") or [])
    m = re.fullmatch(r"\(?([A-Za-z])[\.\)]?", answer)
    if m:
        letter = m.group(1).upper()
        return letter if ord(letter) - ord("A") < len(texts) else None
    letter, text = split_option(answer)
    for i, option in enumerate(texts):
        if option.strip().lower() == (text if letter else answer).strip().lower():
            return chr(ord("A") + i)
    return None


def parse_number(text: str) -> float | None:
    cleaned = text.strip().replace(",", "").rstrip(".")
    if not _NUMBER.match(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def format_number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def yes_no(text: str) -> str | None:
    t = text.strip().rstrip(".").lower()
    return {"yes": "Yes", "no": "No"}.get(t)


def ground_truth(qa: dict) -> str | None:
    """The canonical ground truth string, or None when the answer does not fit the type."""
    kind = qa.get("type")
    if kind == "multiple_choice":
        return answer_letter(qa)
    if kind == "numerical":
        value = parse_number(qa.get("answer") or "")
        return None if value is None else format_number(value)
    if kind == "yes_no":
        return yes_no(qa.get("answer") or "")
    return None


def boxed(answer: str) -> str:
    return "\\boxed{" + answer + "}"
