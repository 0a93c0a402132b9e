"""Answer verification (stage `verify`, curation/verify.py): template answers recomputed from the
window graph, teacher-written answers re-asked k times of a (fake) teacher that answers the
answer.v1 prompt from the clip descriptions, right or wrong on purpose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _teacher_fixtures import COLOUR_SHAPE, FakeTeacherServer, default_reply, synthetic_manifest
from curation.graph import template_questions
from curation.schemas import TABLES, VERDICTS, to_table
from curation.verify import (
    agreement,
    attempt_order,
    caption_answer,
    map_back,
    needed,
    normalize_answer,
    recompute_template,
    same_answer,
)
from pipelines.recipe import RecipeError, load_recipe, parse_recipe
from pipelines.rundir import RunDir
from pipelines.run import run_recipe
from pipelines.stage import StageContext
from pipelines.stages import ORDER, REGISTRY
from pipelines.stages.verify import VerifyParams, verify_batch

PROJECT = Path(__file__).resolve().parents[1]
WINDOW = "v1-w000"
CAPTIONS = [
    "Scene 1: a plain navy background. A red circle appears and moves left.",
    "Scene 2: a plain olive background. A red circle appears and moves left. A blue square appears and moves up.",
    "Scene 3: a plain teal background. A green triangle appears and moves down. The red circle disappears.",
]
ENTITIES = [
    {"entity_id": "e1", "name": "red circle", "type": "object", "attributes": ["red"], "clip_ids": ["v1-c0000", "v1-c0001"], "first_clip_id": "v1-c0000", "first_seen_s": 0.0},
    {"entity_id": "e2", "name": "blue square", "type": "object", "attributes": ["blue"], "clip_ids": ["v1-c0001"], "first_clip_id": "v1-c0001", "first_seen_s": 4.0},
    {"entity_id": "e3", "name": "green triangle", "type": "object", "attributes": ["green"], "clip_ids": ["v1-c0002"], "first_clip_id": "v1-c0002", "first_seen_s": 8.0},
]  # fmt: skip
MC = {"type": "multiple_choice", "question": "Which shape appeared first in the video?", "options": ["A. blue square", "B. red circle", "C. green triangle"],
      "answer": "B", "evidence_clip_ids": ["v1-c0000", "v1-c0001"]}  # fmt: skip
COUNT = {"type": "numerical", "question": "How many different shapes were seen in the video?", "options": [], "answer": "3", "evidence_clip_ids": ["v1-c0000", "v1-c0002"]}
YES_NO = {"type": "yes_no", "question": "Did the blue square appear before the green triangle?", "options": [], "answer": "Yes", "evidence_clip_ids": ["v1-c0001", "v1-c0002"]}


# ---- a teacher that answers the answer.v1 prompt from the descriptions ------------------------
def _user(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def parse_answer_prompt(text: str) -> dict | None:
    if "Clips of the video, in time order:" not in text:
        return None
    clips = re.findall(r"^- [\d.]+-[\d.]+ s: (.*)$", text, flags=re.MULTILINE)
    question = re.search(r"^Question \(asked at [\d.]+ s\): (.*)$", text, flags=re.MULTILINE).group(1)
    options = re.findall(r"^([A-E])\. (.*)$", text, flags=re.MULTILINE)
    kind = "multiple_choice" if "Answer with the letter" in text else "numerical" if "Answer with a number" in text else "yes_no"
    attempt = re.search(r"attempt (\d+) of (\d+)", text)
    return {"clips": clips, "question": question, "options": [o for _, o in options], "type": kind, "attempt": int(attempt.group(1)), "k": int(attempt.group(2))}


def _first(name: str, clips: list[str]) -> int:
    return next((i for i, c in enumerate(clips) if name in c.lower()), 1 << 30)


def oracle(p: dict) -> str:
    """The right answer from the descriptions (what a faithful teacher says)."""
    if p["type"] == "multiple_choice":
        firsts = [_first(o, p["clips"]) for o in p["options"]]
        return "ABCDE"[firsts.index(min(firsts))]
    if p["type"] == "numerical":
        return str(len({" ".join(m) for c in p["clips"] for m in COLOUR_SHAPE.findall(c.lower())}))
    x, y = re.search(r"(?:Did|Was) the (.+) (?:appear|seen) before the (.+)\?", p["question"]).groups()
    return "Yes" if _first(x, p["clips"]) < _first(y, p["clips"]) else "No"


def wrong(p: dict) -> str:
    right = oracle(p)
    if p["type"] == "multiple_choice":
        return next(letter for letter in "ABCDE"[: len(p["options"])] if letter != right)
    if p["type"] == "numerical":
        return str(int(right) + 2)
    return "No" if right == "Yes" else "Yes"


def teacher(answer) -> callable:
    """A FakeTeacherServer reply: `answer(parsed prompt)` for answer.v1 prompts, defaults else."""

    def reply(body: dict) -> str:
        p = parse_answer_prompt(_user(body))
        return json.dumps({"answer": answer(p)}) if p else default_reply(body)

    return reply


def record(qa: dict, template: str = "teacher", chain_id: str = "ch-00000000000000aa", captions=CAPTIONS, entities=ENTITIES, details: dict | None = None) -> dict:
    clips = [{"clip_id": f"v1-c{i:04d}", "start_s": 4.0 * i, "end_s": 4.0 * (i + 1), "caption": c} for i, c in enumerate(captions)]
    chain = {"chain_id": chain_id, "question_id": "q-" + chain_id, "window_id": WINDOW, "video_id": "v1", "start_s": 0.0, "end_s": 12.0,
             "qa": qa, "qa_template": template, "status": "ok"}  # fmt: skip
    return {"chain_id": chain_id, "chain": chain, "details": json.dumps(details or {}), "entities": entities, "clips": clips}


def context(tmp_path: Path, base_url: str | None) -> StageContext:
    recipe = {}
    if base_url:
        recipe["teacher"] = {"text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
                             "timeout_s": 2.0, "max_retries": 1, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "concurrency": 4}  # fmt: skip
    return StageContext(run="t", run_root=str(tmp_path / "run"), project_root=PROJECT, recipe=recipe)


def verify(records: list[dict], ctx: StageContext, **params) -> list[dict]:
    rows = verify_batch(records, VerifyParams(**params), ctx)
    to_table(rows, VERDICTS)  # every row fits the table
    return rows


def details(row: dict) -> dict:
    return json.loads(row["details"])


def bodies_of(server: FakeTeacherServer, needle: str) -> list[str]:
    return [_user(b) for b in server.bodies if needle in _user(b)]


# ---- teacher-written questions -------------------------------------------------------------------
def test_right_answers_pass_and_each_chain_sends_k_distinct_requests(tmp_path):
    records = [record(MC, chain_id="ch-mc"), record(COUNT, chain_id="ch-count"), record(YES_NO, chain_id="ch-yn")]
    with FakeTeacherServer(reply=teacher(oracle)) as server:
        rows = verify(records, context(tmp_path, server.base_url))
        bodies = [json.dumps(b["messages"]) for b in server.bodies]
    assert [r["chain_id"] for r in rows] == ["ch-mc", "ch-count", "ch-yn"]
    for row, want in zip(rows, ["B", "3", "Yes"]):
        assert (row["check"], row["passed"], row["status"], row["reason"], row["score"]) == ("answer", True, "ok", None, 1.0)
        assert details(row)["answers"] == [want] * 3 and details(row)["agreement"] == 1.0 and details(row)["method"] == "teacher"
    # 3 chains x 3 attempts, every request different (else the cache/coalescing answers once)
    assert server.requests == 9 and len(set(bodies)) == 9
    usage = RunDir(tmp_path / "run").read_rows("teacher_usage")
    assert sorted(u["item_id"] for u in usage) == sorted(f"{c}/{k}" for c in ("ch-mc", "ch-count", "ch-yn") for k in range(3))
    assert {u["stage"] for u in usage} == {"verify"} and all(u["prompt_version"] == "answer.v1" for u in usage)


def test_a_wrong_proposed_answer_fails_and_the_teacher_never_sees_it(tmp_path):
    bad = {**COUNT, "answer": "7"}
    with FakeTeacherServer(reply=teacher(oracle)) as server:
        [row] = verify([record(bad)], context(tmp_path, server.base_url))
        prompts = bodies_of(server, "Clips of the video")
    assert (row["passed"], row["status"], row["reason"]) == (False, "ok", "answer_disagrees_teacher")
    assert details(row)["answers"] == ["3", "3", "3"] and details(row)["agreement"] == 0.0 and row["score"] == 0.0
    assert len(prompts) == 3 and not any("7" in p for p in prompts)


def test_one_disagreeing_answer_of_three_still_passes_two_do_not(tmp_path):
    def one_off(p):
        return wrong(p) if p["attempt"] == 2 else oracle(p)

    def two_off(p):
        return wrong(p) if p["attempt"] >= 2 else oracle(p)

    with FakeTeacherServer(reply=teacher(one_off)) as server:
        [row] = verify([record(YES_NO)], context(tmp_path / "a", server.base_url))
    assert row["passed"] is True and details(row)["answers"] == ["Yes", "No", "Yes"] and row["score"] == pytest.approx(2 / 3)
    with FakeTeacherServer(reply=teacher(two_off)) as server:
        [row] = verify([record(YES_NO)], context(tmp_path / "b", server.base_url))
    assert row["passed"] is False and row["reason"] == "answer_disagrees_teacher" and details(row)["needed"] == 2
    with FakeTeacherServer(reply=teacher(two_off)) as server:  # 5 samples at 0.6: 3 must agree; 1 of 5 does
        [row] = verify([record(YES_NO)], context(tmp_path / "c", server.base_url), samples=5)
    assert row["passed"] is False and details(row)["needed"] == 3 and server.requests == 5


def test_multiple_choice_options_are_reordered_per_attempt_and_letters_mapped_back(tmp_path):
    with FakeTeacherServer(reply=teacher(oracle)) as server:
        [row] = verify([record(MC)], context(tmp_path / "a", server.base_url))
        shown = [tuple(parse_answer_prompt(p)["options"]) for p in bodies_of(server, "Clips of the video")]
    assert len(set(shown)) == 3 and ("blue square", "red circle", "green triangle") in shown  # attempt 0: the stored order
    replies = details(row)["replies"]
    assert row["passed"] is True and details(row)["answers"] == ["B", "B", "B"]
    # the teacher replied with different letters (each in its attempt's order), all meaning "red circle"
    assert len(set(replies)) > 1 and all(s[" ABCDE".index(r) - 1] == "red circle" for s, r in zip(shown, replies))

    # A teacher that always picks the first position cannot agree with itself across orders.
    with FakeTeacherServer(reply=teacher(lambda p: "A")) as server:
        [row] = verify([record(MC)], context(tmp_path / "b", server.base_url))
    assert row["passed"] is False and row["reason"] == "answer_disagrees_teacher" and len(set(details(row)["answers"])) == 3
    # Replies naming the option's text instead of its letter are read too.
    with FakeTeacherServer(reply=teacher(lambda p: "The answer is " + p["options"]["ABCDE".index(oracle(p))])) as server:
        [row] = verify([record(MC)], context(tmp_path / "c", server.base_url))
    assert row["passed"] is True and details(row)["answers"] == ["B", "B", "B"]


def test_a_rerun_is_answered_from_the_cache(tmp_path):
    records = [record(MC, chain_id="ch-mc"), record(YES_NO, chain_id="ch-yn")]
    with FakeTeacherServer(reply=teacher(oracle)) as server:
        ctx = context(tmp_path, server.base_url)
        first = verify(records, ctx)
        sent = server.requests
        again = verify(records, ctx)
        assert sent == 6 and server.requests == sent
    assert first == again
    usage = RunDir(tmp_path / "run").read_rows("teacher_usage")
    assert sum(u["cached"] for u in usage) >= 6


def test_failing_teacher_gives_a_not_run_row_and_unreadable_replies_are_unverifiable(tmp_path):
    broken = [c + " [[fault:400:99]]" for c in CAPTIONS]
    with FakeTeacherServer(reply=teacher(oracle)) as server:
        [row] = verify([record(YES_NO, captions=broken)], context(tmp_path / "a", server.base_url))
    assert (row["passed"], row["status"], row["reason"], row["score"]) == (None, "failed", "teacher_request_rejected", None)
    assert row["error"] and details(row)["failed_attempts"] == ["teacher_request_rejected"] * 3

    with FakeTeacherServer(reply=teacher(lambda p: "maybe")) as server:
        [row] = verify([record(YES_NO)], context(tmp_path / "b", server.base_url))
        assert server.requests == 6  # each attempt: the reply and one repair request
    assert (row["passed"], row["status"], row["reason"]) == (False, "ok", "answer_unverifiable")

    [row] = verify([record(YES_NO)], context(tmp_path / "c", None))  # no teacher section at all
    assert (row["passed"], row["status"], row["reason"]) == (None, "failed", "teacher_config_error")


# ---- template questions ------------------------------------------------------------------------
def test_template_answers_are_recomputed_from_the_window_graph(tmp_path):
    questions = template_questions(ENTITIES, seed=WINDOW)
    assert {q.template for q in questions} == {"count_entities", "first_appearance", "appeared_before"}
    good, tampered = [], []
    for q in questions:
        qa = {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer, "evidence_clip_ids": q.evidence_clip_ids}
        good.append(record(qa, q.template, chain_id=f"ch-{q.template}", details=q.details))
        if q.type == "numerical":
            bad = str(int(q.answer) + 1)
        elif q.type == "yes_no":
            bad = "No" if q.answer == "Yes" else "Yes"
        else:
            bad = next(letter for letter in "ABCD"[: len(q.options)] if letter != q.answer)
        tampered.append(record({**qa, "answer": bad}, q.template, chain_id=f"ch-bad-{q.template}", details=q.details))
    rows = verify(good + tampered, context(tmp_path, None))  # no teacher needed (none configured)
    for row in rows[:3]:
        assert row["passed"] is True and details(row)["method"] == "template", row
    for row in rows[3:]:
        assert (row["passed"], row["status"], row["reason"]) == (False, "ok", "answer_disagrees_graph"), row
        assert details(row)["recomputed"] != details(row)["proposed"]


def test_template_order_answer_is_checked_against_the_captions(tmp_path):
    """A graph whose teacher missed the red circle in clip 0: the graph's answer (blue square
    first) is recomputed alike, but the captions name the red circle first."""
    wrong_graph = [{**ENTITIES[1], "first_clip_id": "v1-c0000", "first_seen_s": 0.0}, {**ENTITIES[0], "first_clip_id": "v1-c0001", "first_seen_s": 4.0}]
    captions = [CAPTIONS[0] + " A blue square appears.", CAPTIONS[1], CAPTIONS[2]]
    qa = {"type": "multiple_choice", "question": "Which of these appeared first in the video?", "options": ["A. red circle", "B. blue square"], "answer": "B",
          "evidence_clip_ids": ["v1-c0000", "v1-c0001"]}  # fmt: skip
    [row] = verify([record(qa, "first_appearance", entities=wrong_graph, captions=CAPTIONS)], context(tmp_path, None))
    assert row["reason"] == "answer_disagrees_captions" and details(row)["recomputed"] == "B" and details(row)["from_captions"] == "A"
    # named in the same clip: the captions cannot order them, and the graph's answer stands
    [row] = verify([record(qa, "first_appearance", entities=wrong_graph, captions=captions)], context(tmp_path, None))
    assert row["passed"] is True
    [row] = verify([record(qa, "first_appearance", entities=wrong_graph, captions=CAPTIONS)], context(tmp_path, None), captions=False)
    assert row["passed"] is True


# ---- the pure rules ------------------------------------------------------------------------------
def test_normalisation_and_agreement_rules():
    opts = ["blue square", "red circle"]
    for text, want in [("B", "B"), ("b.", "B"), ("(B)", "B"), ("B. red circle", "B"), ("\\boxed{B}", "B"), ("The answer is B", "B"),
                       ("Option B", "B"), ("red circle", "B"), ("The red circle.", "B"), ("C", None), ("circle", None)]:  # fmt: skip
        assert normalize_answer(text, "multiple_choice", opts) == want, text
    for text, want in [("3", "3"), ("3.0", "3"), ("three", "3"), ("3 shapes", "3"), ("2 or 3", None), ("many", None)]:
        assert normalize_answer(text, "numerical") == want, text
    for text, want in [("yes", "Yes"), ("NO.", "No"), ("Yes, it did.", "Yes"), ("maybe", None)]:
        assert normalize_answer(text, "yes_no") == want, text
    assert same_answer("3", "3.0", "numerical") and not same_answer("3", "4", "numerical") and same_answer("yes", "Yes", "yes_no")
    assert (needed(3, 0.6), needed(5, 0.6), needed(4, 0.6), needed(1, 0.6)) == (2, 3, 3, 1)

    orders = [attempt_order(4, "s", k) for k in range(4)]
    assert orders[0] == [0, 1, 2, 3] and orders == [attempt_order(4, "s", k) for k in range(4)] and orders != [attempt_order(4, "t", k) for k in range(4)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders) and all(len({o[i] for o in orders}) == 4 for i in range(4))  # each position: every option once
    assert map_back("A", [2, 0, 1]) == "C" and map_back("D", [2, 0, 1]) is None

    assert agreement("B", ["B", "B", None], [], "multiple_choice", 3, 0.6).passed is True
    assert agreement("B", ["B"], ["teacher_unavailable", "teacher_unavailable"], "multiple_choice", 3, 0.6).passed is None
    out = agreement("B", ["A", "A"], ["teacher_unavailable"], "multiple_choice", 3, 0.6)  # the missing one cannot make it pass
    assert (out.passed, out.reason) == (False, "answer_disagrees_teacher")
    assert agreement("B", [None, None, None], [], "multiple_choice", 3, 0.6).reason == "answer_unverifiable"


def test_recompute_reads_the_question_the_model_sees():
    # the question text was edited to ask about animals: the graph has none
    answer, _ = recompute_template("count_entities", {**COUNT, "question": "How many different animals have appeared in the video so far?"}, {"entity_type": "object"}, ENTITIES)
    assert answer == "0"
    answer, how = recompute_template("appeared_before", {**YES_NO, "question": "Did the green triangle appear before the red circle?"}, {}, ENTITIES)
    assert answer == "No" and "green triangle" in how
    assert recompute_template("first_appearance", {**MC, "options": ["A. purple star", "B. red circle"]}, {}, ENTITIES)[0] is None
    assert caption_answer("appeared_before", YES_NO, {}, CAPTIONS) == "Yes"


# ---- recipes -------------------------------------------------------------------------------------
def test_recipe_accepts_the_verify_stage_in_order():
    assert ORDER.index("think") < ORDER.index("verify") < ORDER.index("check") and "verify" in REGISTRY
    assert REGISTRY["verify"].output_table == "answer_verdicts" and TABLES["answer_verdicts"] is VERDICTS
    base = {"name": "t", "inputs": [{"glob": "data/samples/*.mp4"}]}
    recipe = parse_recipe({**base, "stages": [{"stage": "verify", "samples": 5, "min_agreement": 0.8, "captions": False}]})
    assert (recipe.stages[0].samples, recipe.stages[0].min_agreement, recipe.stages[0].captions) == (5, 0.8, False)
    with pytest.raises(RecipeError, match=r"stages\[0\] \(verify\)\.sample: unknown key; allowed: .*samples"):
        parse_recipe({**base, "stages": [{"stage": "verify", "sample": 3}]})
    with pytest.raises(RecipeError, match="min_agreement"):
        parse_recipe({**base, "stages": [{"stage": "verify", "min_agreement": 2}]})
    demo = [s.stage for s in load_recipe(PROJECT / "pipelines" / "recipes" / "demo.yaml").stages]
    assert demo.index("think") + 1 == demo.index("verify") and demo.index("verify") + 1 == demo.index("check")
    assert parse_recipe({**base, "stages": [{"stage": "qa", "mode": "mixed"}]}).stages[0].mode == "mixed"


# ---- end to end ----------------------------------------------------------------------------------
def qa_reply(body: dict) -> str | None:
    """The qa.v1 prompt: a real question per type from the entities listed; the numerical one
    is wrong on purpose."""
    text = _user(body)
    if "evidence_clip_ids" not in json.dumps(body.get("response_format") or {}):
        return None
    clips = re.search(r"Clips of the video, in order: (.*)", text).group(1).split(", ")
    entities = re.findall(r"^- (.+?) \((\w+)\): (.*)$", text, flags=re.MULTILINE)
    firsts, seen = [], set()
    for name, _, where in sorted(entities, key=lambda e: clips.index(e[2].split(", ")[0])):
        if where.split(", ")[0] not in seen:
            seen.add(where.split(", ")[0])
            firsts.append((name, where.split(", ")[0]))
    (a, ca), (b, cb) = firsts[:2]
    evidence = [ca, cb]
    if "multiple choice question" in text:
        qa = {"type": "multiple_choice", "question": "Which of these shapes appeared first in the video?", "options": [b, a], "answer": "B"}
    elif "numerical question" in text:
        qa = {"type": "numerical", "question": "How many different shapes have appeared in the video so far?", "options": [], "answer": str(len(entities) + 10)}
    else:
        qa = {"type": "yes_no", "question": f"Was the {a} seen before the {b}?", "options": [], "answer": "Yes"}
    return json.dumps({**qa, "evidence_clip_ids": evidence})


def e2e_reply(body: dict) -> str:
    p = parse_answer_prompt(_user(body))
    if p:
        return json.dumps({"answer": oracle(p)})
    return qa_reply(body) or default_reply(body)


def e2e_recipe(manifest: Path, base_url: str, cache: Path) -> dict:
    return {
        "name": "verify-e2e",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": ["data/samples"],
        "runner": {"workers": 2, "part_size": 2},
        "teacher": {"text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
                    "timeout_s": 5.0, "max_retries": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "concurrency": 4, "cache_dir": str(cache)},  # fmt: skip
        "stages": [
            {"stage": "ingest"},
            {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
            {"stage": "perceive"},
            {"stage": "graph"},
            {"stage": "qa", "mode": "mixed"},
            {"stage": "think"},
            {"stage": "verify", "samples": 3},
        ],
    }


def test_pipeline_with_mixed_questions_verifies_every_chain(samples, tmp_path):
    manifest = synthetic_manifest(samples.parent, tmp_path, count=2)
    quiet = dict(progress=False, echo=lambda *_: None)
    with FakeTeacherServer(reply=e2e_reply) as server:
        run_recipe(parse_recipe(e2e_recipe(manifest, server.base_url, tmp_path / "cache")), "first", PROJECT, tmp_path / "runs", **quiet)
        sent = server.requests
        verify_bodies = [json.dumps(b["messages"]) for b in server.bodies if parse_answer_prompt(_user(b))]
        run_recipe(parse_recipe(e2e_recipe(manifest, server.base_url, tmp_path / "cache")), "second", PROJECT, tmp_path / "runs", **quiet)
        assert server.requests == sent  # the second run: every reply from the shared cache
    run_dir = RunDir(tmp_path / "runs" / "first")
    assert run_dir.read_table("answer_verdicts").schema.equals(VERDICTS)
    chains = {c["chain_id"]: c for c in run_dir.read_rows("chains") if c["status"] == "ok"}
    assert len(chains) == len(run_dir.read_rows("chains")) == len(run_dir.read_rows("questions"))
    verdicts = run_dir.read_rows("answer_verdicts")
    assert sorted(v["chain_id"] for v in verdicts) == sorted(chains) and all(v["check"] == "answer" and v["status"] == "ok" for v in verdicts)
    by_kind: dict[tuple, list[dict]] = {}
    for v in verdicts:
        chain = chains[v["chain_id"]]
        by_kind.setdefault((chain["qa_template"] == "teacher", chain["qa"]["type"]), []).append(v)
    assert set(by_kind) == {(t, k) for t in (True, False) for k in ("multiple_choice", "numerical", "yes_no")}
    for (is_teacher, kind), rows in by_kind.items():
        if is_teacher and kind == "numerical":  # the qa teacher's count was wrong on purpose
            assert all(v["passed"] is False and v["reason"] == "answer_disagrees_teacher" for v in rows)
        else:
            assert all(v["passed"] is True for v in rows), rows
        assert all(details(v)["method"] == ("teacher" if is_teacher else "template") for v in rows)
    teacher_chains = [c for c, chain in chains.items() if chain["qa_template"] == "teacher"]
    assert len(verify_bodies) == 3 * len(teacher_chains) == len(set(verify_bodies))
    usage = [u for u in run_dir.read_rows("teacher_usage") if u["stage"] == "verify"]
    assert sorted(u["item_id"] for u in usage) == sorted(f"{c}/{k}" for c in teacher_chains for k in range(3))
    assert json.loads((run_dir.reports_dir / "teacher_usage.json").read_text())["verify"]["calls"] == 3 * len(teacher_chains)
    second = RunDir(tmp_path / "runs" / "second").read_rows("answer_verdicts")
    assert sorted((v["chain_id"], v["passed"], v["reason"]) for v in second) == sorted((v["chain_id"], v["passed"], v["reason"]) for v in verdicts)


def test_mixed_qa_keeps_one_row_for_a_teacher_question_identical_to_a_template_one(tmp_path):
    from pipelines.stages.qa import QAParams, qa_batch

    graph = {"window_id": WINDOW, "video_id": "v1", "start_s": 0.0, "end_s": 12.0, "clip_ids": [f"v1-c{i:04d}" for i in range(3)],
             "entities": ENTITIES, "relations": []}  # fmt: skip
    [same] = [q for q in template_questions(ENTITIES, seed=WINDOW) if q.type == "yes_no"]

    def reply(body):
        if "evidence_clip_ids" in json.dumps(body.get("response_format") or {}):
            return json.dumps({"type": "yes_no", "question": same.question, "options": [], "answer": same.answer, "evidence_clip_ids": same.evidence_clip_ids})
        return default_reply(body)

    with FakeTeacherServer(reply=reply) as server:
        rows = qa_batch([graph], QAParams(mode="mixed", types=["yes_no", "numerical"]), context(tmp_path, server.base_url))
        assert server.requests >= 2  # one per type (the numerical reply is refused: it is a yes/no)
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["template"] for r in ok] == ["count_entities", "appeared_before"]  # the identical teacher question is dropped
    assert len({r["question_id"] for r in rows}) == len(rows)
    assert [r["reason"] for r in rows if r["status"] != "ok"] == ["teacher_invalid_output"]
