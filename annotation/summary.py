"""Review numbers of a run, for `vstw stats` and the reports.

    review_summary(run_dir) -> {
      "reviewed": 12,                 chains with a usable review (latest review per chain)
      "accepted": 9,                  of which accepted ...
      "corrected": 4,                 ... with at least one correction (subset of accepted)
      "rejected": 3,
      "rejected_by_reason": {"wrong_answer": 2, "leaks_future": 1},
      "thought_labels": {"ok": 30, "hallucinated": 2, ...},   over the latest reviews' labels
      "corrected_fields": {"thoughts": 5, "answer": 1, ...},  chains correcting each field
      "failed_reviews": {"review_no_decision": 1},            annotations that gave no review
      "reviewers": {"ann@example.org": 12},
      "lead_time_s": {"median": 41.0, "mean": 52.3, "total": 627.6} | None,
      "agreement": {                  human decision vs automatic checks (verdicts table)
        "chains": 12,                 reviewed chains that have at least one verdict
        "rejected_flagged": 2,        rejected by a human AND failed by at least one check
        "rejected_unflagged": 1,      rejected by a human, passed every check (checks missed it)
        "accepted_flagged": 1,        accepted by a human although a check failed it
        "accepted_unflagged": 8,
        "recall": 0.667,              rejected_flagged / rejected (None when no rejection)
        "precision": 0.667,           rejected_flagged / flagged (None when nothing flagged)
        "by_check": {"causality": {"flagged": 2, "flagged_rejected": 2, "rejected": 3}, ...}
      }
    }

Counts are over chains (latest review each), except failed_reviews and reviewers (annotations).
"""

from __future__ import annotations

import statistics
from collections import Counter

from curation.reviews import latest_reviews, parse_corrections
from pipelines.rundir import RunDir


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def _corrected_fields(review: dict) -> list[str]:
    try:
        return sorted(parse_corrections(review.get("corrections")))
    except ValueError:
        return []


def agreement(latest: dict[str, dict], verdicts: list[dict]) -> dict:
    """How the automatic checks' failures line up with the humans' rejections."""
    failed_checks: dict[str, set[str]] = {}
    checks_of: dict[str, set[str]] = {}
    for v in verdicts:
        if v.get("status", "ok") != "ok" or v.get("passed") is None:
            continue
        checks_of.setdefault(v["chain_id"], set()).add(v["check"])
        if not v["passed"]:
            failed_checks.setdefault(v["chain_id"], set()).add(v["check"])
    counts = Counter()
    by_check: dict[str, Counter] = {}
    for chain_id, review in latest.items():
        if chain_id not in checks_of:
            continue
        rejected = review["decision"] == "reject"
        flagged = chain_id in failed_checks
        counts["chains"] += 1
        counts[f"{'rejected' if rejected else 'accepted'}_{'flagged' if flagged else 'unflagged'}"] += 1
        for check in checks_of[chain_id]:
            c = by_check.setdefault(check, Counter())
            hit = check in failed_checks.get(chain_id, set())
            c["flagged"] += hit
            c["rejected"] += rejected
            c["flagged_rejected"] += hit and rejected
    rejected = counts["rejected_flagged"] + counts["rejected_unflagged"]
    flagged = counts["rejected_flagged"] + counts["accepted_flagged"]
    return {
        "chains": counts["chains"],
        "rejected_flagged": counts["rejected_flagged"],
        "rejected_unflagged": counts["rejected_unflagged"],
        "accepted_flagged": counts["accepted_flagged"],
        "accepted_unflagged": counts["accepted_unflagged"],
        "recall": _ratio(counts["rejected_flagged"], rejected),
        "precision": _ratio(counts["rejected_flagged"], flagged),
        "by_check": {k: dict(v) for k, v in sorted(by_check.items())},
    }


def review_summary(run_dir: RunDir) -> dict:
    """The run's review numbers (shape in the module doc); zeros when nothing was reviewed."""
    reviews = run_dir.read_rows("reviews") if run_dir.has_table("reviews") else []
    verdicts = run_dir.read_rows("verdicts", columns=["chain_id", "check", "passed", "status"]) if run_dir.has_table("verdicts") else []
    latest = latest_reviews(reviews)
    accepted = [r for r in latest.values() if r["decision"] == "accept"]
    rejected = [r for r in latest.values() if r["decision"] == "reject"]
    corrected = [r for r in accepted if _corrected_fields(r)]
    lead = [r["lead_time_s"] for r in latest.values() if r.get("lead_time_s") is not None]
    labels = Counter(label for r in latest.values() for label in (r.get("labels") or []) if label)
    return {
        "reviewed": len(latest),
        "accepted": len(accepted),
        "corrected": len(corrected),
        "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(r.get("decision_reason") or "unspecified" for r in rejected).most_common()),
        "thought_labels": dict(labels.most_common()),
        "corrected_fields": dict(Counter(f for r in corrected for f in _corrected_fields(r)).most_common()),
        "failed_reviews": dict(Counter(r["reason"] for r in reviews if r.get("status") != "ok").most_common()),
        "reviewers": dict(Counter(r.get("reviewer") or "unknown" for r in reviews if r.get("status") == "ok").most_common()),
        "lead_time_s": {"median": round(statistics.median(lead), 1), "mean": round(statistics.fmean(lead), 1), "total": round(sum(lead), 1)} if lead else None,
        "agreement": agreement(latest, verdicts),
    }
