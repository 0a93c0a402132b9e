"""Rule checks: each check fails on the case it exists for and passes on a good chain; the check
stage writes one verdict per chain x check that SQL can count."""

from __future__ import annotations

import copy
from collections import Counter
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
from curation.checks.text import canon, name_key
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
    assert "thought_near_duplicate" in codes(check_thoughts(chain, ThoughtsConfig(max_similarity=1.0)))  # the content words still repeat
    assert check_thoughts(chain, ThoughtsConfig(max_similarity=1.0, max_content_similarity=1.0))["passed"]


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


def test_a_declared_entity_of_an_earlier_clip_is_memory_not_ungrounded(chain, graph, captions):
    index = index_of(graph, chain)
    first = min(index.entities, key=lambda e: e.first_order)
    last = len(chain["thoughts"]) - 1
    assert first.first_order < last
    chain["thoughts"][last]["entities"] = [first.display]
    chain["thoughts"][last]["text"] += f" The {first.display} from before is gone now."
    assert check_grounding(chain, index, captions)["passed"]
    assert check_causality(chain, index)["passed"]


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


# ---- dedup ----------------------------------------------------------------------------------------------
def test_near_duplicate_questions_of_one_video_keep_the_first_chain(corpus):
    chains = copy.deepcopy([c for c in corpus["chains"] if c["qa"]["type"] == "numerical"])
    a, b = chains[0], chains[1]
    b.update(video_id=a["video_id"])
    b["qa"]["answer"] = a["qa"]["answer"]
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


def test_template_count_question_about_different_videos_all_survive_dedup(corpus):
    """PLAN I4: the key is question + options + answer + video; identical template wording about
    different videos is not a duplicate, even with the same answer."""
    chains = copy.deepcopy([c for c in corpus["chains"] if c["qa"]["type"] == "numerical"])
    videos = {c["video_id"] for c in chains}
    assert len(videos) >= 3
    for c in chains:
        c["qa"]["question"] = "How many different objects have appeared in the video so far?"
        c["qa"]["answer"] = "3"
    assert find_duplicates(chains) == {}
    # the same video, the same question and the same answer IS a duplicate; another answer is not
    twin = copy.deepcopy(chains[0])
    twin["chain_id"] = "zz-twin"
    other = copy.deepcopy(chains[0])
    other["chain_id"] = "zz-other-answer"
    other["qa"]["answer"] = "4"
    dup = find_duplicates(chains + [twin, other])
    assert dup == {"zz-twin": chains[0]["chain_id"]}
    # the old text-only behaviour is still there by name
    assert len(find_duplicates(chains, DedupConfig(scope="corpus"))) == len(chains) - 1


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


# ---- checks that read the text: a synthetic world, its captions, its graph (as the stages make them) ----


def _extraction(caption: str):
    """What a faithful graph teacher extracts from a synthetic caption (PLAN I6)."""
    import re

    from curation.graph import ClipExtraction, ExtractedEntity, ExtractedRelation

    entities, relations = {}, []
    for colour, shape, move in re.findall(r"A (\w+) (\w+) appears and moves (\w+)\.", caption):
        entities[f"{colour} {shape}"] = ExtractedEntity(name=f"{colour} {shape}", type="object", attributes=[colour])
        relations.append(ExtractedRelation(subject=f"{colour} {shape}", predicate=f"moves {move}", object="screen"))
    for colour, shape in re.findall(r"The (\w+) (\w+) disappears\.", caption):
        entities.setdefault(f"{colour} {shape}", ExtractedEntity(name=f"{colour} {shape}", type="object", attributes=[colour]))
        relations.append(ExtractedRelation(subject=f"{colour} {shape}", predicate="disappears", object="screen"))
    m = re.search(r"Scene \d+: a plain (\w+) background\.", caption)
    if m:
        entities[f"{m.group(1)} background"] = ExtractedEntity(name=f"{m.group(1)} background", type="place", attributes=[m.group(1), "plain"])
    return ClipExtraction(entities=list(entities.values())[:5], relations=relations[:3])


