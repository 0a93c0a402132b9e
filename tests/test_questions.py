"""Template questions (curation/questions.py) against the synthetic worlds' plans.

Graphs are built the way a run builds them: each world (curation.synthetic.make_script) is cut
into clips inside its scenes, each clip's caption is its ground-truth events (the annotation
rule of perceive), the simulated teacher's faithful extraction (graph_reply) names entities and
relations, curation.graph.merge_graph merges them per window. Every generated question's answer
is then compared with the answer computed from the world PLAN (objects, appear/leave times,
directions), never from the graph code.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from curation.checks.qa import QAConfig, check_qa
from curation.formats.question import option_texts
from curation.graph import ClipExtraction, ClipFacts, merge_graph, normalize_name
from curation.questions import (
    COUNT_KIND,
    TEMPLATES,
    WindowFacts,
    candidates,
    evidence_span,
    select,
    window_questions,
)
from curation.synthetic import ground_truth, make_script
from curation.teacher.simulator import graph_reply, solve
from curation.verify import verify_template

SEEDS = range(60)


# ---- worlds -> windows (clips, captions, graph) ----------------------------------------------
@dataclass
class Window:
    window_id: str
    clips: list[tuple[str, float, float]]  # clip_id, start_s, end_s
    captions: list[str]
    objects: list[dict]  # the plan's objects of the window's scenes
    graph: dict


def _captions(truth: dict, clips: list[tuple[str, float, float]]) -> list[str]:
    out = []
    for _, start, end in clips:
        texts = [e["text"] for e in truth["events"]
                 if (e["start_s"] < end and e["end_s"] > start) or (e["start_s"] == e["end_s"] and start <= e["start_s"] < end)]  # fmt: skip
        out.append(" ".join(texts))
    return out


def world_windows(seed: int) -> list[Window]:
    """A world cut into clips of 1.5-4 s inside its scenes; windows are runs of 1-3 whole scenes
    (so no object of a window was on screen before it)."""
    rng = random.Random(seed)
    script = make_script(f"w{seed}", seed=seed, n_scenes=rng.randint(2, 5), scene_s=(5.0, 14.0), max_objects=3)
    truth = ground_truth(script)
    fps = truth["fps"]
    scenes = truth["scenes"]
    windows, i, c = [], 0, 0
    while i < len(scenes):
        group = scenes[i : i + rng.randint(1, 3)]
        i += len(group)
        clips = []
        for scene in group:
            start, end = round(scene["start_s"] * fps), round(scene["end_s"] * fps)
            while start < end:
                step = min(end - start, rng.randint(int(1.5 * fps), 4 * fps))
                if end - (start + step) < fps:  # no sliver at the scene's end
                    step = end - start
                clips.append((f"w{seed}-c{c:04d}", start / fps, (start + step) / fps))
                c += 1
                start += step
        captions = _captions(truth, clips)
        facts = [ClipFacts(cid, s, ClipExtraction.model_validate(graph_reply(cap))) for (cid, s, _), cap in zip(clips, captions)]
        entities, relations = merge_graph(facts)
        window_id = f"w{seed}-w{len(windows):03d}"
        graph = {"window_id": window_id, "clip_ids": [cid for cid, _, _ in clips], "entities": entities, "relations": relations}
        windows.append(Window(window_id, clips, captions, [{**o, "scene_end_s": s["end_s"]} for s in group for o in s["objects"]], graph))
    return windows


# ---- the truth, from the plan only -------------------------------------------------------------
def _name(o: dict) -> str:
    return f"{o['colour']} {o['shape']}"


def first_times(objects: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for o in objects:
        out[_name(o)] = min(out.get(_name(o), 1e9), o["appear_s"])
    return out


def next_new(objects: list[dict], x: str, after: bool) -> str | None:
    """The name first appearing right after (just before) X first appeared; None when tied."""
    t = first_times(objects)
    side = [v for n, v in t.items() if (v > t[x] if after else v < t[x])]
    if not side:
        return None
    best = min(side) if after else max(side)
    names = [n for n, v in t.items() if v == best]
    return names[0] if len(names) == 1 else None


def true_answer(q, w: Window) -> str | None:
    """The answer the world's plan gives to a generated question (a letter, number, Yes/No)."""
    objs = w.objects
    t = first_times(objs)
    d = q.details
    texts = [normalize_name(o) for o in option_texts(q.options)]

    def letter(text: str | None) -> str | None:
        hits = [i for i, o in enumerate(texts) if o == normalize_name(text or "")]
        return "ABCDE"[hits[0]] if len(hits) == 1 else None

    if q.template == "count_entities":
        return str(len(t))
    if q.template == "count_kind":
        return str(len({o["colour"] for o in objs if o["shape"] == d["kind"]}))
    if q.template == "first_appearance":
        return letter(min(texts, key=lambda n: t[n]))
    if q.template == "appeared_before":
        return "Yes" if t[d["first"]] < t[d["second"]] else "No"
    if q.template == "order":
        return letter(next_new(objs, d["anchor"], d["form"] == "after"))
    if q.template == "attribute":
        if d["form"] == "first":
            kind = sorted((v, n) for n, v in t.items() if n.split()[-1] == d["kind"])
            y = kind[0][1] if len(kind) < 2 or kind[0][0] != kind[1][0] else None
        else:
            y = next_new(objs, d["anchor"], True)
            y = y if y and y.split()[-1] == d["kind"] else None
        return letter(y.split()[0]) if y else None
    if q.template == "action":
        dirs = {o["direction"] for o in objs if _name(o) == d["entity"]}
        return letter(dirs.pop()) if len(dirs) == 1 else None
    if q.template == "where_went":
        # the plan has an object leave when it goes before its scene ends
        leaving = {o["direction"] for o in objs if _name(o) == d["entity"] and o["leave_s"] < o["scene_end_s"]}
        where = {"left": "to the left", "right": "to the right", "up": "upwards", "down": "downwards"}
        return letter(where[leaving.pop()]) if len(leaving) == 1 else None
    if q.template == "still_there":
        # on screen when the window ends: appeared before its last clip ends and leaves no earlier
        end = w.clips[-1][2]
        there = {o["appear_s"] < end and o["leave_s"] >= end for o in objs if _name(o) == d["entity"]}
        return ("Yes" if there.pop() else "No") if len(there) == 1 else None
    raise AssertionError(f"no truth for template {q.template}")


