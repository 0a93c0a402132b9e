"""Label Studio annotations -> `reviews` rows (curation.schemas.REVIEWS), written idempotently.

One row per annotation. The annotation's per-segment results are matched to the chain's thoughts
through the segments recorded in the task at push time: by region id first (`seg<i>`), then by
frame range (the editor may give a region a new id). Nothing a reviewer wrote is dropped: the
annotation as Label Studio gave it is kept in `raw_result`, and an annotation that cannot be
turned into a review (no decision, a segment that no longer exists, corrections that no longer
fit the chain) is written with status "failed" and a reason, which `apply_reviews` ignores.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from annotation.client import Connection, ReviewError
from annotation.push import call, find_project, project_title
from curation.reviews import DECISIONS, StaleReview, correct_chain
from curation.schemas import REVIEWS, to_table
from pipelines.rundir import RunDir

FRAME_TOLERANCE = 1  # a region nudged by one frame in the editor is still the same segment
PART_SIZE = 1000


class UnknownSegment(ValueError):
    """A per-segment result on a timeline region that matches none of the task's segments."""


def _choice(result: list[dict], name: str) -> str | None:
    for item in result:
        if item.get("from_name") == name and item.get("type") == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            return choices[0] if choices else None
    return None


def _text(result: list[dict], name: str) -> str | None:
    for item in result:
        if item.get("from_name") == name and item.get("type") == "textarea":
            return "\n".join((item.get("value") or {}).get("text") or [])
    return None


def _region_ranges(result: list[dict]) -> dict[str, list[dict]]:
    """Timeline region id -> its frame ranges."""
    return {item["id"]: (item.get("value") or {}).get("ranges") or [] for item in result if item.get("from_name") == "clips" and item.get("id")}


def match_segment(item: dict, segments: list[dict], regions: dict[str, list[dict]]) -> dict:
    """The pushed segment a per-region result belongs to, or UnknownSegment."""
    by_id = {seg["id"]: seg for seg in segments}
    region_id = item.get("id")
    if region_id in by_id:
        return by_id[region_id]
    ranges = (item.get("value") or {}).get("ranges") or regions.get(region_id) or []
    for r in ranges:
        for seg in segments:
            if abs(int(r["start"]) - seg["start"]) <= FRAME_TOLERANCE and abs(int(r["end"]) - seg["end"]) <= FRAME_TOLERANCE:
                return seg
    where = f"frames {ranges[0]['start']}-{ranges[0]['end']}" if ranges else "no frame range"
    raise UnknownSegment(f"region {region_id} ({where}) matches none of the task's {len(segments)} segments")


def per_segment(result: list[dict], segments: list[dict]) -> tuple[dict[int, str], dict[int, str]]:
    """Corrected thought texts and labels by thought index (UnknownSegment if one is orphaned)."""
    regions = _region_ranges(result)
    texts: dict[int, str] = {}
    labels: dict[int, str] = {}
    for item in result:
        name = item.get("from_name")
        if name not in ("thought", "thought_label"):
            continue
        value = item.get("value") or {}
        if name == "thought":
            text = "\n".join(value.get("text") or []).strip()
            if not text:
                continue
            texts[match_segment(item, segments, regions)["index"]] = text
        else:
            choices = value.get("choices") or []
            if choices:
                labels[match_segment(item, segments, regions)["index"]] = choices[0]
    return texts, labels


def corrections_of(result: list[dict], data: dict) -> tuple[dict, list[str]]:
    """What the reviewer changed against what was pushed, and the per-thought labels."""
    segments = data.get("segments") or []
    texts, labels = per_segment(result, segments)
    corrections: dict = {}
    thought_fixes = [
        {"index": seg["index"], "clip_id": seg.get("clip_id"), "text": texts[seg["index"]]}
        for seg in segments
        if seg["index"] in texts and texts[seg["index"]] != (seg.get("text") or "").strip()
    ]
    if thought_fixes:
        corrections["thoughts"] = thought_fixes
    for field in ("question", "answer"):
        text = _text(result, field)
        if text is not None and text.strip() and text.strip() != (data.get(field) or "").strip():
            corrections[field] = text.strip()
    options = _text(result, "options")
    if options is not None:
        new = [line.strip() for line in options.splitlines() if line.strip()]
        old = [line.strip() for line in (data.get("options") or "").splitlines() if line.strip()]
        if new and new != old:
            corrections["options"] = new
    return corrections, [labels.get(seg["index"], "") for seg in segments]


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def annotation_to_review(task: dict, annotation: dict, reviewer: str | None, chain: dict | None, project_id: int | None, run: str) -> dict:
    """One REVIEWS row for one annotation of one task (status failed + reason when unusable)."""
    data = task.get("data") or {}
    result = annotation.get("result") or []
    row = {
        "chain_id": data.get("chain_id"),
        "task_id": task.get("id"),
        "annotation_id": annotation.get("id"),
        "reviewer": reviewer,
        "decision": None,
        "decision_reason": None,
        "comment": (_text(result, "comment") or "").strip() or None,
        "corrections": None,
        "labels": [],
        "lead_time_s": annotation.get("lead_time"),
        "reviewed_at": _iso(annotation.get("updated_at") or annotation.get("created_at")),
        "project_id": project_id,
        "raw_result": json.dumps(result, sort_keys=True, ensure_ascii=False),
        "run": run,
        "status": "ok",
        "reason": None,
        "error": None,
    }

    def failed(reason: str, error: str) -> dict:
        return row | {"status": "failed", "reason": reason, "error": f"task {task.get('id')} annotation {annotation.get('id')} (chain {row['chain_id']}): {error}"}

    if not row["chain_id"]:
        return failed("review_task_not_a_chain", "the task has no chain_id in its data (not pushed by vstw)")
    if annotation.get("was_cancelled"):
        return failed("review_skipped", "the reviewer skipped the task")
    decision = _choice(result, "decision")
    row["decision"] = decision
    if decision not in DECISIONS:
        return failed("review_no_decision", f"no accept/reject decision (got {decision!r})")
    if decision == "reject":
        row["decision_reason"] = _choice(result, "reject_reason") or "unspecified"
    try:
        corrections, labels = corrections_of(result, data)
    except UnknownSegment as err:
        if decision == "reject":  # a rejection needs no segment: keep it usable
            return row | {"labels": []}
        return failed("review_unknown_segment", str(err))
    row["labels"] = labels
    row["corrections"] = json.dumps(corrections, sort_keys=True, ensure_ascii=False) if corrections else None
    if chain is not None and decision == "accept" and corrections:
        try:
            correct_chain(chain, corrections)
        except StaleReview as err:
            return failed("review_stale", f"the chain changed since it was pushed: {err}")
    return row