def synthetic_world(seed: int) -> dict:
    """One window of a synthetic world: clips cut at scene changes (and split above 10 s, as the
    segment stage does), annotation captions (the perceive stage's rule), the merged graph."""
    from curation.graph import ClipFacts, merge_graph
    from curation.synthetic import ground_truth, make_script
    from pipelines.stages.perceive import annotation_caption

    truth = ground_truth(make_script(f"w{seed}", seed=seed, n_scenes=4, max_objects=3))
    bounds = []
    for scene in truth["scenes"]:
        s, e = scene["start_s"], scene["end_s"]
        parts = 2 if e - s > 10 else 1
        bounds += [(s + (e - s) * k / parts, s + (e - s) * (k + 1) / parts) for k in range(parts)]
    clips, captions = [], {}
    for k, (s, e) in enumerate(bounds):
        clip = {"clip_id": f"w{seed}-c{k:04d}", "video_id": f"w{seed}", "window_id": f"w{seed}-w000", "start_s": s, "end_s": e}
        row = annotation_caption({**clip, "annotations": truth["events"]})
        clips.append(clip)
        captions[clip["clip_id"]] = row
    facts = [ClipFacts(c["clip_id"], c["start_s"], _extraction(captions[c["clip_id"]]["caption"])) for c in clips]
    entities, relations = merge_graph(facts)
    graph = {"window_id": f"w{seed}-w000", "clip_ids": [c["clip_id"] for c in clips], "entities": entities, "relations": relations}
    return {"clips": clips, "captions": captions, "graph": graph, "truth": truth}


def clean_thoughts(world: dict) -> list[dict]:
    """What a faithful teacher writes with the think prompt: what is new in the clip (the graph's
    first_clip_id), what disappears, else what keeps moving (worded apart), else the background."""
    import re

    firsts = {e["name"]: e["first_clip_id"] for e in world["graph"]["entities"]}
    out, said = [], {}
    for clip in world["clips"]:
        caption = world["captions"][clip["clip_id"]]["caption"]
        parts, names = [], []
        for colour, shape, move in re.findall(r"A (\w+) (\w+) appears and moves (\w+)\.", caption):
            name = f"{colour} {shape}"
            if firsts.get(name) == clip["clip_id"] and name not in names:
                parts.append(f"a {name} appears and moves {move}")
                names.append(name)
        for colour, shape in re.findall(r"The (\w+) (\w+) disappears\.", caption):
            parts.append(f"the {colour} {shape} disappears")
            names.append(f"{colour} {shape}")
        if not parts:
            moving = re.findall(r"A (\w+) (\w+) appears and moves (\w+)\.", caption)
            if moving:
                colour, shape, move = moving[0]
                n = said.get(f"{colour} {shape}", 0)
                said[f"{colour} {shape}"] = n + 1
                parts.append([f"the {colour} {shape} keeps moving {move}", f"the {colour} {shape} is still there, heading {move}", f"the {colour} {shape} goes on {move}ward"][n % 3])
            else:
                scene = re.search(r"a plain (\w+) background", caption)
                parts.append(f"only the plain {scene.group(1) if scene else ''} background is on screen now")
        text = "; ".join(parts)
        out.append({"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"], "text": text[0].upper() + text[1:] + ".", "entities": names})
    return out


def world_chain(world: dict, thoughts: list[dict] | None = None) -> dict:
    clips = world["clips"]
    return {
        "chain_id": f"ch-{world['graph']['window_id']}", "window_id": world["graph"]["window_id"], "video_id": clips[0]["video_id"],
        "start_s": clips[0]["start_s"], "end_s": clips[-1]["end_s"], "video_duration_s": world["truth"]["duration_s"],
        "thoughts": thoughts if thoughts is not None else clean_thoughts(world),
        "qa": {"type": "numerical", "question": "How many different objects have appeared in the video so far?", "options": [], "answer": "3",
               "evidence_clip_ids": [clips[0]["clip_id"], clips[-1]["clip_id"]]},
        "final_answer": "\\boxed{3}",
    }  # fmt: skip


TEXT_CHECKS = ChecksConfig(checks=["thoughts", "causality", "grounding"])


def world_codes(world: dict, chain: dict) -> list[str]:
    verdicts = run_checks(chain, TEXT_CHECKS, world["graph"], world["captions"], None, [c["clip_id"] for c in world["clips"]])
    return [code for v in verdicts for code in codes(v)]


@pytest.fixture(scope="module")
def worlds():
    return [synthetic_world(seed) for seed in range(40)]


