"""Rule checks: each check fails on the case it exists for and passes on a good chain; the check
stage writes one verdict per chain x check that SQL can count."""

from __future__ import annotations

import copy
import json

import pytest

from _chain_fixtures import build_corpus, demo_run_copy, run_stage, write_tables
from curation.checks import (
    ChecksConfig,
    build_graph_index,
    check_causality,
    check_dedup,
    check_grounding,
    check_qa,
    check_structure,
    check_thoughts,
    find_duplicates,
    run_checks,
)
from curation.checks.causality import CausalityConfig
from curation.checks.dedup import DedupConfig
from curation.checks.grounding import GroundingConfig
from curation.checks.structure import StructureConfig
from curation.checks.thoughts import ThoughtsConfig


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo_run_copy(tmp_path_factory, "checks")


@pytest.fixture(scope="module")
def corpus(run):
    return build_corpus(run)


@pytest.fixture
def chain(corpus):
    """A good multi-clip chain of a synthetic video (six clips, real scene cuts)."""
    chains = [c for c in corpus["chains"] if len(c["thoughts"]) >= 5 and c["qa"]["type"] == "multiple_choice"]
    return copy.deepcopy(chains[0])


@pytest.fixture
def graph(corpus, chain):
    return next(g for g in corpus["graphs"] if g["window_id"] == chain["window_id"])


@pytest.fixture
def captions(corpus, chain):
    return {c["clip_id"]: c for c in corpus["captions"] if c["window_id"] == chain["window_id"]}


def codes(v: dict) -> list[str]:
    return [i["code"] for i in json.loads(v["details"])["issues"]]


def index_of(graph, chain):
    return build_graph_index(graph, [t["clip_id"] for t in chain["thoughts"]])


# ---- the good chains pass everything ----------------------------------------------------------------
def test_fixture_chains_of_multi_clip_windows_pass_every_check(corpus):
    graphs = {g["window_id"]: g for g in corpus["graphs"]}
    caps = {c["clip_id"]: c for c in corpus["captions"]}
    dups = find_duplicates(corpus["chains"])
    multi = [c for c in corpus["chains"] if len(c["thoughts"]) >= 2]
    assert len(multi) >= 15
    for c in multi:
        verdicts = run_checks(c, ChecksConfig(), graphs[c["window_id"]], caps, dups)
        assert [v["check"] for v in verdicts] == ["structure", "thoughts", "causality", "grounding", "qa", "dedup"]
        assert all(v["passed"] for v in verdicts), [(v["check"], v["details"]) for v in verdicts if not v["passed"]]


# ---- structure: the silent-misalignment cases of spec section 2 ---------------------------------------
def stretch(chain, vs, ve, n, duration):
    """The chain over a window vs..ve cut into n equal contiguous clips, on a video of `duration`."""
    step = (ve - vs) / n
    chain.update(start_s=vs, end_s=ve, video_duration_s=duration)
    chain["thoughts"] = [dict(chain["thoughts"][i % len(chain["thoughts"])], start_s=vs + i * step, end_s=vs + (i + 1) * step) for i in range(n)]
    return chain


def test_structure_passes_a_real_chain(chain):
    v = check_structure(chain)
    assert v["passed"] and v["reason"] is None and v["score"] == 1.0


def test_window_longer_than_192s_fails_and_the_limit_follows_fps_max_frames(chain):
    stretch(chain, 0.0, 200.0, 20, 300.0)
    v = check_structure(chain)
    assert not v["passed"] and v["reason"] == "window_too_long"
    assert check_structure(chain, StructureConfig(max_frames=400))["passed"]  # 200 s allowed at 400 frames


def test_window_ending_past_the_real_video_end_fails(chain):
    stretch(chain, 0.0, chain["video_duration_s"] + 2.0, 6, chain["video_duration_s"])
    v = check_structure(chain)
    assert v["reason"] == "window_past_video_end"


def test_window_starting_past_the_video_end_and_empty_window_fail(chain):
    d = chain["video_duration_s"]
    assert "window_start_past_video_end" in codes(check_structure(stretch(copy.deepcopy(chain), d + 1, d + 10, 3, d)))
    chain["end_s"] = chain["start_s"]
    assert "window_empty" in codes(check_structure(chain))


