"""Thoughts written by code (think mode compose) and made fluent by a teacher (mode rewrite),
on what the stages really produce: the synthetic worlds' annotations read into facts by rules,
merged into a window graph, composed clip by clip."""

from __future__ import annotations

import json
import re

import pytest
from pathlib import Path

from curation.compose import caption_rows, compose_thoughts, thought_issues, window_index
from curation.extract import extract_facts
from curation.graph import ClipFacts, mentions, merge_graph
from curation.synthetic import ground_truth, make_script
from pipelines.recipe import parse_recipe
from pipelines.run import run_recipe
from pipelines.rundir import RunDir
from pipelines.stages.think import ThinkParams, rewrite_problem

ROOT = Path(__file__).resolve().parents[1]


def world_window(seed: int, clip_s: float = 4.0) -> tuple[list[dict], dict]:
    """(clips with captions, graph) of a synthetic world, the way perceive + graph build them."""
    truth = ground_truth(make_script(f"w{seed}", seed=seed))
    clips, start, i = [], 0.0, 0
    while start < truth["duration_s"] - 1e-6:
        end = min(truth["duration_s"], start + clip_s)
        texts = [
            e["text"] for e in truth["events"]
            if (e["start_s"] < end and e["end_s"] > start) or (e["start_s"] == e["end_s"] and start <= e["start_s"] < end)
        ]  # fmt: skip
        clips.append({"clip_id": f"w{seed}-c{i}", "start_s": start, "end_s": end, "caption": " ".join(texts), "entities": []})
        start, i = end, i + 1
    facts = [ClipFacts(c["clip_id"], c["start_s"], extract_facts(c["caption"])) for c in clips]
    entities, relations = merge_graph(facts)
    return clips, {"entities": entities, "relations": relations}


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_no_thought_names_what_a_later_clip_shows_first(seed):
    clips, graph = world_window(seed)
    thoughts = compose_thoughts(clips, graph, seed=f"w{seed}", max_words=30)
    order = {c["clip_id"]: k for k, c in enumerate(clips)}
    assert [t["clip_id"] for t in thoughts] == [c["clip_id"] for c in clips]  # one per clip, in order
    for k, t in enumerate(thoughts):
        known = [e["name"] for e in graph["entities"] if order[e["first_clip_id"]] <= k]
        later = [e["name"] for e in graph["entities"] if order[e["first_clip_id"]] > k and not any(e["name"] in n for n in known)]
        leaked = [n for n in later if mentions(t["text"], n)]
        assert not leaked, f"clip {k}: {t['text']!r} names {leaked}, first seen later"
        assert len(t["text"].split()) <= 30 and t["source"] == "composed"
        assert set(t["entities"]) <= set(known)


def test_composed_thoughts_pass_the_gates_rule_checks_on_every_world():
    bad = []
    for seed in SEEDS:
        clips, graph = world_window(seed)
        captions = caption_rows(clips)
        index = window_index(clips, graph, captions)
        thoughts = compose_thoughts(clips, graph, seed=f"w{seed}", max_words=30, captions=captions)
        bad += [(seed, k, t["text"], [i.code for i in issues]) for k, t in enumerate(thoughts) if (issues := thought_issues(thoughts, k, index, captions))]
    assert not bad, bad[:5]


def test_a_new_thing_is_named_in_the_clip_that_shows_it_and_a_disappearance_is_told():
    clips, graph = world_window(3)
    thoughts = compose_thoughts(clips, graph, seed="w3")
    order = {c["clip_id"]: k for k, c in enumerate(clips)}
    for e in graph["entities"]:
        k = order[e["first_clip_id"]]
        assert mentions(thoughts[k]["text"], e["name"]) or e["name"] in thoughts[k]["entities"], (e["name"], thoughts[k]["text"])
    ids = {e["entity_id"]: e["name"] for e in graph["entities"]}
    for r in graph["relations"]:
        if r["predicate"] in ("disappears", "leaves"):
            text = thoughts[order[r["clip_id"]]]["text"].lower()
            assert mentions(text, ids[r["subject"]]) and re.search(r"disappear|vanish|leave|gone|out of view|no longer", text), text


def test_wording_is_seeded_same_window_same_words_other_windows_vary():
    clips, graph = world_window(5)
    a = compose_thoughts(clips, graph, seed="window-a")
    assert a == compose_thoughts(clips, graph, seed="window-a")
    texts = {json.dumps([t["text"] for t in compose_thoughts(clips, graph, seed=f"window-{i}")]) for i in range(8)}
    assert len(texts) >= 3  # phrase banks give other windows other words
    openings = {t["text"].split()[1] for seed in SEEDS for t in compose_thoughts(*world_window(seed), seed=f"w{seed}")}
    assert len(openings) >= 8  # not one template for every thought of the corpus


def test_max_words_drops_whole_clauses_never_half_words():
    clips, graph = world_window(7)
    for limit in (6, 10, 30):
        for t in compose_thoughts(clips, graph, seed="w7", max_words=limit):
            assert len(t["text"].split()) <= limit and t["text"].endswith(".")