# ---- the reviews table ------------------------------------------------------------------
def _review_key(row: dict) -> tuple:
    return (row.get("project_id") or 0, row.get("annotation_id") or 0)


def merge_reviews(existing: list[dict], pulled: list[dict]) -> tuple[list[dict], int]:
    """Pulled rows replace earlier rows of the same annotation; earlier rows of annotations no
    longer in Label Studio (task deleted in the UI) are kept. Returns (rows, kept count)."""
    merged = {_review_key(r): r for r in existing}
    pulled_keys = {_review_key(r) for r in pulled}
    kept = sum(1 for key in merged if key not in pulled_keys)
    merged.update({_review_key(r): r for r in pulled})
    return sorted(merged.values(), key=_review_key), kept


def write_reviews(run_dir: RunDir, rows: list[dict]) -> dict:
    """Write the reviews table as content-named parts: the same rows give the same parts (an
    unchanged pull writes nothing), new parts are in place before stale ones are removed."""
    schema_names = set(REVIEWS.names)
    rows = [{k: v for k, v in r.items() if k in schema_names} for r in sorted(rows, key=_review_key)]
    wanted: dict[str, list[dict]] = {}
    for start in range(0, len(rows), PART_SIZE):
        chunk = rows[start : start + PART_SIZE]
        digest = hashlib.sha1(json.dumps(chunk, sort_keys=True, default=str).encode()).hexdigest()[:10]
        wanted[f"part-{start // PART_SIZE:05d}-{digest}"] = chunk
    if not wanted:  # an empty table is still a readable table
        wanted["part-00000-empty"] = []
    existing = run_dir.existing_parts("reviews")
    written = 0
    for name, chunk in wanted.items():
        if name not in existing:
            run_dir.write_part("reviews", name, to_table(chunk, REVIEWS))
            written += 1
    removed = run_dir.remove_stale_parts("reviews", set(wanted))
    return {"rows": len(rows), "parts": len(wanted), "parts_written": written, "parts_removed": len(removed)}


# ---- pulling from Label Studio ----------------------------------------------------------
def pull_reviews(conn: Connection, run_dir: RunDir, title: str | None = None) -> dict:
    """Export the run's project annotations into its reviews table; returns a summary."""
    title = title or project_title(run_dir.name)
    project_id = find_project(conn, title)
    if project_id is None:
        raise ReviewError(f"no Label Studio project {title!r} at {conn.url}: push chains first (`vstw review push {run_dir.name}`)")
    # The task list carries the annotations: no export snapshot piles up on the server.
    listed = call(conn, f"listing tasks of project {project_id}", lambda: list(conn.client.tasks.list(project=project_id, fields="all")))
    tasks = [{"id": t.id, "data": t.data or {}, "annotations": t.annotations or []} for t in listed]
    users = call(conn, "listing users", lambda: {u.id: u.email for u in conn.client.users.list()})
    chains = {c["chain_id"]: c for c in run_dir.read_rows("chains")} if run_dir.has_table("chains") else {}

    pulled = []
    for task in tasks:
        for annotation in task.get("annotations") or []:
            who = annotation.get("completed_by")
            reviewer = who.get("email") if isinstance(who, dict) else users.get(who, str(who) if who is not None else None)
            chain = chains.get((task.get("data") or {}).get("chain_id"))
            pulled.append(annotation_to_review(task, annotation, reviewer, chain, project_id, run_dir.name))
    existing = run_dir.read_rows("reviews") if run_dir.has_table("reviews") else []
    rows, kept = merge_reviews(existing, pulled)
    written = write_reviews(run_dir, rows)
    failed: dict[str, int] = {}
    for row in pulled:
        if row["status"] != "ok":
            failed[row["reason"]] = failed.get(row["reason"], 0) + 1
    return {
        "project_id": project_id,
        "tasks": len(tasks),
        "annotations": len(pulled),
        "ok": sum(r["status"] == "ok" for r in pulled),
        "failed_by_reason": failed,
        "failed_messages": [r["error"] for r in pulled if r["status"] != "ok"],
        "kept_from_earlier_pulls": kept,
        "not_in_run": sum(1 for r in pulled if r["chain_id"] and r["chain_id"] not in chains),
        **written,
    }
