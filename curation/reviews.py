"""Human reviews applied to chains: what the exports carry once a person has looked at a chain.

A review row (curation.schemas.REVIEWS) says accept or reject, and may correct thoughts, the
question, the options and the answer. `apply_reviews` turns chain rows + review rows into the
chains to export:

- a rejected chain is dropped;
- an accepted chain gets the reviewer's corrections in place of the teacher's text;
- the latest review of a chain wins (by `reviewed_at`, then `annotation_id`);
- a chain without a usable review passes through with its teacher text.

Every returned row carries the review provenance (the exports copy it):

    human_reviewed   bool       True when an accepting review was applied
    reviewer         str|None   who reviewed (Label Studio user e-mail), None when not reviewed
    review_decision  str|None   "accept" when reviewed, else None
    review_corrected list[str]  what the reviewer changed: "thoughts[2]", "question", "options",
                                "answer" (empty when accepted as is or not reviewed)
    review_labels    list[str]  per-thought labels (ok / wrong / hallucinated / leaks_future /
                                not_grounded, "" when unlabelled); empty when not reviewed

The `corrections` column of a review is JSON, holding only the fields the reviewer changed:

    {"thoughts": [{"index": 1, "clip_id": "c-...", "text": "corrected thought"}],
     "question": "...", "options": ["...", "..."], "answer": "B"}

A thought correction names its thought by position AND clip id; if the chain no longer has that
clip at that position (the chain was regenerated after the review), the review is stale: it is not
applied, the chain passes through unreviewed, and a warning names it.

Before export, a corrected chain goes through the rule checks again (`recheck_corrected`): a
reviewer can type an answer that is not an option, or a thought that names the future. Labels can
exclude (`label_exclusions`): a thought labelled e.g. `hallucinated` that the reviewer did not
correct keeps the chain out. Pure functions, no I/O.
"""

from __future__ import annotations

import copy
import json
import logging
import re

log = logging.getLogger(__name__)

DECISIONS = ("accept", "reject")
THOUGHT_LABELS = ("ok", "wrong", "hallucinated", "leaks_future", "not_grounded")

_BOX = re.compile(r"\\boxed\{[^{}]*\}")


class StaleReview(ValueError):
    """A review whose corrections do not fit the chain as it is now."""


def latest_reviews(reviews: list[dict]) -> dict[str, dict]:
    """The newest usable review per chain id (failed rows and rows without a decision ignored)."""
    latest: dict[str, dict] = {}
    for review in reviews:
        if review.get("status", "ok") != "ok" or review.get("decision") not in DECISIONS:
            continue
        chain_id = review.get("chain_id")
        if not chain_id:
            continue
        current = latest.get(chain_id)
        if current is None or _review_order(review) >= _review_order(current):
            latest[chain_id] = review
    return latest


def _review_order(review: dict) -> tuple:
    # ISO-8601 UTC strings sort chronologically; annotation ids grow with time in Label Studio.
    return (review.get("reviewed_at") or "", review.get("annotation_id") or 0)


def parse_corrections(value: str | dict | None) -> dict:
    """The corrections column (JSON text) as a dict; empty when absent."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"corrections must be a JSON object, got {type(parsed).__name__}")
    return parsed


def boxed_answer(final_answer: str | None, answer: str) -> str:
    """The assistant's answer turn with its boxed answer replaced (or a new box if it had none)."""
    box = "\\boxed{" + answer + "}"
    if final_answer and _BOX.search(final_answer):
        return _BOX.sub(lambda _: box, final_answer, count=1)
    return box


def correct_chain(chain: dict, corrections: dict) -> tuple[dict, list[str]]:
    """A copy of `chain` with the corrections applied, and the list of fields changed.

    Raises StaleReview when a thought correction does not match the chain's thoughts."""
    out = copy.deepcopy(chain)
    changed: list[str] = []
    thoughts = out.get("thoughts") or []
    for fix in corrections.get("thoughts") or []:
        index, text = fix.get("index"), (fix.get("text") or "").strip()
        if not isinstance(index, int) or not 0 <= index < len(thoughts):
            raise StaleReview(f"thought {index} does not exist (chain has {len(thoughts)} thoughts)")
        if fix.get("clip_id") and fix["clip_id"] != thoughts[index].get("clip_id"):
            raise StaleReview(f"thought {index} is now clip {thoughts[index].get('clip_id')}, the review corrected clip {fix['clip_id']}")
        if text and text != thoughts[index].get("text"):
            thoughts[index] = {**thoughts[index], "text": text}
            changed.append(f"thoughts[{index}]")

    qa = dict(out.get("qa") or {})
    for field in ("question", "options", "answer"):
        if field not in corrections or corrections[field] in (None, "", []):
            continue
        value = corrections[field]
        if field == "options":
            value = [str(o).strip() for o in value if str(o).strip()]
        else:
            value = str(value).strip()
        if value != qa.get(field):
            qa[field] = value
            changed.append(field)
    if any(f in changed for f in ("question", "options", "answer")):
        out["qa"] = qa
    if "answer" in changed:
        out["final_answer"] = boxed_answer(out.get("final_answer"), qa["answer"])
    return out, changed


def _unreviewed(chain: dict) -> dict:
    return {**chain, "human_reviewed": False, "reviewer": None, "review_decision": None, "review_corrected": [], "review_labels": []}


def apply_reviews(chains: list[dict], reviews: list[dict]) -> list[dict]:
    """Chains to export: rejected dropped, corrections applied, provenance marked (module doc)."""
    latest = latest_reviews(reviews)
    out: list[dict] = []
    for chain in chains:
        review = latest.get(chain.get("chain_id"))
        if review is None:
            out.append(_unreviewed(chain))
            continue
        if review["decision"] == "reject":
            continue
        try:
            corrected, changed = correct_chain(chain, parse_corrections(review.get("corrections")))
        except (StaleReview, ValueError) as err:
            log.warning("review %s of chain %s not applied: %s", review.get("annotation_id"), chain.get("chain_id"), err)
            out.append(_unreviewed(chain))
            continue
        corrected |= {
            "human_reviewed": True,
            "reviewer": review.get("reviewer"),
            "review_decision": "accept",
            "review_corrected": changed,
            "review_labels": list(review.get("labels") or []),
        }
        out.append(corrected)
    return out


# ---- before export: corrections re-checked, labels that exclude ------------------------------------
def recheck_corrected(chain: dict, cfg, graph: dict | None, captions: dict[str, dict] | None) -> list[dict]:
    """Verdict rows of the rule checks (`cfg`: a curation.checks.ChecksConfig) re-run on a chain
    the reviewer corrected; [] when nothing was corrected. `graph`: the window's graphs row;
    `captions`: clip_id -> captions row; the chain needs its `video_duration_s` (structure)."""
    if not chain.get("review_corrected"):
        return []
    from curation.checks import run_checks  # the checks import the formats; reviews stay light

    return run_checks(chain, cfg, graph, captions or {}, None)


def label_exclusions(chain: dict, excluding: set[str] | frozenset[str]) -> list[str]:
    """`review_label:<label>` for every excluding label on a thought the reviewer did not correct
    (a label on a corrected thought says why it was corrected; the correction is re-checked)."""
    corrected = set(chain.get("review_corrected") or [])
    found = {label for i, label in enumerate(chain.get("review_labels") or []) if label in excluding and f"thoughts[{i}]" not in corrected}
    return [f"review_label:{label}" for label in sorted(found)]