def test_clean_teacher_thoughts_of_40_synthetic_worlds_pass_every_text_check(worlds):
    """False rejects: thoughts written faithfully from the captions (new things, disappearances,
    continuations, memory) pass thoughts, causality and grounding."""
    for world in worlds:
        chain = world_chain(world)
        verdicts = run_checks(chain, TEXT_CHECKS, world["graph"], world["captions"], None, [c["clip_id"] for c in world["clips"]])
        assert all(v["passed"] for v in verdicts), (world["graph"]["window_id"], [t["text"] for t in chain["thoughts"]], [v["details"] for v in verdicts if not v["passed"]])


@pytest.mark.parametrize(
    "a,b",
    [("people", "person"), ("children", "child"), ("kids", "child"), ("men", "man"), ("women", "woman"), ("mice", "mouse"),
     ("geese", "goose"), ("feet", "foot"), ("teeth", "tooth"), ("automobile", "car"), ("cars", "car"), ("circles", "circle"),
     ("man", "person"), ("bicycles", "bike"), ("moved", "moves"), ("moving", "move"), ("vanishes", "disappears"), ("leaves", "disappeared"),
     ("boxes", "box"), ("buses", "bus"), ("leftwards", "left")],
)  # fmt: skip
def test_word_forms_irregular_plurals_and_aliases_fold_together(a, b):
    assert canon(a) == canon(b)


@pytest.mark.parametrize("a,b", [("red", "circle"), ("left", "right"), ("square", "circle"), ("move", "disappear"), ("man", "car")])
def test_different_words_stay_apart(a, b):
    assert canon(a) != canon(b)


def _first_object(world: dict, k_min: int = 0) -> tuple[dict, int]:
    """An object entity of the world and the position of its first clip (at or after k_min)."""
    order = {c: i for i, c in enumerate(world["graph"]["clip_ids"])}
    ents = [e for e in world["graph"]["entities"] if e["type"] == "object" and order[e["first_clip_id"]] >= k_min]
    e = min(ents, key=lambda e: order[e["first_clip_id"]])
    return e, order[e["first_clip_id"]]


@pytest.mark.parametrize("phrase", ["The {name}s are still moving.", "the {name} is still on screen.", "The {Name} is still here."])
def test_names_match_in_the_text_with_plurals_case_and_articles(worlds, phrase):
    world = worlds[0]
    ent, k = _first_object(world)
    thoughts = clean_thoughts(world)
    thoughts[k]["text"] = thoughts[k]["text"].rstrip(".") + ". " + phrase.format(name=ent["name"], Name=ent["name"].title())
    index = build_graph_index(world["graph"], world["graph"]["clip_ids"], world["captions"])
    facts = index.analyse(thoughts[k]["text"], k)
    assert facts.grounded >= 2 and not facts.unknown and not facts.wrong


def test_graph_aliases_and_people_words_ground_a_thought():
    graph = {"clip_ids": ["c0", "c1"], "relations": [], "entities": [
        {"entity_id": "e1", "name": "child", "type": "person", "attributes": [], "clip_ids": ["c0"], "first_clip_id": "c0"},
        {"entity_id": "e2", "name": "red automobile", "aliases": ["toy"], "type": "vehicle", "attributes": ["red"], "clip_ids": ["c1"], "first_clip_id": "c1"}]}  # fmt: skip
    index = build_graph_index(graph, ["c0", "c1"])
    for text in ["A kid walks in.", "The children wave.", "A person waves.", "The little one is a boy."]:
        assert index.analyse(text, 0).grounded == 1 and not index.analyse(text, 0).unknown, text
    assert index.analyse("The red cars drive by.", 1).grounded == 1
    assert index.analyse("The toy rolls on.", 1).grounded == 1  # the graph's alias
    assert index.analyse("A vehicle drives by.", 1).grounded == 1  # a type word names it
    assert index.analyse("A dog barks.", 1).unknown == ["dog"]
    assert index.analyse("The red car drives by.", 0).future == [("red car", "c1")]


def test_an_object_named_only_in_the_text_that_the_window_never_shows_fails(worlds):
    world = worlds[1]
    shapes_seen = {name_key(e["name"])[-1] for e in world["graph"]["entities"]}
    assert canon("hexagon") not in shapes_seen
    thoughts = clean_thoughts(world)
    thoughts[1]["text"] = "A purple hexagon appears and moves up."
    thoughts[1]["entities"] = []  # named only in the text
    got = world_codes(world, world_chain(world, thoughts))
    assert got == ["thought_names_unknown_entity"]