@pytest.fixture(scope="module")
def worlds() -> list[Window]:
    return [w for seed in SEEDS for w in world_windows(seed)]


@pytest.fixture(scope="module")
def asked(worlds) -> list[tuple[object, Window]]:
    """Every candidate question of every window (not only the one per template a window asks)."""
    return [(q, w) for w in worlds for qs in candidates(w.graph, w.window_id).values() for q in qs]


# ---- answers equal the world's truth ----------------------------------------------------------
def test_every_template_answer_equals_the_truth_of_the_world_plan(asked):
    wrong = [(w.window_id, q.template, q.question, q.options, q.answer, true_answer(q, w)) for q, w in asked if true_answer(q, w) != q.answer]
    assert not wrong, wrong[:5]
    made = Counter(q.template for q, _ in asked)
    assert set(made) >= set(TEMPLATES) - {"on_screen_text"}, made  # the worlds show no text: see the text world below
    assert all(n >= 10 for t, n in made.items()), made


def test_the_gate_oracle_reads_every_shape_template_and_agrees(asked):
    """solve (the simulator's answer oracle and the gate report's) reads the new phrasings from
    the true captions and gives the same answers."""
    unread = Counter()
    for q, w in asked:
        got = solve(q.question, [o.split(". ", 1)[1] for o in q.options], w.captions)
        if got is None:
            unread[q.template] += 1
            continue
        assert got == q.answer, (w.window_id, q.question, q.options, q.answer, got)
    made = Counter(q.template for q, _ in asked)
    assert all(unread[t] == 0 for t in made), unread