def test_overlapping_spans_fail(chain):
    chain["thoughts"][2]["start_s"] = chain["thoughts"][1]["start_s"] + 0.5  # starts inside thought 1
    v = check_structure(chain)
    assert "thoughts_overlap" in codes(v)
    assert json.loads(v["details"])["issues"][0]["where"] == {"thought": 2}


def test_out_of_order_spans_fail(chain):
    chain["thoughts"][1], chain["thoughts"][2] = chain["thoughts"][2], chain["thoughts"][1]
    assert "thoughts_out_of_order" in codes(check_structure(chain))


def test_span_outside_the_window_fails(chain):
    chain["thoughts"][-1]["end_s"] = chain["end_s"] + 3.0
    assert "thought_outside_window" in codes(check_structure(chain))


def test_gap_between_thoughts_fails_unless_allowed(chain):
    chain["thoughts"][3]["start_s"] += 1.0
    assert check_structure(chain)["reason"] == "thoughts_not_contiguous"
    assert check_structure(chain, StructureConfig(require_contiguous=False))["passed"]


def test_a_0_3s_clip_gets_no_frame_at_2fps(chain):
    # window 0-10 s -> 20 frames; a clip 2.0-2.3 s is slice int(4.0):int(4.6) = 4:4, empty.
    chain.update(start_s=0.0, end_s=10.0, video_duration_s=40.0)
    chain["thoughts"] = [
        dict(chain["thoughts"][0], start_s=0.0, end_s=2.0),
        dict(chain["thoughts"][1], start_s=2.0, end_s=2.3),
        dict(chain["thoughts"][2], start_s=2.3, end_s=10.0),
    ]
    got = codes(check_structure(chain))
    assert "clip_gets_no_frames" in got and "clip_too_short" in got
    assert check_structure(chain)["score"] == pytest.approx(2 / 3)


def test_missing_duration_is_reported_not_guessed(chain):
    chain["video_duration_s"] = None
    assert check_structure(chain)["reason"] == "video_duration_unknown"


# ---- thoughts -----------------------------------------------------------------------------------------
def test_thoughts_pass(chain):
    assert check_thoughts(chain)["passed"]


@pytest.mark.parametrize(
    "text,code",
    [
        ("", "thought_empty"),
        ("   ", "thought_empty"),
        ("Ok", "thought_too_short"),
        (" ".join(["circle"] * 200), "thought_too_long"),
        ("As an AI language model, I cannot see the video.", "thought_boilerplate"),
        ("The {entity} appears and moves left.", "thought_boilerplate"),
        ("A red circle [insert colour here] moves.", "thought_boilerplate"),
        ("一个红色的圆圈出现并向左移动。", "thought_wrong_language"),
    ],
)
def test_bad_thought_text_fails_with_its_code(chain, text, code):
    chain["thoughts"][2]["text"] = text
    v = check_thoughts(chain)
    assert not v["passed"] and code in codes(v)


def test_non_string_thought_fails(chain):
    chain["thoughts"][1]["text"] = None
    assert check_thoughts(chain)["reason"] == "thought_not_text"


def test_near_copy_of_an_earlier_thought_fails(chain):
    chain["thoughts"][4]["text"] = chain["thoughts"][1]["text"].rstrip(".") + " again."
    v = check_thoughts(chain)
    assert "thought_near_duplicate" in codes(v)
    assert check_thoughts(chain, ThoughtsConfig(max_similarity=1.0))["passed"]


def test_language_is_configurable(chain):
    for t in chain["thoughts"]:
        t["text"] = "一个红色的圆圈出现并向左移动。" + t["clip_id"][-1]
    assert check_thoughts(chain, ThoughtsConfig(language="zh"))["passed"]
    with pytest.raises(ValueError, match="unknown language"):
        ThoughtsConfig(language="klingon")


# ---- causality ----------------------------------------------------------------------------------------
def test_causality_passes(chain, graph):
    assert check_causality(chain, index_of(graph, chain))["passed"]


def test_thought_naming_an_entity_of_a_later_clip_fails(chain, graph):
    index = index_of(graph, chain)
    later = max(index.entities, key=lambda e: e.first_order)
    assert later.first_order > 0
    chain["thoughts"][0]["text"] += f" A {later.display} is also here."
    v = check_causality(chain, index)
    assert v["reason"] == "thought_leaks_future" and later.display in v["details"]