@pytest.mark.parametrize("kind", ["colour", "direction", "count"])
def test_a_wrong_attribute_fails(worlds, kind):
    from curation.synthetic import COLOURS

    for world in worlds:  # a world whose first object's shape the window has in one colour only
        ent, k = _first_object(world)
        colour, shape = ent["name"].split()
        same_shape = {e["name"].split()[0] for e in world["graph"]["entities"] if e["name"].endswith(" " + shape)}
        if len(same_shape) == 1 and sum(e["name"] == ent["name"] for e in world["graph"]["entities"]) == 1:
            break
    moves = {r["predicate"] for r in world["graph"]["relations"] if r["subject"] == ent["entity_id"] and r["predicate"].startswith("moves_")}
    thoughts = clean_thoughts(world)
    if kind == "colour":
        other = next(c for c in COLOURS if c != colour)
        thoughts[k]["text"] = f"A {other} {shape} appears."
    elif kind == "direction":
        wrong = next(d for d in ("left", "right", "up", "down") if f"moves_{d}" not in moves)
        thoughts[k]["text"] = f"A {ent['name']} appears and is moving {wrong}."
    else:
        thoughts[k]["text"] = f"Three {ent['name']}s appear."
    thoughts[k]["entities"] = []
    v = check_grounding(world_chain(world, thoughts), build_graph_index(world["graph"], world["graph"]["clip_ids"]), world["captions"])
    assert not v["passed"] and codes(v) == ["thought_wrong_attribute"], v["details"]


def test_memory_of_an_earlier_clip_is_grounded_and_a_later_thing_leaks(worlds):
    world = worlds[2]
    early, k0 = _first_object(world)
    late, k1 = _first_object(world, k_min=k0 + 1)
    thoughts = clean_thoughts(world)
    last = len(thoughts) - 1
    assert k1 > k0 + 0 and last >= k1
    thoughts[last]["text"] += f" Earlier there was a {early['name']}."
    assert world_codes(world, world_chain(world, thoughts)) == []
    thoughts = clean_thoughts(world)
    thoughts[k0]["text"] += f" A {late['name']} is here too."
    got = world_codes(world, world_chain(world, thoughts))
    assert "thought_leaks_future" in got and "thought_names_unknown_entity" not in got


def _event_window(predicate: str):
    """A 3-clip window, as merge_graph stores it: the red circle is seen from clip 0, `predicate`
    happens in clip 2 (graph relation + caption)."""
    from curation.graph import ClipExtraction, ClipFacts, ExtractedEntity, ExtractedRelation, merge_graph

    red = ExtractedEntity(name="red circle", type="object", attributes=["red"])
    facts = [ClipFacts(f"c{k}", 5.0 * k, ClipExtraction(entities=[red], relations=[ExtractedRelation(subject="red circle", predicate=predicate, object="screen")] if k == 2 else [])) for k in range(3)]
    entities, relations = merge_graph(facts)
    assert relations[0]["predicate"] == predicate.replace(" ", "_")  # stored as moves_left
    return {"clip_ids": ["c0", "c1", "c2"], "entities": entities, "relations": relations}


@pytest.mark.parametrize("told", ["The red circle moves left.", "The red circle is moving left.", "The red circle moved to the left.", "The red circles drift leftwards."])
def test_a_multi_word_predicate_told_before_its_clip_leaks_the_future_event(told):
    graph = _event_window("moves left")
    chain = {"chain_id": "ch-ev", "thoughts": [{"clip_id": f"c{k}", "text": "A red circle sits still." if k else told, "entities": []} for k in range(3)]}
    v = check_causality(chain, build_graph_index(graph, graph["clip_ids"]))
    assert codes(v) == ["thought_leaks_future_event"], v["details"]
    chain["thoughts"] = [{"clip_id": f"c{k}", "text": told if k == 2 else "A red circle sits still.", "entities": []} for k in range(3)]
    assert check_causality(chain, build_graph_index(graph, graph["clip_ids"]))["passed"]


@pytest.mark.parametrize("told", ["The red circle disappears.", "The red circle disappeared.", "The red circle vanishes.", "The red circle leaves.", "The red circle left the screen."])
def test_disappears_matches_its_synonyms(told):
    graph = _event_window("disappears")
    chain = {"chain_id": "ch-ev", "thoughts": [{"clip_id": f"c{k}", "text": told if k == 1 else "A red circle sits still.", "entities": []} for k in range(3)]}
    assert codes(check_causality(chain, build_graph_index(graph, graph["clip_ids"]))) == ["thought_leaks_future_event"]


