"""What every check returns: a verdict row for the `verdicts` table (one per chain x check).

A check collects `Issue`s (a stable reason code + a message naming the item); the verdict passes
when there are none. The first issue's code is the row's `reason`, so SQL can count failures by
code; all issues go to `details` (JSON) for a person to read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict

CHECKER_VERSION = "rule-checks/1"


class CheckConfig(BaseModel):
    """Base of each check's thresholds (they live in the recipe); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class Issue:
    code: str  # stable snake_case reason code (docs/reason-codes.md)
    message: str
    where: dict = field(default_factory=dict)  # e.g. {"thought": 2}


def verdict(chain_id: str, check: str, issues: list[Issue], score: float | None = None, passed: bool | None = None, **details) -> dict:
    """A verdict row; passed defaults to "no issues", `score` to 1.0 / 0.0."""
    passed = not issues if passed is None else passed
    body = {"issues": [asdict(i) for i in issues], **details}
    return {
        "chain_id": chain_id,
        "check": check,
        "passed": passed,
        "score": float(score if score is not None else (1.0 if passed else 0.0)),
        "details": json.dumps(body, ensure_ascii=False),
        "checker_version": CHECKER_VERSION,
        "status": "ok",
        "reason": None if passed or not issues else issues[0].code,
        "error": None,
    }


def not_run(chain_id: str, check: str, reason: str, message: str) -> dict:
    """The check could not run for this chain (missing input): passed is unknown, not False."""
    return {
        "chain_id": chain_id,
        "check": check,
        "passed": None,
        "score": None,
        "details": json.dumps({"issues": [], "not_run": message}),
        "checker_version": CHECKER_VERSION,
        "status": "failed",
        "reason": reason,
        "error": f"chain {chain_id}: {message}",
    }