def test_options_are_shuffled_and_the_correct_letter_varies(asked):
    letters: dict[str, Counter] = {}
    for q, _ in asked:
        if q.type == "multiple_choice":
            letters.setdefault(q.template, Counter())[q.answer] += 1
            assert len(set(option_texts(q.options))) == len(q.options) >= 2
    for template, counts in letters.items():
        assert len(counts) >= 2, (template, counts)
        assert max(counts.values()) <= 0.7 * sum(counts.values()), (template, counts)
    yes_no = Counter(q.answer for q, _ in asked if q.type == "yes_no")
    assert set(yes_no) == {"Yes", "No"}


def test_wording_varies_within_each_template(asked):
    stems: dict[str, set] = {}
    for q, w in asked:
        stem = q.question
        for name in sorted({e["name"] for e in w.graph["entities"]}, key=len, reverse=True):
            stem = stem.replace(name, "X")
        for word in ("circles", "squares", "triangles"):
            stem = stem.replace(word, "KINDS")
        for word in ("circle", "square", "triangle"):
            stem = stem.replace(word, "KIND")
        stems.setdefault(q.template, set()).add(stem)
    for template, seen in stems.items():
        if template != "count_entities":  # one sentence on purpose (same words across videos, graph.py)
            assert len(seen) >= 2, (template, seen)


def test_every_question_passes_the_qa_check_and_differs_within_a_video(worlds):
    for w in worlds:
        qs = window_questions(w.graph, w.window_id)
        keys = set()
        for q in qs:
            chain = {"chain_id": "c", "qa": {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer,
                     "evidence_clip_ids": q.evidence_clip_ids}, "thoughts": [{"clip_id": c} for c, _, _ in w.clips]}  # fmt: skip
            v = check_qa(chain, QAConfig())
            assert v["passed"], (q.question, q.options, q.answer, v)
            keys.add((q.question, tuple(q.options), q.answer))
            assert len(set(q.evidence_clip_ids)) >= 2 and set(q.evidence_clip_ids) <= set(w.graph["clip_ids"])
        assert len(keys) == len(qs)
        assert len({q.template for q in qs}) == len(qs)  # one per template without a cap


def test_answers_survive_vst_reward_parsing(asked):
    from curation.formats.question import DATA_SOURCE
    from curation.formats.rewards import compute_reward, wrong_answer

    for q, _ in asked:
        source = DATA_SOURCE[q.type]
        assert compute_reward(source, "\\boxed{" + q.answer + "}", [q.answer]) == 1.0, (q.template, q.answer)
        assert compute_reward(source, wrong_answer(source, q.answer), [q.answer]) == 0.0


def test_attribute_questions_never_name_the_colour_they_ask(asked):
    for q, _ in asked:
        if q.template == "attribute":
            colour = option_texts(q.options)["ABCDE".index(q.answer)]
            assert colour not in q.question.lower().split()


# ---- on-screen text (entities of type "text", as the signals perception names them) -----------
def text_world(seed: int) -> tuple[dict, list[tuple[str, float]]]:
    """Texts shown at known times, one clip per 3 s; the graph from extractions of type text."""
    rng = random.Random(seed)
    words = ["OPEN NOW", "SALE", "EXIT", "WELCOME HOME", "GATE 4", "NO PARKING", "TICKETS", "MENU"]
    n_clips = rng.randint(4, 8)
    shown = {}  # text -> first clip
    per_clip = []
    for k in range(n_clips):
        here = [t for t in words if t in shown and rng.random() < 0.5]
        if rng.random() < 0.7:
            new = rng.choice([t for t in words if t not in shown] or words)
            shown.setdefault(new, k)
            here.append(new)
        per_clip.append(sorted(set(here))[:2])
    clip_ids = [f"t{seed}-c{k:04d}" for k in range(n_clips)]
    facts = [ClipFacts(clip_ids[k], 3.0 * k, ClipExtraction.model_validate(
        {"entities": [{"name": "text " + t, "type": "text", "attributes": []} for t in per_clip[k]], "relations": []})) for k in range(n_clips)]  # fmt: skip
    entities, relations = merge_graph(facts)
    firsts = sorted(((min(k for k in range(n_clips) if t in per_clip[k]), t) for t in {t for ts in per_clip for t in ts}))
    return {"window_id": f"t{seed}-w000", "clip_ids": clip_ids, "entities": entities, "relations": relations}, firsts