def test_a_future_event_from_the_captions_alone_is_caught(worlds):
    """A disappearance the captions tell in a later clip, with no graph relation for it."""

    def later_disappearance(world):
        order = {c: i for i, c in enumerate(world["graph"]["clip_ids"])}
        firsts = {e["entity_id"]: (e["name"], order[e["first_clip_id"]]) for e in world["graph"]["entities"]}
        for r in world["graph"]["relations"]:
            name, first = firsts[r["subject"]]
            if r["predicate"] == "disappears" and order[r["clip_id"]] > first:
                return name, first
        return None

    world = next(w for w in worlds if later_disappearance(w))
    name, first = later_disappearance(world)
    thoughts = clean_thoughts(world)
    thoughts[first]["text"] += f" The {name} vanishes."
    no_graph = {**world["graph"], "relations": [r for r in world["graph"]["relations"] if r["predicate"] != "disappears"]}
    v = check_causality(world_chain(world, thoughts), build_graph_index(no_graph, no_graph["clip_ids"], world["captions"]))
    assert codes(v) == ["thought_leaks_future_event"]
    assert check_causality(world_chain(world, thoughts), build_graph_index(no_graph, no_graph["clip_ids"]))["passed"]  # the graph alone no longer knows


@pytest.mark.parametrize(
    "leak",
    ["In 5 seconds the blue square appears.", "Later the blue square will come in.", "A square will appear soon.", "The circle is about to leave.",
     "Something enters in the next clip.", "It is going to turn left.", "Eventually it stops.", "In a few seconds it moves."],
)  # fmt: skip
def test_time_words_that_give_the_future_away_fail(chain, leak):
    chain["thoughts"][1]["text"] += " " + leak
    assert "thought_leaks_future_time" in codes(check_causality(chain, None))


@pytest.mark.parametrize(
    "leak",
    ["So the answer is B.", "I think \\boxed{B}.", "Clearly \\boxed{Yes}.", "Final answer: 2.", "That makes 3 so far, which answers the question.",
     "I can already tell the answer.", "The correct answer must be the red circle.", "That is option C."],
)  # fmt: skip
def test_early_answers_in_several_wordings_fail(chain, leak):
    chain["thoughts"][2]["text"] += " " + leak
    v = check_causality(chain, None)
    assert v["reason"] == "answer_before_question", leak
    assert check_causality(chain, None, CausalityConfig(answer_patterns=[r"\bnever-matches\b"]))["passed"]


@pytest.mark.parametrize("fine", ["That makes 3 shapes so far.", "The man answers the phone.", "Then the square moves on, as it did before.", "The circle was there in 2 clips."])
def test_counting_and_everyday_words_are_not_early_answers_or_leaks(chain, fine):
    chain["thoughts"][2]["text"] += " " + fine
    assert check_causality(chain, None)["passed"]


@pytest.mark.parametrize(
    "text,code",
    [("New in this clip: red circle. A red circle appears.", "thought_prompt_echo"), ("Current clip: a red circle moves left.", "thought_prompt_echo"),
     ("Memory of the earlier clips: a circle.", "thought_prompt_echo"), ("Write one short sentence about the red circle.", "thought_prompt_echo"),
     ("...", "thought_empty"), ("Nothing.", "thought_empty"), (" !? ", "thought_empty"), ("Circle.", "thought_too_short"),
     ("Un cercle rouge apparaît et se déplace vers la gauche.", "thought_wrong_language"),
     ("Красный круг появляется и движется влево.", "thought_wrong_language"), ("红色圆圈出现并向左移动。", "thought_wrong_language"),
     ("The $caption shows a circle.", "thought_boilerplate")],
)  # fmt: skip
def test_prompt_echo_empty_and_wrong_language_thoughts_fail(chain, text, code):
    chain["thoughts"][2]["text"] = text
    v = check_thoughts(chain)
    assert code in codes(v), v["details"]


def test_boxed_answer_is_not_a_template_placeholder(chain):
    chain["thoughts"][2]["text"] = "The square moves, so I think \\boxed{B} and \\boxed{Yes} here."
    assert "thought_boilerplate" not in codes(check_thoughts(chain))
    chain["thoughts"][2]["text"] = "The {colour} square moves."
    assert "thought_boilerplate" in codes(check_thoughts(chain))


def _repeat_chain(texts):
    return {"chain_id": "ch-rep", "thoughts": [{"clip_id": f"c{k}", "text": t, "entities": []} for k, t in enumerate(texts)]}


