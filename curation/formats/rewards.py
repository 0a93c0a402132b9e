"""VST's rule rewards (spec section 3), re-implemented to prove exported ground truths survive them.

- multiple choice: the first standalone capital A-E inside the first `\\boxed{...}` (or in the
  whole text when there is no box), compared with the letter of the ground truth ("B" or "B.");
- numerical: the content of the first `\\boxed{}` against `str(ground_truth[0])`, by a math-answer
  grader (numbers compare by value, other answers by normalised text);
- yes or no: the first standalone Yes/No (any case) inside the box, else in the text.
The ground truth is indexed `[0]` exactly as VST does, so a bare string "12" grades against "1".
"""

from __future__ import annotations

import math
import re

_MC = re.compile(r"(?<![A-Za-z])([A-E])(?![A-Za-z])")
_YN = re.compile(r"(?<![A-Za-z])(yes|no)(?![A-Za-z])", re.IGNORECASE)
_TEXT_WRAP = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")

DATA_SOURCES = ("multiple choice", "numerical", "yes or no")


class UnknownDataSource(ValueError):
    pass


def extract_boxed(text: str) -> str | None:
    """Content of the first \\boxed{...} (nested braces kept), or None."""
    start = text.find("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def _first(pattern: re.Pattern, text: str) -> str | None:
    m = pattern.search(text)
    return m.group(1) if m else None


def reward_multiple_choice(response: str, truth: str) -> float:
    box = extract_boxed(response)
    got = _first(_MC, box if box is not None else response)
    want = _first(_MC, str(truth))
    return float(got is not None and got == want)


def _normalise_math(text: str) -> str:
    text = _TEXT_WRAP.sub(r"\1", text)
    text = text.replace("$", "").replace("\\!", "").replace(",", "").replace(" ", "")
    return text.strip().rstrip(".").lower()


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        frac = re.fullmatch(r"\\?d?frac\{(-?\d+)\}\{(-?\d+)\}", text)
        if frac and int(frac.group(2)) != 0:
            return int(frac.group(1)) / int(frac.group(2))
        return None
    return value if math.isfinite(value) else None


def grade_math(given: str, truth: str) -> bool:
    a, b = _normalise_math(given), _normalise_math(truth)
    if a == b:
        return True
    x, y = _as_number(a), _as_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-9)


def reward_numerical(response: str, truth: str) -> float:
    box = extract_boxed(response)
    return float(box is not None and grade_math(box, str(truth)))


def reward_yes_no(response: str, truth: str) -> float:
    box = extract_boxed(response)
    got = _first(_YN, box) if box is not None else None
    if got is None:
        got = _first(_YN, response)
    want = _first(_YN, str(truth))
    return float(got is not None and want is not None and got.lower() == want.lower())


def compute_reward(data_source: str, response: str, ground_truth) -> float:
    """The reward VST's rule would give `response`; `ground_truth` as stored (indexed [0])."""
    base = data_source.removesuffix(" val") if data_source != "yes or no val" else data_source
    truth = ground_truth[0]  # what VST does: a bare string is indexed character-wise
    if base == "multiple choice":
        return reward_multiple_choice(response, truth)
    if base == "numerical":
        return reward_numerical(response, truth)
    if base == "yes or no":
        return reward_yes_no(response, truth)
    raise UnknownDataSource(f"data_source {data_source!r} has no reward; use one of: {', '.join(DATA_SOURCES)}")


def wrong_answer(data_source: str, truth: str) -> str:
    """An answer that must score 0 against `truth` (to prove the reward can say no)."""
    base = data_source.removesuffix(" val")
    if base == "multiple choice":
        letter = _first(_MC, str(truth)) or "A"
        return "\\boxed{" + ("B" if letter == "A" else "A") + "}"
    if base == "numerical":
        value = _as_number(_normalise_math(str(truth)))
        return "\\boxed{" + (str(value + 1) if value is not None else "0") + "}"
    want = (_first(_YN, str(truth)) or "yes").lower()
    return "\\boxed{" + ("No" if want == "yes" else "Yes") + "}"