# ---- rewrite: the teacher's fluent version replaces the composed one only if it says the same -------
def _first_window():
    clips, graph = world_window(1)
    captions = caption_rows(clips)
    return clips, graph, captions, window_index(clips, graph, captions), compose_thoughts(clips, graph, seed="w1", captions=captions)


def test_rewrite_problem_refuses_an_added_or_dropped_thing_and_a_changed_event():
    clips, graph, captions, index, composed = _first_window()
    first = composed[0]
    names = [e["name"] for e in graph["entities"] if e["first_clip_id"] == clips[0]["clip_id"]]
    assert names and rewrite_problem(first["text"], first, names, [], 0, index, captions) is None  # the same words pass
    assert rewrite_problem(first["text"].rstrip(".") + ", next to a purple dog.", first, names, [], 0, index, captions) == "rewrite_adds_entity"
    assert rewrite_problem("Something is here.", first, names, [], 0, index, captions) == "rewrite_drops_entity"
    moved = [t for t in composed if re.search(r"\b(left|right|up|down)\b", t["text"])]
    assert moved, "world 1 has a motion"
    t = moved[0]
    k = composed.index(t)
    flipped = re.sub(r"\b(left|right|up|down)\b", lambda m: {"left": "right", "right": "left", "up": "down", "down": "up"}[m.group(1)], t["text"])
    known = [e["name"] for e in graph["entities"] if [c["clip_id"] for c in clips].index(e["first_clip_id"]) <= k]
    assert rewrite_problem(flipped, t, known, composed[:k], k, index, captions) == "rewrite_changes_events"


def rewrite_reply(body: dict) -> str:
    """A fake fluent teacher: says the note again after "Here," and, for the first clip (no
    earlier notes), adds a thing the clip does not show."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    note = re.search(r"Note: (.*)", user).group(1).strip()
    if "(nothing yet)" in user:
        return json.dumps({"thought": note.rstrip(".") + " and a purple dog."})
    return json.dumps({"thought": "Here, " + note[0].lower() + note[1:]})


def test_rewrite_mode_in_a_real_run_keeps_faithful_rewrites_and_falls_back_on_an_added_thing(tmp_path):
    from _teacher_fixtures import FakeTeacherServer, synthetic_manifest

    manifest = synthetic_manifest(ROOT / "data" / "samples", tmp_path, count=1)
    with FakeTeacherServer(reply=rewrite_reply) as teacher:
        data = {
            "name": "rewrite", "inputs": [{"manifest": str(manifest)}], "allowed_roots": ["data/samples"],
            "teacher": {"text": {"base_url": teacher.base_url, "model": "fake-teacher", "structured_output": "json_object_schema"}},
            "stages": [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "perceive"}, {"stage": "graph"}, {"stage": "qa"},
                       {"stage": "think", "mode": "rewrite"}],
        }  # fmt: skip
        run_recipe(parse_recipe(data), "r", ROOT, tmp_path / "runs", progress=False, echo=lambda *_: None)
        asked = [m["content"] for b in teacher.bodies for m in b["messages"] if m["role"] == "user"]
    assert asked and all(a.startswith("Note: ") for a in asked)  # graph from facts, thoughts composed: only rewrites asked
    run_dir = RunDir(tmp_path / "runs" / "r")
    chains = [c for c in run_dir.read_rows("chains") if c["status"] == "ok"]
    assert chains
    spans = {q["question_id"]: q["evidence_span"] for q in run_dir.read_rows("questions")}
    assert all(c["evidence_span"] == spans[c["question_id"]] and c["evidence_span"] in ("current", "recent", "window") for c in chains)
    for chain in chains:
        thoughts = chain["thoughts"]
        assert thoughts[0]["source"] == "composed" and thoughts[0]["fallback"] == "rewrite_adds_entity"
        assert "dog" not in thoughts[0]["text"]
        rewritten = [t for t in thoughts[1:] if t["source"] == "rewritten"]
        assert rewritten and all(t["text"].startswith("Here, ") and t["fallback"] is None for t in rewritten)
        assert dict(chain["prompt_versions"])["think"] == "compose.v1+rewrite.v1"


def test_compose_mode_needs_no_teacher():
    assert ThinkParams().mode == "compose"


def test_rewrite_without_a_teacher_keeps_the_composed_thoughts_and_says_why(tmp_path):
    from _teacher_fixtures import synthetic_manifest

    manifest = synthetic_manifest(ROOT / "data" / "samples", tmp_path, count=1)
    data = {
        "name": "rewrite-no-teacher", "inputs": [{"manifest": str(manifest)}], "allowed_roots": ["data/samples"],
        "stages": [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "perceive"}, {"stage": "graph"}, {"stage": "qa"},
                   {"stage": "think", "mode": "rewrite"}],
    }  # fmt: skip
    run_recipe(parse_recipe(data), "r", ROOT, tmp_path / "runs", progress=False, echo=lambda *_: None)
    chains = RunDir(tmp_path / "runs" / "r").read_rows("chains")
    assert chains and all(c["status"] == "ok" for c in chains)  # no chain lost to the missing teacher
    for chain in chains:
        assert all(t["source"] == "composed" and t["fallback"] == "rewrite_teacher_config_error" for t in chain["thoughts"])