@pytest.mark.parametrize(
    "repeat",
    ["Once more, the red circle is moving left.", "Again a red circle appears and moves left.", "The red circle appears and slides to the left.",
     "As before, the red circles move left."],
)  # fmt: skip
def test_reworded_repeats_fail(repeat):
    v = check_thoughts(_repeat_chain(["A red circle appears and moves left.", "A blue square appears and moves up.", repeat]))
    assert codes(v) == ["thought_near_duplicate"] and json.loads(v["details"])["issues"][0]["where"]["of"] == 0


@pytest.mark.parametrize("follow", ["The red circle is still there.", "The red circle keeps moving left.", "The red circle disappears.", "A red square appears and moves left."])
def test_continuations_and_new_events_are_not_repeats(follow):
    assert check_thoughts(_repeat_chain(["A red circle appears and moves left.", "A blue square appears and moves up.", follow]))["passed"]


def test_continuations_of_a_long_visible_thing_pass_but_a_marked_or_copied_restatement_fails():
    texts = ["A red circle appears and moves left.", "The red circle keeps moving left.", "The red circle is still in view, heading left."]
    assert check_thoughts(_repeat_chain(texts))["passed"]
    assert codes(check_thoughts(_repeat_chain(texts + ["The red circle is still going left, as before."]))) == ["thought_near_duplicate"]
    assert codes(check_thoughts(_repeat_chain(texts + ["The red circle keeps moving left."]))) == ["thought_near_duplicate"]  # a copy


def test_thoughts_must_cover_every_clip_of_the_window_once_in_order(worlds):
    world = worlds[3]
    clip_ids = [c["clip_id"] for c in world["clips"]]
    assert len(clip_ids) >= 3
    good = clean_thoughts(world)
    assert check_thoughts(world_chain(world, good), window_clips=clip_ids, captions=world["captions"])["passed"]
    missing = good[:1] + good[2:]
    assert codes(check_thoughts(world_chain(world, missing), window_clips=clip_ids, captions=world["captions"])) == ["thought_missing_for_clip"]
    extra = good[:2] + [dict(good[1], text="The background stays the same for a while.")] + good[2:]
    assert codes(check_thoughts(world_chain(world, extra), window_clips=clip_ids, captions=world["captions"])) == ["thought_extra"]
    swapped = [good[1], good[0]] + good[2:]
    assert "thoughts_out_of_order" in codes(check_thoughts(world_chain(world, swapped), window_clips=clip_ids, captions=world["captions"]))
    # run_checks takes the window's clips from the graph when it is not told them
    v = run_checks(world_chain(world, missing), ChecksConfig(checks=["thoughts"]), world["graph"], world["captions"])[0]
    assert v["reason"] == "thought_missing_for_clip"


def test_whole_thoughts_in_another_language_fail(chain):
    for text in ["一个红色的圆圈出现并向左移动。", "Красный круг появляется и движется влево."]:
        chain["thoughts"][3]["text"] = text
        v = check_thoughts(chain)
        assert v["reason"] == "thought_wrong_language", text


# ---- qa: near-identical options, answers leaked by the question -----------------------------------------
@pytest.mark.parametrize(
    "options",
    [["the child", "child", "a dog"], ["Red circle.", "red circle", "blue square"], ["red circles", "red circle", "square"],
     ["A. the kids", "B. children", "C. a dog"], ["some people", "persons", "cars"]],
)  # fmt: skip
def test_near_identical_options_fail(chain, options):
    chain["qa"].update(options=options, answer="C")
    chain["final_answer"] = "\\boxed{C}"
    assert "options_near_identical" in codes(check_qa(chain))


@pytest.mark.parametrize(
    "change",
    [{"type": "multiple_choice", "question": "Which shape appears first, given that the circle does?", "options": ["circle", "square", "triangle"], "answer": "A"},
     {"type": "numerical", "question": "How many shapes appear? There are 3.", "options": [], "answer": "3"},
     {"type": "numerical", "question": "How many of the three shapes move left?", "options": [], "answer": "3"},
     {"type": "yes_no", "question": "Did the red circle appear before the blue square? Yes.", "options": [], "answer": "Yes"},
     {"type": "yes_no", "question": "Is the square still there (answer: no)?", "options": [], "answer": "No"}],
)  # fmt: skip
def test_answer_leaked_by_the_question_fails(chain, change):
    chain["qa"].update(change)
    chain["final_answer"] = None  # the question and its answer are what is tested
    assert "answer_leaked_in_question" in codes(check_qa(chain))