def test_text_questions_answer_by_the_order_texts_were_shown():
    made = Counter()
    for seed in range(80):
        graph, firsts = text_world(seed)
        at = {normalize_name("text " + t)[len("text ") :]: k for k, t in firsts}  # as the graph names them ("TICKETS" -> "ticket")
        for q in candidates(graph, graph["window_id"], templates=["on_screen_text"]).get("on_screen_text", []):
            made[q.details["form"]] += 1
            texts = [t.lower() for t in option_texts(q.options)]
            if q.details["form"] in ("first", "last"):
                times = [at[t] for t in texts]
                want = times.index(min(times) if q.details["form"] == "first" else max(times))
            else:
                x = normalize_name(q.question.split('"')[1])
                later = sorted(k for k in at.values() if k > at[x])
                nxt = [t for t, k in at.items() if k == later[0]]
                assert len(nxt) == 1
                want = texts.index(nxt[0])
            assert q.answer == "ABCDE"[want], (q.question, q.options, q.answer, firsts)
            assert not any(t.startswith("text ") for t in texts)
            outcome = verify_template("on_screen_text", _qa(q), {}, graph["entities"], None, graph["relations"], graph["clip_ids"])
            assert outcome.passed is True, outcome
            changed = verify_template("on_screen_text", {**_qa(q), "answer": _changed(q)}, {}, graph["entities"], None, graph["relations"], graph["clip_ids"])
            assert (changed.passed, changed.reason) == (False, "answer_disagrees_graph"), changed
    assert set(made) == {"first", "last", "after"}, made


# ---- verify recomputes every template and sees a changed answer ------------------------------------
def _qa(q) -> dict:
    return {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer, "evidence_clip_ids": q.evidence_clip_ids}


def _changed(q) -> str:
    if q.type == "numerical":
        return str(int(q.answer) + 1)
    if q.type == "yes_no":
        return "No" if q.answer == "Yes" else "Yes"
    return next(letter for letter in "ABCDE"[: len(q.options)] if letter != q.answer)