def test_thought_naming_a_later_event_fails(chain, graph):
    graph = copy.deepcopy(graph)
    first_entity = graph["entities"][0]
    last_clip = chain["thoughts"][-1]["clip_id"]
    graph["relations"].append({"subject": first_entity["entity_id"], "predicate": "explodes", "object": None, "clip_id": last_clip, "time_s": chain["thoughts"][-1]["start_s"]})
    pos = next(i for i, t in enumerate(chain["thoughts"]) if first_entity["first_clip_id"] == t["clip_id"])
    chain["thoughts"][pos]["text"] += f" Then the {first_entity['name']} explodes."
    v = check_causality(chain, index_of(graph, chain))
    assert "thought_leaks_future_event" in codes(v)


@pytest.mark.parametrize("leak", ["So the answer is B.", "I think \\boxed{B}."])
def test_answer_before_the_question_fails_even_without_a_graph(chain, leak):
    chain["thoughts"][2]["text"] += " " + leak
    v = check_causality(chain, None)
    assert v["reason"] == "answer_before_question"
    assert check_causality(chain, None, CausalityConfig(answer_patterns=[r"\bnever-matches\b"]))["passed"]


# ---- grounding ----------------------------------------------------------------------------------------
def test_grounding_passes(chain, graph, captions):
    v = check_grounding(chain, index_of(graph, chain), captions)
    assert v["passed"] and json.loads(v["details"])["named"] > 0


def test_entity_absent_from_clip_description_and_graph_fails(chain, graph, captions):
    chain["thoughts"][1]["entities"] = ["purple hexagon"]
    v = check_grounding(chain, index_of(graph, chain), captions)
    assert v["reason"] == "thought_not_grounded" and "purple hexagon" in v["details"]
    assert 0 < v["score"] < 1
    assert check_grounding(chain, index_of(graph, chain), captions, GroundingConfig(min_grounded_ratio=0.5))["passed"]


def test_grounding_uses_captions_alone_and_reports_when_it_cannot_run(chain, captions):
    assert check_grounding(chain, None, captions)["passed"]
    v = check_grounding(chain, None, None)
    assert v["status"] == "failed" and v["reason"] == "no_grounding_source" and v["passed"] is None


# ---- qa -----------------------------------------------------------------------------------------------
def test_qa_passes_each_type(corpus):
    multi = [c for c in corpus["chains"] if len(c["thoughts"]) >= 2]
    assert {c["qa"]["type"] for c in multi} == {"multiple_choice", "numerical", "yes_no"}
    for c in multi:
        assert check_qa(c)["passed"], c["qa"]


@pytest.mark.parametrize(
    "change,code",
    [
        ({"options": ["a", "b", "c", "d", "e", "f"]}, "options_count_out_of_range"),
        ({"options": ["circle"]}, "options_count_out_of_range"),
        ({"options": ["circle", "Circle", "square"]}, "options_not_unique"),
        ({"options": ["A. circle", "B. square", "F. triangle"]}, "option_letter_invalid"),
        ({"answer": "D"}, "answer_not_an_option"),
        ({"answer": "hexagon"}, "answer_not_an_option"),
        ({"type": "essay"}, "qa_type_unknown"),
        ({"question": "  "}, "question_empty"),
        ({"type": "numerical", "options": [], "answer": "twelve"}, "answer_not_numeric"),
        ({"type": "yes_no", "options": [], "answer": "Maybe"}, "answer_not_yes_no"),
    ],
)
def test_bad_questions_fail_with_their_code(chain, change, code):
    chain["qa"].update(change)
    assert code in codes(check_qa(chain))


def test_answer_given_as_option_text_passes(chain):
    chain["qa"]["answer"] = chain["qa"]["options"]["ABC".index(chain["qa"]["answer"])]
    assert check_qa(chain)["passed"]


def test_evidence_must_span_two_clips_of_the_window(chain):
    chain["qa"]["evidence_clip_ids"] = [chain["thoughts"][0]["clip_id"]] * 2
    assert check_qa(chain)["reason"] == "evidence_too_few_clips"
    chain["qa"]["evidence_clip_ids"] = [chain["thoughts"][0]["clip_id"], "another-video-c0001"]
    assert codes(check_qa(chain)) == ["evidence_outside_window", "evidence_too_few_clips"]