@pytest.mark.parametrize(
    "change",
    [{"type": "multiple_choice", "question": "Which came first, the circle or the square?", "options": ["circle", "square", "triangle"], "answer": "A"},
     {"type": "numerical", "question": "How many shapes appear in the first 2 scenes?", "options": [], "answer": "3"},
     {"type": "yes_no", "question": "Did the red circle appear before the blue square, yes or no?", "options": [], "answer": "Yes"},
     {"type": "yes_no", "question": "Is there no square left at the end?", "options": [], "answer": "No"}],
)  # fmt: skip
def test_questions_that_do_not_leak_pass(chain, change):
    chain["qa"].update(change)
    chain["final_answer"] = None  # the question and its answer are what is tested
    assert check_qa(chain)["passed"], check_qa(chain)["details"]


def test_check_stage_gives_the_window_clips_to_the_coverage_check(run, corpus):
    import duckdb

    gap = copy.deepcopy(next(c for c in corpus["chains"] if len(c["thoughts"]) > 2))
    gap["chain_id"] = "zz-gap"
    gap["qa"] = dict(gap["qa"], question=gap["qa"]["question"] + " (asked again)")
    del gap["thoughts"][1]
    write_tables(run, {**corpus, "chains": corpus["chains"] + [gap]})
    run_stage(run, "check", checks=["thoughts"])
    glob = str(run.table_dir("verdicts") / "*.parquet")
    failed = duckdb.sql(f"select chain_id, reason from read_parquet('{glob}') where not passed").fetchall()
    assert failed == [("zz-gap", "thought_missing_for_clip")]


# ---- against the simulated teacher (PLAN I5/I6): clean thoughts pass, each think mistake is caught ----------
EXPECTED_CODES = {
    "hallucinated_entity": {"thought_names_unknown_entity", "thought_wrong_attribute"},  # a known shape in an unknown colour
    "wrong_attribute": {"thought_wrong_attribute"},
    "future_entity": {"thought_leaks_future"},
    "future_event": {"thought_leaks_future_event"},
    "early_answer": {"answer_before_question"},
    "prompt_echo": {"thought_prompt_echo"},
    "reworded_repeat": {"thought_near_duplicate"},
    "missing_thought": {"thought_empty", "thought_too_short"},
    "language_drift": {"thought_wrong_language"},
}


def _sim_world(seed: int) -> dict:
    """A synthetic world whose graph the simulated teacher extracted (through the graph stage's
    filter and curation.graph.merge_graph)."""
    from curation.graph import ClipExtraction, ClipFacts, grounded, merge_graph
    from curation.teacher.simulator import graph_reply

    world = synthetic_world(seed)
    facts = []
    for clip in world["clips"]:
        caption = world["captions"][clip["clip_id"]]["caption"]
        reply = ClipExtraction.model_validate(graph_reply(caption))
        kept = [e for e in reply.entities if grounded(e.name, caption)]
        facts.append(ClipFacts(clip["clip_id"], clip["start_s"], ClipExtraction(entities=kept, relations=reply.relations)))
    entities, relations = merge_graph(facts)
    world["graph"] = {**world["graph"], "entities": entities, "relations": relations}
    return world


def _sim_thoughts(sim, world: dict) -> tuple[list[dict], dict[int, str]]:
    """The think stage's requests to the simulator, clip by clip (with the stage's own reply
    checks and one repair request, as the teacher client does): (thoughts, {clip position: kind
    of the mistake that reached the thought})."""
    from curation.graph import mentions
    from curation.teacher.structured import InvalidReply
    from pipelines.stages.think import ThinkParams, ThoughtReply, thought_call

    params = ThinkParams()
    schema = {"type": "json_schema", "json_schema": {"schema": ThoughtReply.model_json_schema()}}
    window = {"window_id": world["graph"]["window_id"], "graph": world["graph"],
              "clips": [{**c, "caption": world["captions"][c["clip_id"]]["caption"]} for c in world["clips"]]}  # fmt: skip
    sim.remember_captions({c["clip_id"]: c["caption"] for c in window["clips"]})
    memory, thoughts, injected = [], [], {}
    for k, clip in enumerate(window["clips"]):
        call, known = thought_call(window, k, memory, params)
        reply = sim.reply({"messages": call.messages, "response_format": schema}, f"think/{call.item_id}")
        try:
            value = ThoughtReply.model_validate_json(reply.content)
            call.check(value)
            if reply.injection is not None:
                injected[k] = reply.injection.kind
        except (ValueError, InvalidReply):  # refused: the repair request gets a faithful reply
            repair = call.messages + [{"role": "assistant", "content": reply.content}, {"role": "user", "content": "Fix it."}]
            value = ThoughtReply.model_validate_json(sim.reply({"messages": repair, "response_format": schema}, f"think/{call.item_id}").content)
        text = " ".join(value.thought.split())
        thoughts.append({"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"], "text": text, "entities": [n for n in known if mentions(text, n)]})
        memory.append(f"Time={clip['start_s']:.1f}-{clip['end_s']:.1f}s {text}")
    return thoughts, injected