def test_verify_recomputes_each_template_and_detects_a_changed_answer(asked):
    seen = Counter()
    for q, w in asked[:: max(1, len(asked) // 400)]:
        g = w.graph
        good = verify_template(q.template, _qa(q), q.details, g["entities"], w.captions, g["relations"], g["clip_ids"])
        assert good.passed is True, (q.template, q.question, good)
        bad = verify_template(q.template, {**_qa(q), "answer": _changed(q)}, q.details, g["entities"], w.captions, g["relations"], g["clip_ids"])
        assert bad.passed is False and bad.reason in ("answer_disagrees_graph", "answer_disagrees_captions"), (q.template, bad)
        seen[q.template] += 1
    assert set(seen) >= set(TEMPLATES) - {"on_screen_text"}, seen


def test_verify_reads_the_question_the_model_sees():
    graph = _graph([("c0", ["red circle"], [("red circle", "moves left")]), ("c1", ["red circle", "blue square"], [("red circle", "moves left"), ("blue square", "moves up")]),
                    ("c2", ["green circle", "blue square"], [("green circle", "moves down"), ("blue square", "moves up")])])  # fmt: skip
    facts = (graph["entities"], None, graph["relations"], graph["clip_ids"])
    mc = {"type": "multiple_choice", "options": ["A. left", "B. up", "C. down"], "answer": "B", "evidence_clip_ids": ["c1", "c2"]}
    assert verify_template("action", {**mc, "question": "Which way did the blue square move?"}, {}, *facts).passed is True
    # the question edited to ask about the red circle: the stored answer is wrong now
    out = verify_template("action", {**mc, "question": "Which way did the red circle move?"}, {}, *facts)
    assert (out.passed, out.reason) == (False, "answer_disagrees_graph")
    # not one of the bank's phrasings: not guessed
    out = verify_template("action", {**mc, "question": "How did the blue square travel?"}, {}, *facts)
    assert (out.passed, out.reason) == (False, "answer_unverifiable")
    count = {"type": "numerical", "options": [], "answer": "2", "evidence_clip_ids": ["c0", "c2"], "question": COUNT_KIND[0].format(kinds="circles")}
    assert verify_template("count_kind", count, {}, *facts).passed is True
    assert verify_template("count_kind", {**count, "question": COUNT_KIND[1].format(kinds="squares")}, {}, *facts).reason == "answer_disagrees_graph"


# ---- evidence span ----------------------------------------------------------------------------------
def test_evidence_span_labels():
    clips = [f"c{i}" for i in range(6)]
    assert evidence_span(["c4", "c5"], clips) == "current"  # the last clip and the one just before
    assert evidence_span(["c5", "c5"], clips) == "current"
    assert evidence_span(["c3", "c5"], clips) == "recent"  # within the last three
    assert evidence_span(["c3", "c4"], clips) == "recent"  # recent, without the last clip
    assert evidence_span(["c2", "c5"], clips) == "window"  # older than the last three
    assert evidence_span(["c0", "c1"], clips) == "window"
    assert evidence_span(["x9"], clips) is None
    assert evidence_span(["c0", "c1"], ["c0", "c1"]) == "current"


def _graph(clips: list[tuple[str, list[str], list[tuple[str, str]]]]) -> dict:
    facts = [ClipFacts(cid, 4.0 * i, ClipExtraction.model_validate({
        "entities": [{"name": n, "type": "object", "attributes": [n.split()[0]]} for n in names],
        "relations": [{"subject": s, "predicate": p, "object": "screen"} for s, p in rels]})) for i, (cid, names, rels) in enumerate(clips)]  # fmt: skip
    entities, relations = merge_graph(facts)
    return {"window_id": "w", "clip_ids": [c for c, _, _ in clips], "entities": entities, "relations": relations}


# Five clips where each span has a question: a thing new in the last clip, one that left in it,
# one moving up in the two before, and two circles over the window.
FIVE_CLIPS = [
    ("c0", ["red circle"], [("red circle", "moves left")]),
    ("c1", ["red circle", "blue square"], [("red circle", "moves left"), ("blue square", "moves up")]),
    ("c2", ["blue square"], [("blue square", "moves up")]),
    ("c3", ["blue square", "green triangle"], [("blue square", "moves up"), ("green triangle", "moves right")]),
    ("c4", ["green triangle", "yellow circle"], [("green triangle", "moves right"), ("green triangle", "disappears")]),
]


def test_questions_carry_the_span_of_their_evidence_on_constructed_graphs():
    graph = _graph(FIVE_CLIPS)
    found = candidates(graph, "w")
    by = {(q.template, q.details.get("form"), q.details.get("anchor") or q.details.get("entity")): q for qs in found.values() for q in qs}
    # what came just before the yellow circle (new in the last clip): the green triangle, one clip back
    q = by[("order", "before", "yellow circle")]
    assert q.evidence_clip_ids == ["c3", "c4"] and q.evidence_span == "current" and option_texts(q.options)["ABCDE".index(q.answer)] == "green triangle"
    # the green triangle left in the last clip, moving right in the one before
    q = by[("where_went", None, "green triangle")]
    assert q.evidence_clip_ids == ["c3", "c4"] and q.evidence_span == "current"
    # the blue square moves up, seen last in c2-c3: recent
    q = by[("action", None, "blue square")]
    assert q.evidence_clip_ids == ["c2", "c3"] and q.evidence_span == "recent"
    # right after the red circle (c0) came the blue square (c1): the window
    q = by[("order", "after", "red circle")]
    assert q.evidence_clip_ids == ["c0", "c1"] and q.evidence_span == "window"
    # two circles, first seen in c0 and c4: 2, over the window
    q = by[("count_kind", None, None)]
    assert q.answer == "2" and q.evidence_span == "window"
    # ambiguous facts are not asked: a clip with two new things, a thing moving two ways
    amb = _graph([("c0", ["red circle", "blue square"], [("red circle", "moves left")]), ("c1", ["green triangle"], [("green triangle", "moves up")]),
                  ("c2", ["green triangle"], [("green triangle", "moves down")])])  # fmt: skip
    got = candidates(amb, "w")
    assert not [q for q in got.get("order", []) if q.details["anchor"] in ("red circle", "blue square")]
    assert "action" not in got and "where_went" not in got
    # a clip with three relations may have lost one: no motion question about what it shows
    full = _graph([("c0", ["red circle"], [("red circle", "moves left")]),
                   ("c1", ["red circle", "blue square"], [("red circle", "moves left"), ("blue square", "moves up"), ("blue square", "disappears")])])  # fmt: skip
    assert "action" not in candidates(full, "w")


def test_a_cap_balances_the_spans_round_robin():
    graph = _graph(FIVE_CLIPS)
    found = candidates(graph, "w")
    plain = select(found, max_per_window=3)
    balanced = select(found, max_per_window=3, balance_spans=True)
    assert len(plain) == len(balanced) == 3
    assert [q.evidence_span for q in balanced] == ["current", "recent", "window"]
    assert len({q.template for q in balanced}) == 3
    assert len(select(found)) == len(found)  # no cap: one per template
    # a plain cap keeps templates in a seeded order: not always the same ones dropped
    assert len({tuple(q.template for q in select(found, 2, seed=s)) for s in "abcdefgh"}) >= 2


def test_window_facts_distrust_what_a_full_extraction_may_have_cut():
    five = ["red circle", "blue square", "green triangle", "white circle", "yellow square"]
    graph = _graph([("c0", ["magenta circle"], [("magenta circle", "moves left")]), ("c1", five, []), ("c2", ["magenta circle"], [("magenta circle", "moves left")])])
    facts = WindowFacts.of_graph(graph)
    assert facts.full_from == 1 and not facts.trusted(1)
    assert "count_kind" not in candidates(graph, "w")  # a name may be missing from c1


# ---- through the real stages: qa params, the evidence_span column, verify, stats -----------------
def test_qa_stage_caps_balances_and_verify_and_stats_count_every_template(tmp_path):
    import json
    from pathlib import Path

    from curation.synthetic import write_synthetic_set
    from pipelines.catalog import open_run
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe
    from pipelines.stats import standard_report
    from pipelines.teacher_sim import SimulatedTeacherServer

    videos = write_synthetic_set(tmp_path / "worlds", count=3, seed=515, n_scenes=4, scene_s=(6.0, 10.0), width=160, height=120, fps=12)
    manifest = tmp_path / "worlds" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"path": str(p), "id": p.stem, "annotations_file": str(p.with_suffix(".json"))}) + "\n" for p in videos))
    recipe = {
        "name": "questions-test", "inputs": [{"manifest": str(manifest)}], "allowed_roots": [str(manifest.parent)],
        "runner": {"kind": "local", "workers": 1, "part_size": 8},
        "stages": [
            {"stage": "ingest"}, {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 4.0}, {"stage": "perceive", "source": "annotation"},
            {"stage": "graph", "source": "teacher"}, {"stage": "qa", "mode": "mixed", "types": ["multiple_choice", "numerical"], "max_per_window": 3, "balance_spans": True},
            {"stage": "think", "mode": "teacher"}, {"stage": "verify", "samples": 3},
        ],
    }  # fmt: skip
    with SimulatedTeacherServer(rate=0.0, seed=1) as server:
        recipe["teacher"] = {"text": {"base_url": server.base_url, "model": "simulated-teacher"}, "concurrency": 4, "timeout_s": 30, "max_retries": 1}
        run_recipe(parse_recipe(recipe), "r", Path(__file__).resolve().parents[1], tmp_path / "runs", progress=False, echo=lambda *_: None)
    run_dir = RunDir(tmp_path / "runs" / "r")
    questions = [q for q in run_dir.read_rows("questions") if q["status"] == "ok"]
    graphs = {g["window_id"]: g for g in run_dir.read_rows("graphs") if g["status"] == "ok"}
    templated = Counter(q["window_id"] for q in questions if q["template"] != "teacher")
    assert templated and max(templated.values()) <= 3  # the cap: template questions only
    for q in questions:
        assert q["evidence_span"] == evidence_span(q["qa"]["evidence_clip_ids"], graphs[q["window_id"]]["clip_ids"]), q
        assert q["qa"]["type"] in ("multiple_choice", "numerical")
    # balanced: each window's template questions cover as many spans as its candidates offer
    for window_id, g in graphs.items():
        offered = {q.evidence_span for qs in candidates(g, window_id, types=["multiple_choice", "numerical"]).values() for q in qs}
        got = {q["evidence_span"] for q in questions if q["window_id"] == window_id and q["template"] != "teacher"}
        assert len(got) == min(3, len(offered)), (window_id, got, offered)
    assert len({q["evidence_span"] for q in questions if q["template"] != "teacher"}) >= 2
    chains = {c["chain_id"]: c for c in run_dir.read_rows("chains") if c["status"] == "ok"}
    verdicts = run_dir.read_rows("answer_verdicts")
    for v in verdicts:
        if chains[v["chain_id"]]["qa_template"] != "teacher":
            assert v["passed"] is True and json.loads(v["details"])["method"] == "template", v
    with open_run(run_dir.root) as cat:
        report = standard_report(cat)
    spans = report.section("evidence_spans")
    for span in {q["evidence_span"] for q in questions}:
        assert spans.lookup(evidence_span=span)["questions"] == sum(1 for q in questions if q["evidence_span"] == span)
    templates = report.section("templates")
    for t in {q["template"] for q in questions}:
        row = templates.lookup(template=t)
        assert row["questions"] == sum(1 for q in questions if q["template"] == t)
        assert row["chains"] == sum(1 for c in chains.values() if c["qa_template"] == t)


