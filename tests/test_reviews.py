"""Reviews without a server: applying reviews to chains, annotations -> review rows, the reviews
table, the review numbers, choosing chains with SQL. (The real Label Studio loop: test_review.py.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from annotation.pull import annotation_to_review, merge_reviews, write_reviews
from annotation.push import select_chains
from annotation.summary import review_summary
from annotation.tasks import chain_to_task, frame_range, model_version, seconds_range, video_url, VideoNotServed
from curation.reviews import apply_reviews, boxed_answer
from curation.schemas import CHAINS, to_table
from pipelines.rundir import RunDir
from _review_fixtures import write_verdicts


def make_chain(chain_id: str, n: int = 3, video_path: str = "/videos/a.mp4") -> dict:
    return {
        "chain_id": chain_id,
        "window_id": f"{chain_id}-w",
        "video_id": "v1",
        "video_path": video_path,
        "video_duration_s": 30.0,
        "start_s": 0.0,
        "end_s": 4.0 * n,
        "thoughts": [
            {"clip_id": f"{chain_id}-c{i}", "start_s": 4.0 * i, "end_s": 4.0 * (i + 1), "text": f"thought {i}", "entities": []}
            for i in range(n)
        ],
        "qa": {"type": "multiple_choice", "question": "What is red?", "options": ["A. ball", "B. box"], "answer": "A", "evidence_clip_ids": []},
        "final_answer": "\\boxed{A}",
        "teacher": "t",
        "prompt_versions": {"qa": "1"},
        "cache_keys": [],
        "raw_reply": None,
        "run": "r",
        "status": "ok",
        "reason": None,
        "error": None,
    }


def review(chain_id: str, decision: str, corrections: dict | None = None, **extra) -> dict:
    return {
        "chain_id": chain_id,
        "task_id": 1,
        "annotation_id": extra.pop("annotation_id", 1),
        "reviewer": extra.pop("reviewer", "ann@example.org"),
        "decision": decision,
        "decision_reason": extra.pop("decision_reason", None),
        "corrections": json.dumps(corrections) if corrections else None,
        "labels": extra.pop("labels", []),
        "lead_time_s": extra.pop("lead_time_s", 10.0),
        "reviewed_at": extra.pop("reviewed_at", "2026-01-01T00:00:00+00:00"),
        "status": extra.pop("status", "ok"),
        "reason": extra.pop("reason", None),
        **extra,
    }


# ---- apply_reviews ----------------------------------------------------------------------
def test_apply_reviews_drops_rejected_applies_corrections_and_marks_rows():
    chains = [make_chain("a"), make_chain("b"), make_chain("c"), make_chain("d")]
    fix = {"thoughts": [{"index": 1, "clip_id": "b-c1", "text": "a red ball rolls left"}], "answer": "B", "options": ["A. ball", "B. box", "C. cup"], "question": "What moves?"}
    reviews = [
        review("a", "accept", labels=["ok", "ok", "ok"]),
        review("b", "accept", fix, labels=["ok", "wrong", ""]),
        review("c", "reject", decision_reason="wrong_answer"),
    ]
    out = {row["chain_id"]: row for row in apply_reviews(chains, reviews)}

    assert set(out) == {"a", "b", "d"}  # c rejected
    a, b, d = out["a"], out["b"], out["d"]
    assert a["human_reviewed"] and a["reviewer"] == "ann@example.org" and a["review_corrected"] == []
    assert a["thoughts"] == chains[0]["thoughts"] and a["review_labels"] == ["ok", "ok", "ok"]
    assert b["human_reviewed"] and b["review_decision"] == "accept"
    assert [t["text"] for t in b["thoughts"]] == ["thought 0", "a red ball rolls left", "thought 2"]
    assert b["thoughts"][1]["clip_id"] == "b-c1" and b["thoughts"][1]["start_s"] == 4.0
    assert b["qa"]["question"] == "What moves?" and b["qa"]["answer"] == "B" and b["qa"]["options"] == ["A. ball", "B. box", "C. cup"]
    assert b["final_answer"] == "\\boxed{B}"
    assert sorted(b["review_corrected"]) == ["answer", "options", "question", "thoughts[1]"]
    assert d["human_reviewed"] is False and d["reviewer"] is None and d["thoughts"] == chains[3]["thoughts"]
    # the input rows are untouched
    assert chains[1]["thoughts"][1]["text"] == "thought 1" and chains[1]["qa"]["answer"] == "A"


def test_latest_review_wins_and_failed_reviews_are_ignored():
    chains = [make_chain("a"), make_chain("b")]
    reviews = [
        review("a", "reject", annotation_id=1, reviewed_at="2026-01-01T10:00:00+00:00"),
        review("a", "accept", annotation_id=2, reviewed_at="2026-01-02T10:00:00+00:00", reviewer="late@example.org"),
        review("b", "accept", annotation_id=3, reviewed_at="2026-01-03T10:00:00+00:00"),
        review("b", "reject", annotation_id=4, reviewed_at="2026-01-01T10:00:00+00:00"),  # older
        review("b", "reject", annotation_id=5, reviewed_at="2026-01-09T10:00:00+00:00", status="failed", reason="review_unknown_segment"),
    ]
    out = {row["chain_id"]: row for row in apply_reviews(chains, reviews)}
    assert out["a"]["reviewer"] == "late@example.org"
    assert out["b"]["human_reviewed"] is True  # the failed newer one does not count


def test_stale_review_is_not_applied(caplog):
    chains = [make_chain("a")]
    fix = {"thoughts": [{"index": 0, "clip_id": "some-other-clip", "text": "new"}]}
    with caplog.at_level(logging.WARNING):
        out = apply_reviews(chains, [review("a", "accept", fix)])
    assert out[0]["human_reviewed"] is False and out[0]["thoughts"][0]["text"] == "thought 0"
    assert "some-other-clip" in caplog.text
    out = apply_reviews(chains, [review("a", "accept", {"thoughts": [{"index": 7, "text": "x"}]})])
    assert out[0]["human_reviewed"] is False


def test_boxed_answer_keeps_surrounding_text():
    assert boxed_answer("The answer is \\boxed{A}.", "C") == "The answer is \\boxed{C}."
    assert boxed_answer(None, "12") == "\\boxed{12}"


# ---- before export: corrections re-checked, labels ------------------------------------------------
def test_a_corrected_chain_is_rechecked_by_the_rule_checks():
    from curation.checks import ChecksConfig
    from curation.reviews import recheck_corrected

    cfg = ChecksConfig(checks=["qa", "thoughts"])
    chains = [make_chain("a"), make_chain("b"), make_chain("c")]
    for chain in chains:  # the answer needs the first and the last clip
        chain["qa"]["evidence_clip_ids"] = [chain["thoughts"][0]["clip_id"], chain["thoughts"][-1]["clip_id"]]
    reviews = [review("a", "accept", {"answer": "C"}), review("b", "accept", {"answer": "B"}), review("c", "accept")]
    out = {row["chain_id"]: row for row in apply_reviews(chains, reviews)}
    outside = {v["check"]: v for v in recheck_corrected(out["a"], cfg, None, {})}
    assert outside["qa"]["passed"] is False and outside["qa"]["reason"] == "answer_not_an_option"  # two options, A and B
    fine = {v["check"]: v for v in recheck_corrected(out["b"], cfg, None, {})}
    assert fine["qa"]["passed"] is True and set(fine) == {"qa", "thoughts"}
    assert recheck_corrected(out["c"], cfg, None, {}) == []  # accepted as is: the check stage's verdicts stand


def test_labels_exclude_unless_the_labelled_thought_was_corrected():
    from curation.reviews import label_exclusions

    excluding = {"hallucinated", "leaks_future", "wrong", "not_grounded"}
    chains = [make_chain("a"), make_chain("b"), make_chain("c")]
    fix = {"thoughts": [{"index": 2, "clip_id": "b-c2", "text": "a corrected thought"}]}
    reviews = [
        review("a", "accept", labels=["ok", "leaks_future", "hallucinated"]),
        review("b", "accept", fix, labels=["ok", "ok", "hallucinated"]),  # the label says why thought 2 was corrected
        review("c", "accept", labels=["ok", "", "ok"]),
    ]
    out = {row["chain_id"]: row for row in apply_reviews(chains, reviews)}
    assert label_exclusions(out["a"], excluding) == ["review_label:hallucinated", "review_label:leaks_future"]
    assert label_exclusions(out["a"], {"wrong"}) == []
    assert label_exclusions(out["b"], excluding) == []
    assert label_exclusions(out["c"], excluding) == []


# ---- tasks --------------------------------------------------------------------------------
def test_frames_are_one_based_and_round_trip():
    assert frame_range(0.0, 4.0, 25.0) == (1, 100)
    assert frame_range(4.0, 8.2, 25.0) == (101, 205)
    assert seconds_range(*frame_range(4.0, 8.2, 25.0), 25.0) == (4.0, 8.2)
    first, last = frame_range(1.001, 2.002, 29.97002997)
    assert (first, last) == (31, 60)


def test_task_urls_and_predictions(tmp_path):
    served = tmp_path / "served"
    video = served / "set1" / "a.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\0")
    chain = make_chain("a", video_path=str(video))
    task = chain_to_task(chain, 25.0, served)
    assert task["data"]["video"] == "/data/local-files/?d=set1/a.mp4" and task["data"]["fps"] == 25.0
    assert [s["start"] for s in task["data"]["segments"]] == [1, 101, 201]
    prediction = task["predictions"][0]
    assert prediction["model_version"] == model_version(chain) == "t|qa=1"
    regions = [r for r in prediction["result"] if r["from_name"] == "clips"]
    thoughts = [r for r in prediction["result"] if r["from_name"] == "thought"]
    assert [r["value"]["ranges"] for r in regions] == [[{"start": 1, "end": 100}], [{"start": 101, "end": 200}], [{"start": 201, "end": 300}]]
    assert [(t["id"], t["value"]["text"]) for t in thoughts] == [("seg0", ["thought 0"]), ("seg1", ["thought 1"]), ("seg2", ["thought 2"])]

    with pytest.raises(VideoNotServed, match="outside"):
        video_url("/elsewhere/b.mp4", served)
    (served / "top.mp4").write_bytes(b"\0")
    with pytest.raises(VideoNotServed, match="sub-folders"):
        video_url(str(served / "top.mp4"), served)
    with pytest.raises(VideoNotServed, match="does not exist"):
        video_url(str(served / "set1" / "missing.mp4"), served)


# ---- annotations -> review rows -----------------------------------------------------------
def _task(tmp_path: Path, chain: dict) -> dict:
    video = tmp_path / "served" / "set1" / "a.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\0")
    chain = {**chain, "video_path": str(video)}
    return {"id": 11, **chain_to_task(chain, 25.0, tmp_path / "served")}


def _annotation(task: dict, decision: str | None, edits: dict | None = None, extra: list | None = None, **fields) -> dict:
    result = [dict(r, value=dict(r["value"])) for r in task["predictions"][0]["result"]]
    for r in result:
        if r["from_name"] == "thought" and edits and r["id"] in edits:
            r["value"]["text"] = [edits[r["id"]]]
    if decision:
        result.append({"id": "d", "from_name": "decision", "to_name": "video", "type": "choices", "value": {"choices": [decision]}})
    return {"id": 21, "result": result + (extra or []), "lead_time": 33.0, "updated_at": "2026-11-24T10:00:00Z", **fields}


def test_annotation_to_review_matches_segments_by_id_then_by_frames(tmp_path):
    chain = make_chain("a")
    task = _task(tmp_path, chain)
    # The editor gave the second region a new id: it is matched by its frame range instead.
    ann = _annotation(task, "accept", {"seg0": "first, corrected"})
    for r in ann["result"]:
        if r["id"] == "seg1":
            r["id"] = "Xy12"
            if r["from_name"] == "thought":
                r["value"]["text"] = ["second, corrected"]
    ann["result"].append({"id": "seg2", "from_name": "thought_label", "to_name": "video", "type": "choices", "value": {"choices": ["hallucinated"]}})
    row = annotation_to_review(task, ann, "ann@example.org", chain, 5, "r")
    assert row["status"] == "ok" and row["decision"] == "accept" and row["reviewer"] == "ann@example.org"
    assert json.loads(row["corrections"]) == {
        "thoughts": [{"index": 0, "clip_id": "a-c0", "text": "first, corrected"}, {"index": 1, "clip_id": "a-c1", "text": "second, corrected"}]
    }
    assert row["labels"] == ["", "", "hallucinated"]
    assert row["lead_time_s"] == 33.0 and row["reviewed_at"] == "2026-11-24T10:00:00Z" and row["task_id"] == 11
    assert json.loads(row["raw_result"]) == ann["result"]


def test_annotation_faults_become_failed_rows_that_keep_the_annotation(tmp_path):
    chain = make_chain("a")
    task = _task(tmp_path, chain)
    orphan = {"id": "zz9", "from_name": "thought", "to_name": "video", "type": "textarea", "value": {"ranges": [{"start": 900, "end": 950}], "text": ["about a clip that is gone"]}}

    row = annotation_to_review(task, _annotation(task, "accept", extra=[orphan]), "x", chain, 5, "r")
    assert (row["status"], row["reason"]) == ("failed", "review_unknown_segment")
    assert "frames 900-950" in row["error"] and "about a clip that is gone" in row["raw_result"]
    # a rejection needs no segment: it stays usable
    row = annotation_to_review(task, _annotation(task, "reject", extra=[orphan]), "x", chain, 5, "r")
    assert row["status"] == "ok" and row["decision"] == "reject" and row["decision_reason"] == "unspecified"

    row = annotation_to_review(task, _annotation(task, None), "x", chain, 5, "r")
    assert (row["status"], row["reason"]) == ("failed", "review_no_decision")
    row = annotation_to_review(task, _annotation(task, "accept", was_cancelled=True), "x", chain, 5, "r")
    assert (row["status"], row["reason"]) == ("failed", "review_skipped")
    # the chain in the run changed since the push: its clip 0 is another clip now
    changed = make_chain("a")
    changed["thoughts"][0]["clip_id"] = "a-new"
    row = annotation_to_review(task, _annotation(task, "accept", {"seg0": "fixed"}), "x", changed, 5, "r")
    assert (row["status"], row["reason"]) == ("failed", "review_stale")


# ---- the reviews table and the numbers ------------------------------------------------------
def test_write_reviews_is_idempotent_and_merge_keeps_reviews_gone_from_label_studio(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    rows = [review("a", "accept", annotation_id=1, project_id=1, run="run"), review("b", "reject", annotation_id=2, project_id=1, run="run")]
    first = write_reviews(run_dir, rows)
    assert first["rows"] == 2 and first["parts_written"] == 1
    second = write_reviews(run_dir, rows)
    assert second["parts_written"] == 0 and second["parts_removed"] == 0
    assert len(run_dir.read_rows("reviews")) == 2

    # annotation 2's task was deleted in the UI; annotation 1 was updated: 2 is kept, 1 replaced
    updated = review("a", "reject", annotation_id=1, project_id=1, run="run", decision_reason="other")
    merged, kept = merge_reviews(run_dir.read_rows("reviews"), [updated])
    assert kept == 1
    third = write_reviews(run_dir, merged)
    assert third["parts_written"] == 1 and third["parts_removed"] == 1
    by_annotation = {r["annotation_id"]: r for r in run_dir.read_rows("reviews")}
    assert set(by_annotation) == {1, 2} and by_annotation[1]["decision_reason"] == "other"


def test_review_summary_counts_and_agreement_with_checks(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    fix = json.dumps({"answer": "B"})
    rows = [
        review("a", "accept", annotation_id=1, labels=["ok", "ok"], lead_time_s=10.0),
        review("b", "accept", annotation_id=2, corrections=fix, labels=["ok", "hallucinated"], lead_time_s=20.0),
        review("c", "reject", annotation_id=3, decision_reason="wrong_answer", lead_time_s=30.0),
        review("d", "reject", annotation_id=4, decision_reason="leaks_future", lead_time_s=40.0),
        review("e", None, annotation_id=5, status="failed", reason="review_no_decision"),
    ]
    rows[1]["corrections"] = fix
    write_reviews(run_dir, rows)
    write_verdicts(
        run_dir,
        [
            {"chain_id": "a", "check": "causality", "passed": True},
            {"chain_id": "b", "check": "causality", "passed": False},
            {"chain_id": "c", "check": "causality", "passed": False},
            {"chain_id": "c", "check": "grounding", "passed": False},
            {"chain_id": "d", "check": "causality", "passed": True},
        ],
    )
    s = review_summary(run_dir)
    assert (s["reviewed"], s["accepted"], s["corrected"], s["rejected"]) == (4, 2, 1, 2)
    assert s["rejected_by_reason"] == {"wrong_answer": 1, "leaks_future": 1}
    assert s["thought_labels"] == {"ok": 3, "hallucinated": 1}
    assert s["corrected_fields"] == {"answer": 1}
    assert s["failed_reviews"] == {"review_no_decision": 1}
    assert s["lead_time_s"] == {"median": 25.0, "mean": 25.0, "total": 100.0}
    ag = s["agreement"]
    assert (ag["chains"], ag["rejected_flagged"], ag["rejected_unflagged"], ag["accepted_flagged"], ag["accepted_unflagged"]) == (4, 1, 1, 1, 1)
    assert ag["recall"] == 0.5 and ag["precision"] == 0.5
    assert ag["by_check"]["causality"] == {"flagged": 2, "rejected": 2, "flagged_rejected": 1}
    assert ag["by_check"]["grounding"] == {"flagged": 1, "rejected": 1, "flagged_rejected": 1}

    empty = review_summary(RunDir(tmp_path / "nothing"))
    assert empty["reviewed"] == 0 and empty["lead_time_s"] is None and empty["agreement"]["recall"] is None


def test_select_chains_with_sql_and_a_seeded_sample(tmp_path):
    run_dir = RunDir(tmp_path / "run")
    chains = [make_chain(f"c{i:02d}", n=2 + i % 3) for i in range(12)]
    chains[3]["status"] = "failed"
    run_dir.write_part("chains", "part-00000-x", to_table(chains, CHAINS))
    assert len(select_chains(run_dir)) == 11
    long = select_chains(run_dir, where="len(thoughts) = 4")
    assert [c["chain_id"] for c in long] == ["c02", "c05", "c08", "c11"]
    first = [c["chain_id"] for c in select_chains(run_dir, sample=4, seed=3)]
    assert first == [c["chain_id"] for c in select_chains(run_dir, sample=4, seed=3)] and len(first) == 4
    assert first != [c["chain_id"] for c in select_chains(run_dir, sample=4, seed=4)]
    from annotation.client import ReviewError

    with pytest.raises(ReviewError, match="not a valid predicate"):
        select_chains(run_dir, where="no_such_column = 1")
    with pytest.raises(ReviewError, match="no chains table"):
        select_chains(RunDir(tmp_path / "empty"))