@pytest.fixture(scope="module")
def sim_worlds():
    return [_sim_world(seed) for seed in range(2000, 2030)]


def test_simulated_teacher_clean_thoughts_pass_and_each_think_mistake_alone_is_caught(sim_worlds):
    from curation.teacher.simulator import THINK_KINDS, TeacherSimulator

    clean = {}
    for world in sim_worlds:
        thoughts, injected = _sim_thoughts(TeacherSimulator(rate=0.0), world)
        assert injected == {}
        got = world_codes(world, world_chain(world, thoughts))
        assert got == [], (world["graph"]["window_id"], got, [t["text"] for t in thoughts])
        clean[world["graph"]["window_id"]] = thoughts
    caught: Counter = Counter()
    injected_n: Counter = Counter()
    for kind in THINK_KINDS:
        for world in sim_worlds:
            bad, injected = _sim_thoughts(TeacherSimulator(rate=1.0, kinds=[kind], seed=7), world)
            for k, hit in injected.items():
                one = [dict(t) for t in clean[world["graph"]["window_id"]]]
                one[k] = bad[k]  # this mistake alone in an otherwise clean chain
                got = set(world_codes(world, world_chain(world, one)))
                injected_n[hit] += 1
                caught[hit] += bool(got & EXPECTED_CODES[hit])
    # the think stage itself refuses a thought naming a later entity (it never reaches a chain)
    assert {k for k in THINK_KINDS if injected_n[k] >= 5} >= set(THINK_KINDS) - {"future_entity"}, injected_n
    assert caught == injected_n, {k: f"{caught[k]}/{injected_n[k]}" for k in injected_n}


def test_a_thing_of_a_later_window_of_the_video_is_a_leak_not_unknown(worlds):
    """The check stage appends the video's clips after the window to the index: what they show is
    the future of every thought of the window."""

    def split(world):
        """(window clips, later clips, window graph, a name whose shape only the later clips show)."""
        cut = len(world["clips"]) // 2
        window, later = world["clips"][:cut], world["clips"][cut:]
        ids = {c["clip_id"] for c in window}
        graph = {**world["graph"], "clip_ids": [c["clip_id"] for c in window], "relations": [r for r in world["graph"]["relations"] if r["clip_id"] in ids],
                 "entities": [dict(e, clip_ids=[c for c in e["clip_ids"] if c in ids]) for e in world["graph"]["entities"] if e["first_clip_id"] in ids]}  # fmt: skip
        shapes = {e["name"].split()[-1] for e in graph["entities"]}
        shapes |= {w for c in window for w in world["captions"][c["clip_id"]]["caption"].lower().replace(".", " ").split()}
        name = next((e["name"] for e in world["graph"]["entities"] if e["name"].split()[-1] not in shapes), None)
        return window, later, graph, name

    world = next(w for w in worlds if split(w)[3])
    window, later, graph, name = split(world)
    cut = len(window)
    thoughts = clean_thoughts(world)[:cut]
    thoughts[0]["text"] += f" A {name} comes in."
    chain = {"chain_id": "ch-w0", "thoughts": thoughts}
    alone = build_graph_index(graph, graph["clip_ids"], {c["clip_id"]: world["captions"][c["clip_id"]] for c in window})
    assert codes(check_grounding(chain, alone, None)) == ["thought_names_unknown_entity"]
    whole = build_graph_index(graph, [c["clip_id"] for c in window + later], world["captions"])
    assert codes(check_causality(chain, whole)) == ["thought_leaks_future"]
    assert check_grounding(chain, whole, None)["passed"]