def test_a_five_entity_clip_that_reached_its_setting_is_trusted():
    things = ["red circle", "blue square", "green triangle", "white circle"]
    clips = [("c0", ["magenta circle"], []), ("c1", things, []), ("c2", ["yellow circle"], [])]
    facts = [ClipFacts(cid, 4.0 * i, ClipExtraction.model_validate({
        "entities": [{"name": n, "type": "object", "attributes": [n.split()[0]]} for n in names] + ([{"name": "scene", "type": "place", "attributes": ["dark"]}] if cid == "c1" else []),
        "relations": []})) for i, (cid, names, _) in enumerate(clips)]  # fmt: skip
    entities, relations = merge_graph(facts)
    assert WindowFacts.of(entities, relations, ["c0", "c1", "c2"]).full_from is None


def test_text_questions_from_the_signals_perception():
    """On-screen text as curation.perception names it, clip by clip, through the real merge."""
    from curation.perception import perceive_signals

    plan = [["OPEN NOW"], ["OPEN NOW"], ["EXIT"], ["EXIT", "TICKETS"], ["MENU"], ["MENU"]]
    rows = [{"brightness": 90.0, "blur": 300.0, "motion": 3.0, "camera_direction": "static", "ocr_lines": texts, "ocr_confidence": 0.9,
             "people": 0, "faces": 0, "people_positions": [], "face_positions": [], "dominant_colour": "grey"} for texts in plan]  # fmt: skip
    facts = [ClipFacts(f"c{k}", 3.0 * k, perceive_signals(row, rows[k - 1] if k else None).facts) for k, row in enumerate(rows)]
    entities, relations = merge_graph(facts)
    graph = {"window_id": "sig-w000", "clip_ids": [f"c{k}" for k in range(len(plan))], "entities": entities, "relations": relations}
    got = candidates(graph, "sig-w000", templates=["on_screen_text"])["on_screen_text"]
    first_shown = {"open now": 0, "exit": 2, "ticket": 3, "menu": 4}
    for q in got:
        texts = [normalize_name(t) for t in option_texts(q.options)]
        answer = texts["ABCDE".index(q.answer)]
        if q.details["form"] == "first":
            assert answer == min(texts, key=first_shown.get)
        elif q.details["form"] == "last":
            assert answer == max(texts, key=first_shown.get)
        else:
            x = normalize_name(q.question.split('"')[1])
            assert first_shown[answer] == min(v for v in first_shown.values() if v > first_shown[x])
    assert {q.details["form"] for q in got} == {"first", "last", "after"}
    assert all('"text ' not in q.question and not any(t.startswith("text ") for t in option_texts(q.options)) for q in got)