def test_final_answer_must_box_the_ground_truth(chain):
    chain["final_answer"] = "\\boxed{C}" if chain["qa"]["answer"] != "C" else "\\boxed{A}"
    assert check_qa(chain)["reason"] == "final_answer_mismatch"


# ---- dedup --------------------------------------------------------------------------------------------
def test_near_duplicate_questions_keep_the_first_chain(corpus):
    chains = copy.deepcopy([c for c in corpus["chains"] if c["qa"]["type"] == "numerical"])
    a, b = chains[0], chains[1]
    a["qa"]["question"] = "How many different shapes appear on the screen in total before the last scene change of the video?"
    b["qa"]["question"] = a["qa"]["question"].replace("?", " ?").upper()  # same after normalising
    c = copy.deepcopy(a)
    c["chain_id"] = "zz-near"
    c["qa"]["question"] = a["qa"]["question"].replace("shapes appear", "shapes do appear")  # near, not equal
    dup = find_duplicates(chains + [c])
    kept = min(a["chain_id"], b["chain_id"])
    assert dup[max(a["chain_id"], b["chain_id"])] == kept
    assert dup["zz-near"] == kept
    assert check_dedup(c, dup)["reason"] == "question_near_duplicate"
    others = [x for x in chains if x["chain_id"] not in (a["chain_id"], b["chain_id"])]
    assert all(check_dedup(x, dup)["passed"] for x in others)


def test_dedup_within_one_video_scope(corpus):
    chains = copy.deepcopy([c for c in corpus["chains"] if c["qa"]["type"] == "numerical"][:2])
    chains[1]["qa"]["question"] = chains[0]["qa"]["question"]
    assert len(find_duplicates(chains)) == 1
    assert chains[0]["video_id"] != chains[1]["video_id"]
    assert find_duplicates(chains, DedupConfig(scope="video")) == {}


# ---- the stage: verdicts table, thresholds from the recipe, SQL --------------------------------------
def test_check_stage_writes_one_verdict_per_chain_and_check(run, corpus):
    import duckdb

    bad = copy.deepcopy(next(c for c in corpus["chains"] if len(c["thoughts"]) > 2))
    bad["chain_id"] = "zz-broken"
    bad["end_s"] = bad["video_duration_s"] + 5
    write_tables(run, {**corpus, "chains": corpus["chains"] + [bad]})
    summary = run_stage(run, "check", structure={"max_frames": 384})
    n_chains = len(corpus["chains"]) + 1
    assert summary["rows"] == n_chains * 6 and summary["failed"] == 0
    glob = str(run.table_dir("verdicts") / "*.parquet")
    counts = dict(duckdb.sql(f"select reason, count(*) from read_parquet('{glob}') where not passed group by reason").fetchall())
    assert counts["window_past_video_end"] == 1
    assert counts["evidence_too_few_clips"] == 6  # the single-clip windows of the real videos
    assert counts["question_near_duplicate"] == 1  # the broken copy repeats its original's question
    per_chain = duckdb.sql(f"select count(distinct chain_id), count(*) from read_parquet('{glob}')").fetchall()[0]
    assert per_chain == (n_chains, n_chains * 6)
    row = duckdb.sql(f"select checker_version, run from read_parquet('{glob}') limit 1").fetchall()[0]
    assert row == ("rule-checks/1", run.name)


def test_check_thresholds_are_validated_in_the_recipe():
    from pipelines.recipe import RecipeError, parse_recipe

    base = {"name": "t", "inputs": [{"glob": "x/*.mp4"}], "stages": [{"stage": "ingest"}]}
    ok = parse_recipe({**base, "stages": [{"stage": "check", "checks": ["structure", "qa"], "structure": {"max_frames": 512}, "qa": {"min_evidence_clips": 3}}]})
    assert ok.stages[0].structure.max_frames == 512 and ok.stages[0].qa.min_evidence_clips == 3
    with pytest.raises(RecipeError, match="structure.max_frame"):
        parse_recipe({**base, "stages": [{"stage": "check", "structure": {"max_frame": 512}}]})
    with pytest.raises(RecipeError, match="checks"):
        parse_recipe({**base, "stages": [{"stage": "check", "checks": ["vibes"]}]})