def _signals_graph(plan: list[list[str]]) -> dict:
    """A window perceived from signals: per clip, where a face is seen (a still camera)."""
    from curation.perception import perceive_signals

    rows = [{"brightness": 90.0, "blur": 300.0, "motion": 0.5, "camera_direction": "static", "ocr_lines": [], "ocr_confidence": None,
             "people": len(where), "faces": len(where), "people_positions": where, "face_positions": where, "dominant_colour": "grey"}
            for where in plan]  # fmt: skip
    facts = [ClipFacts(f"c{k}", 2.0 * k, perceive_signals(row, rows[k - 1] if k else None).facts) for k, row in enumerate(rows)]
    entities, relations = merge_graph(facts)
    return {"window_id": "still-w000", "clip_ids": [f"c{k}" for k in range(len(plan))], "entities": entities, "relations": relations}


def test_still_there_from_the_signals_perception_asks_only_what_the_graph_is_sure_of():
    """A still face over two clips (the carphone sample) gets "still on screen? Yes"; a person
    who left before the last clip gets No; a face missed for one clip, or one that leaves in the
    last clip, gets no question (the graph cannot tell a miss or a second person from a fact)."""
    def asked(plan):
        graph = _signals_graph(plan)
        return graph, candidates(graph, "still-w000", templates=["still_there"]).get("still_there", [])

    graph, [q] = asked([["centre"], ["centre"]])
    assert (q.type, q.answer, q.evidence_clip_ids, q.evidence_span) == ("yes_no", "Yes", ["c0", "c1"], "current")
    assert "person in the centre" in q.question
    assert verify_template("still_there", _qa(q), {}, graph["entities"], None, graph["relations"], graph["clip_ids"]).passed is True
    bad = verify_template("still_there", {**_qa(q), "answer": "No"}, {}, graph["entities"], None, graph["relations"], graph["clip_ids"])
    assert bad.reason == "answer_disagrees_graph"

    _, gone = asked([["left"], ["left"], [], []])
    assert [(q.answer, q.evidence_clip_ids) for q in gone] == [("No", ["c2", "c3"])]
    assert asked([["left"], [], ["left"]])[1] == []  # missed for a clip: not one unbroken sighting
    assert asked([["left"], ["left"], []])[1] == []  # left in the last clip: no No from one clip
