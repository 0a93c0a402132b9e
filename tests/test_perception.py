"""Perception without a vision teacher: captions and graph facts from clip signals
(curation/perception.py), the perceive sources (`auto` = annotations > vision teacher > signals),
and the graph stage taking a clip's facts without a teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _teacher_fixtures import FakeTeacherServer
from curation.checks import build_graph_index, check_causality, check_grounding
from curation.graph import ClipExtraction, ClipFacts, entity_id, grounded, mentions, merge_graph, normalize_name
from curation.perception import SIGNALS_PROMPT_VERSION, perceive_signals, text_name
from curation.schemas import CLIP_SIGNALS, TABLES, to_table
from pipelines.recipe import parse_recipe
from pipelines.rundir import RunDir
from pipelines.run import run_recipe

PROJECT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT / "data" / "samples"

# A clip where the detectors saw nothing in particular: well lit, sharp, static, no text, nobody.
QUIET = {
    "brightness": 120.0, "blur": 400.0, "motion": 5.0, "camera_direction": "static", "ocr_text": None, "ocr_lines": [],
    "ocr_confidence": None, "text_area": 0.0, "people": 0, "faces": 0, "people_positions": [], "face_positions": [],
    "dominant_colour": None, "exclude_reasons": [], "status": "ok", "reason": None, "error": None,
}  # fmt: skip


def sig(**kw) -> dict:
    return {**QUIET, **kw}


def names(p) -> list[tuple[str, str, list[str]]]:
    return [(e.name, e.type, e.attributes) for e in p.facts.entities]


def rels(p) -> list[tuple[str, str, str]]:
    return [(r.subject, r.predicate, r.object) for r in p.facts.relations]


# ---- captions and facts say what the signals saw, and nothing else ---------------------------------
def test_on_screen_text_becomes_a_text_entity_named_in_the_caption():
    p = perceive_signals(sig(ocr_text="OPEN", ocr_lines=["OPEN"], ocr_confidence=0.93, text_area=0.02))
    assert p.caption == "The text OPEN is on screen. The camera is static. The scene is well lit."
    assert names(p) == [("text OPEN", "text", []), ("scene", "place", ["well lit"])]
    assert rels(p) == [] and p.on_screen_text == ["OPEN"] and p.entities == ["text OPEN", "scene"]


def test_a_person_on_the_left_with_a_face_is_said_with_where_they_are():
    p = perceive_signals(sig(people=1, faces=1, people_positions=["left"], face_positions=["left"]))
    assert p.caption == "There is a person on the left, face visible. The camera is static. The scene is well lit."
    assert names(p)[0] == ("person on the left", "person", ["face visible"])
    assert "right" not in p.caption and "centre" not in p.caption and "text" not in p.caption
    two = perceive_signals(sig(people=2, people_positions=["right", "right"]))
    assert two.caption.startswith("There are two people on the right: a person on the right and one more.")
    assert names(two)[0] == ("person on the right", "person", [])


def test_camera_panning_right_is_a_motion_relation_and_nothing_moves_left():
    p = perceive_signals(sig(camera_direction="right", motion=120.0))
    assert p.caption == "The camera moves right. There is a lot of motion. The scene is well lit."
    assert names(p) == [("camera", "other", []), ("scene", "place", ["well lit"])]
    assert rels(p) == [("camera", "moves right", "view")] and p.actions == ["camera moves right"]
    assert "left" not in p.caption


def test_a_dark_blue_blurry_scene_is_said_as_the_scene_entitys_attributes():
    p = perceive_signals(sig(brightness=30.0, dominant_colour="blue", blur=20.0, motion=1.5))
    assert p.caption == "The camera is static. There is little motion. The scene is dark, mostly blue and blurry."
    assert names(p) == [("scene", "place", ["dark", "blue", "blurry"])]


def test_a_row_with_no_measurement_invents_nothing():
    p = perceive_signals({k: None for k in QUIET} | {"status": "ok"})
    assert p.caption == "The signals saw nothing to describe." and p.facts.entities == [] and p.facts.relations == []


def test_the_previous_clip_says_what_changed():
    before = sig(ocr_lines=["OPEN"], ocr_confidence=0.9, people=1, people_positions=["left"], brightness=150.0)
    now = sig(people=1, people_positions=["right"], brightness=60.0, camera_direction="left")
    p = perceive_signals(now, before)
    assert p.caption == (
        "A person on the right appears. The text OPEN is gone. The person on the left is gone. The camera moves left. "
        "The scene is dim. The scene is darker than in the previous clip."
    )
    assert rels(p) == [("camera", "moves left", "view"), ("text OPEN", "disappears", "view"), ("person on the left", "disappears", "view")]
    same = perceive_signals(before, before)
    assert same.caption.startswith("The text OPEN is still on screen. There is still a person on the left.")
    assert rels(same) == [] and "gone" not in same.caption


def test_ocr_lines_become_valid_entity_names():
    p = perceive_signals(sig(ocr_lines=["SALE 50% OFF!", "标题", "x"], ocr_confidence=0.8))
    assert p.caption.startswith('The text SALE 50 OFF ("SALE 50% OFF!") is on screen. On screen: "标题".')
    assert [n for n, t, _ in names(p) if t == "text"] == ["text SALE 50 OFF"]  # "x" is too short to be text
    assert text_name("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG") == "text THE QUICK BROWN FOX JUMPS OVER THE"
    assert text_name("标题") is None
    assert perceive_signals(sig(ocr_lines=["OPEN"], ocr_confidence=0.3)).facts.entities[0].name == "scene"  # a misreading


ROWS = [
    sig(ocr_lines=["OPEN", "EXIT 3", "Ünïcode café"], ocr_confidence=0.9, people=3, faces=1,
        people_positions=["left", "centre", "right"], face_positions=["centre"], camera_direction="up", dominant_colour="red"),
    sig(people=2, faces=2, people_positions=[], face_positions=["left", "left"], brightness=200.0, camera_direction="down"),
    sig(people=1, people_positions=[], brightness=10.0, blur=5.0, dominant_colour="dark green"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS)
def test_every_entity_is_named_word_for_word_in_its_caption(row):
    """The graph keeps only what the caption supports, and the answer check orders entities by
    the first caption naming them: every fact must be in the caption of its clip."""
    p = perceive_signals(row, ROWS[0])
    assert len(p.facts.entities) <= 5 and len(p.facts.relations) <= 3
    for e in p.facts.entities:
        assert mentions(p.caption, normalize_name(e.name)) and grounded(e.name, p.caption), (e.name, p.caption)
    assert ClipExtraction.model_validate_json(p.facts.model_dump_json()) == p.facts


# ---- the facts make a graph the checks read -------------------------------------------------------
def _window() -> tuple[list[str], list[dict], dict[str, dict]]:
    rows = [
        sig(people=1, people_positions=["left"], camera_direction="right"),
        sig(ocr_lines=["OPEN"], ocr_confidence=0.9, people=1, people_positions=["left"], camera_direction="right"),
        sig(ocr_lines=["OPEN"], ocr_confidence=0.9),
    ]
    clip_ids = ["c0", "c1", "c2"]
    seen = [perceive_signals(r, rows[i - 1] if i else None) for i, r in enumerate(rows)]
    captions = {c: {"caption": p.caption, "entities": p.entities} for c, p in zip(clip_ids, seen)}
    return clip_ids, seen, captions


def test_facts_merge_into_a_graph_with_the_expected_entities_and_relations():
    clip_ids, seen, _ = _window()
    entities, relations = merge_graph([ClipFacts(c, 5.0 * i, p.facts) for i, (c, p) in enumerate(zip(clip_ids, seen))])
    by_name = {e["name"]: e for e in entities}
    assert set(by_name) == {"person on the left", "camera", "scene", "text open"}
    assert by_name["person on the left"]["clip_ids"] == ["c0", "c1"] and by_name["person on the left"]["type"] == "person"
    assert by_name["text open"]["first_clip_id"] == "c1" and by_name["text open"]["type"] == "text"
    assert by_name["scene"]["clip_ids"] == clip_ids
    got = {(r["subject"], r["predicate"], r["object"], r["clip_id"]) for r in relations}
    assert got == {
        (entity_id("camera"), "moves_right", "view", "c0"),
        (entity_id("camera"), "moves_right", "view", "c1"),
        (entity_id("person on the left"), "disappears", "view", "c2"),
    }


def test_the_checks_read_thoughts_against_the_signals_graph():
    clip_ids, seen, captions = _window()
    entities, relations = merge_graph([ClipFacts(c, 5.0 * i, p.facts) for i, (c, p) in enumerate(zip(clip_ids, seen))])
    graph = {"window_id": "w", "clip_ids": clip_ids, "entities": entities, "relations": relations}

    def chain(*texts):
        thoughts = [{"clip_id": c, "start_s": 5.0 * i, "end_s": 5.0 * i + 5, "text": t, "entities": []} for i, (c, t) in enumerate(zip(clip_ids, texts))]
        return {"chain_id": "ch", "thoughts": thoughts}

    def failures(c):
        index = build_graph_index(graph, clip_ids, captions)
        return {i["code"] for v in (check_grounding(c, index, captions), check_causality(c, index)) for i in json.loads(v["details"])["issues"]}

    good = chain("A person on the left; the camera moves right.", "The text OPEN appears.", "The person on the left is gone.")
    assert failures(good) == set()
    assert "thought_wrong_attribute" in failures(chain("The camera moves left.", "The text OPEN appears.", "Nothing else."))
    assert "thought_leaks_future" in failures(chain("The text OPEN is on screen.", "The camera moves right.", "A person on the left."))
    assert "thought_leaks_future_event" in failures(chain("The person on the left disappears.", "The text OPEN appears.", "Quiet."))


# ---- the stages, in real runs -----------------------------------------------------------------------
def _manifest(folder: Path, synthetic: bool = True) -> Path:
    """bikes (real, no annotations) and, if asked, one synthetic video with its ground truth as annotations."""
    lines = [{"path": str(SAMPLES / "real" / "bikes.mp4"), "id": "bikes"}]
    if synthetic:
        truth = json.loads((SAMPLES / "synthetic" / "synthetic-7-000.json").read_text())
        events = [{k: e[k] for k in ("start_s", "end_s", "text", "kind")} for e in truth["events"]]
        lines.append({"path": str(SAMPLES / "synthetic" / "synthetic-7-000.mp4"), "id": "syn0", "annotations": events})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _recipe(manifest: Path, perceive: dict | None = None, graph: dict | None = None, teacher: dict | None = None) -> dict:
    return {
        "name": "perception-test",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": ["data/samples"],
        "runner": {"workers": 1, "part_size": 4},
        **({"teacher": teacher} if teacher else {}),
        "stages": [
            {"stage": "ingest"},
            {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
            {"stage": "perceive", **(perceive or {})},
            {"stage": "graph", **(graph or {})},
            {"stage": "qa", "mode": "template"},
        ],
    }


def _hand_signals(run_dir: RunDir, video_id: str, rows: list[dict], others: dict | None = None) -> None:
    """clip_signals rows written by hand for one video's clips (in clip order); `others` for every other clip."""
    clips = sorted(run_dir.read_rows("clips"), key=lambda c: (c["video_id"], c["index"]))
    mine = [c for c in clips if c["video_id"] == video_id]
    out = []
    for c in clips:
        row = rows[mine.index(c)] if c in mine else others
        if row is not None:
            out.append({**row, **{k: c[k] for k in ("clip_id", "video_id", "window_id", "start_s", "end_s")}, "run": "hand"})
    run_dir.write_part("clip_signals", "part-hand", to_table(out, CLIP_SIGNALS))


def _run_with_signals(tmp_path: Path, data: dict, rows: list[dict], others: dict | None = None, name: str = "r") -> RunDir:
    recipe = parse_recipe(data)
    runs = tmp_path / "runs"
    run_recipe(recipe, name, PROJECT, runs, progress=False, echo=lambda *_: None, until="segment")
    run_dir = RunDir(runs / name)
    bikes = next(v["video_id"] for v in run_dir.read_rows("videos") if v["source_id"] == "bikes")
    _hand_signals(run_dir, bikes, rows, others)
    run_recipe(recipe, name, PROJECT, runs, progress=False, echo=lambda *_: None)
    return run_dir


# bikes has four clips: a person on the left, then the text OPEN, then a person on the right, the camera turning right.
BIKES = [
    sig(people=1, people_positions=["left"]),
    sig(people=1, people_positions=["left"], ocr_lines=["OPEN"], ocr_confidence=0.9),
    sig(people=1, people_positions=["right"], camera_direction="right"),
    sig(people=1, people_positions=["right"], camera_direction="right", dominant_colour="green"),
]


def _by_source(run_dir: RunDir) -> dict[str, list[dict]]:
    videos = {v["video_id"]: v["source_id"] for v in run_dir.read_rows("videos")}
    out: dict[str, list[dict]] = {}
    for c in sorted(run_dir.read_rows("captions"), key=lambda c: c["clip_id"]):
        out.setdefault(videos[c["video_id"]], []).append(c)
    return out


def test_auto_takes_annotations_then_signals_and_graph_needs_no_teacher_for_facts(tmp_path):
    run_dir = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path)), BIKES, others=sig())
    caps = _by_source(run_dir)
    assert caps["syn0"] and all(c["source"] == "annotation" and c["facts"] for c in caps["syn0"])  # annotations first, facts read by rules
    assert [c["source"] for c in caps["bikes"]] == ["signals"] * 4
    assert all(c["status"] == "ok" and c["prompt_version"] == SIGNALS_PROMPT_VERSION for c in caps["bikes"])
    assert caps["bikes"][1]["on_screen_text"] == ["OPEN"] and "text OPEN" in caps["bikes"][1]["entities"]
    assert ClipExtraction.model_validate_json(caps["bikes"][2]["facts"]).relations[0].predicate == "moves right"
    assert run_dir.read_table("captions").schema.equals(TABLES["captions"])

    graphs = {g["video_id"]: g for g in run_dir.read_rows("graphs")}
    videos = {v["source_id"]: v["video_id"] for v in run_dir.read_rows("videos")}
    bikes = graphs[videos["bikes"]]
    assert bikes["status"] == "ok" and bikes["teacher"] is None and bikes["cache_keys"] == [] and bikes["prompt_version"] == "facts"
    assert {e["name"] for e in bikes["entities"]} == {"person on the left", "text open", "person on the right", "camera", "scene"}
    assert {r["predicate"] for r in bikes["relations"]} == {"disappears", "moves_right"}
    # the annotated video's captions carry the facts read from them: no teacher either
    syn0 = graphs[videos["syn0"]]
    assert syn0["status"] == "ok" and syn0["teacher"] is None and syn0["prompt_version"] == "facts"
    assert all(" " in e["name"] for e in syn0["entities"])  # "red circle": colour + shape, as the annotations say
    assert not (run_dir.root / "teacher_usage").exists() or not run_dir.read_rows("teacher_usage")

    questions = [q for q in run_dir.read_rows("questions") if q["window_id"] == bikes["window_id"]]
    assert questions and all(q["status"] == "ok" for q in questions)
    assert {q["template"] for q in questions} >= {"first_appearance"}


def test_graph_source_facts_refuses_clips_without_facts_and_teacher_ignores_them(tmp_path):
    with FakeTeacherServer() as server:
        teacher = {"text": {"base_url": server.base_url, "model": "fake-teacher", "structured_output": "json_object_schema"}}
        facts_only = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path), perceive={"annotation_facts": False}, graph={"source": "facts"}, teacher=teacher),
                                       BIKES, others=sig(), name="facts")  # fmt: skip
        assert server.requests == 0  # facts only: no window asked the teacher
        by_teacher = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path, synthetic=False), graph={"source": "teacher"}, teacher=teacher), BIKES, name="teacher")
        assert server.requests == 4  # one extraction per bikes clip, facts or not
    videos = {v["source_id"]: v["video_id"] for v in facts_only.read_rows("videos")}
    graphs = {g["video_id"]: g for g in facts_only.read_rows("graphs")}
    assert graphs[videos["bikes"]]["status"] == "ok"
    assert graphs[videos["syn0"]]["reason"] == "no_clip_facts" and "perceive `source: signals`" in graphs[videos["syn0"]]["error"]
    [g] = by_teacher.read_rows("graphs")
    assert g["teacher"] == "fake-teacher" and len(g["cache_keys"]) == 4 and g["prompt_version"] == "graph.v1"


def test_auto_prefers_a_vision_teacher_to_signals(tmp_path):
    with FakeTeacherServer() as server:
        teacher = {
            "text": {"base_url": server.base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
            "vision": {"base_url": server.base_url, "model": "fake-vision", "structured_output": "json_schema"},
        }
        run_dir = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path), perceive={"frames_per_clip": 1, "frame_width": 64}, teacher=teacher), BIKES, others=sig())
    caps = _by_source(run_dir)
    assert all(c["source"] == "annotation" for c in caps["syn0"])
    assert [c["source"] for c in caps["bikes"]] == ["fake-vision"] * 4 and all(c["facts"] is None for c in caps["bikes"])
    graphs = {g["video_id"]: g for g in run_dir.read_rows("graphs")}
    videos = {v["source_id"]: v["video_id"] for v in run_dir.read_rows("videos")}
    assert graphs[videos["bikes"]]["status"] == "ok" and graphs[videos["bikes"]]["teacher"] == "fake-teacher"  # vision captions: no facts
    assert graphs[videos["syn0"]]["status"] == "ok" and graphs[videos["syn0"]]["prompt_version"] == "facts"


def test_excluded_clip_fails_with_clip_excluded_and_missing_signals_with_no_perception_source(tmp_path):
    dark = sig(brightness=5.0, status="failed", reason="too_dark", error="brightness 5.0 < 20", exclude_reasons=["too_dark"])
    run_dir = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path)), [BIKES[0], dark, BIKES[2], BIKES[3]], others=None)
    caps = _by_source(run_dir)
    bad = caps["bikes"][1]
    assert bad["status"] == "failed" and bad["reason"] == "clip_excluded" and "too_dark" in bad["error"] and bad["clip_id"] in bad["error"]
    assert [c["status"] for c in caps["bikes"]] == ["ok", "failed", "ok", "ok"]
    # the synthetic video has annotations and no signals row: annotations, not an exclusion
    assert all(c["source"] == "annotation" for c in caps["syn0"])
    graphs = {g["window_id"]: g for g in run_dir.read_rows("graphs")}
    assert graphs[bad["window_id"]]["reason"] == "clip_not_perceived" and "clip_excluded" in graphs[bad["window_id"]]["error"]
    explicit = _run_with_signals(tmp_path, _recipe(_manifest(tmp_path), perceive={"source": "signals"}), BIKES, others=None, name="explicit")
    caps = _by_source(explicit)
    assert {c["reason"] for c in caps["syn0"]} == {"no_clip_signals"} and "add the `signals` stage" in caps["syn0"][0]["error"]


def test_auto_without_any_source_says_what_to_add(tmp_path):
    recipe = parse_recipe(_recipe(_manifest(tmp_path, synthetic=False)))
    run_recipe(recipe, "none", PROJECT, tmp_path / "runs", progress=False, echo=lambda *_: None)
    caps = RunDir(tmp_path / "runs" / "none").read_rows("captions")
    assert caps and {c["reason"] for c in caps} == {"no_perception_source"}
    assert all("`signals` stage" in c["error"] and "teacher.vision" in c["error"] for c in caps)


# ---- end to end: real sample videos, real signals, no teacher at all ---------------------------------
def test_real_videos_reach_questions_from_signals_with_no_teacher(tmp_path):
    """ingest -> segment -> signals -> perceive (signals) -> graph -> qa (template), no teacher
    section in the recipe. bikes (10 s, four clips) reaches questions whose answers re-derive
    from the graph and the captions. bigbuckbunny (5.3 s) and carphone (4 s) are one clip each at
    these segment settings (2-10 s clips): a template question needs two clips, so they stop at
    qa with `no_question` (asserted, so a change in either is seen)."""
    from curation.verify import verify_template

    lines = [{"path": str(SAMPLES / "real" / n), "id": n.split(".")[0]} for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    data = _recipe(manifest, perceive={"source": "signals"})
    data["stages"].insert(2, {"stage": "signals"})
    run_recipe(parse_recipe(data), "real", PROJECT, tmp_path / "runs", progress=False, echo=lambda *_: None)
    run_dir = RunDir(tmp_path / "runs" / "real")
    videos = {v["video_id"]: v["source_id"] for v in run_dir.read_rows("videos")}

    signals = run_dir.read_rows("clip_signals")
    captions = run_dir.read_rows("captions")
    assert len(signals) == len(captions) == len(run_dir.read_rows("clips")) == 6
    assert all(c["status"] == "ok" and c["source"] == "signals" and c["facts"] for c in captions), [c["error"] for c in captions]
    graphs = {videos[g["video_id"]]: g for g in run_dir.read_rows("graphs")}
    assert all(g["status"] == "ok" and g["teacher"] is None for g in graphs.values()), [g["error"] for g in graphs.values()]
    assert not run_dir.has_table("teacher_usage")

    by_clip = {c["clip_id"]: c for c in captions}
    questions = run_dir.read_rows("questions")
    for source in ("bigbuckbunny", "carphone_pristine"):
        [q] = [q for q in questions if videos[q["video_id"]] == source]
        assert q["reason"] == "no_question" and len(graphs[source]["clip_ids"]) == 1, q
    bikes = graphs["bikes"]
    asked = [q for q in questions if videos[q["video_id"]] == "bikes"]
    assert asked and all(q["status"] == "ok" for q in asked), asked
    texts = [by_clip[c]["caption"] for c in bikes["clip_ids"]]
    for q in asked:
        assert len(set(q["qa"]["evidence_clip_ids"])) >= 2 and set(q["qa"]["evidence_clip_ids"]) <= set(bikes["clip_ids"])
        outcome = verify_template(q["template"], q["qa"], json.loads(q["details"] or "{}"), bikes["entities"], texts,
                                  relations=bikes["relations"], clip_ids=bikes["clip_ids"])  # fmt: skip
        assert outcome.passed, (q["qa"], outcome.message)


def test_skip_excluded_false_captions_an_excluded_clip_from_its_measurements(tmp_path):
    dark = sig(brightness=5.0, status="failed", reason="too_dark", error="brightness 5.0 < 20", exclude_reasons=["too_dark"])
    broken = {**{k: None for k in QUIET}, "status": "failed", "reason": "decode_error", "error": "no frames", "exclude_reasons": []}
    data = _recipe(_manifest(tmp_path, synthetic=False), perceive={"source": "signals", "skip_excluded": False})
    caps = _by_source(_run_with_signals(tmp_path, data, [BIKES[0], dark, broken, BIKES[3]]))["bikes"]
    assert [c["status"] for c in caps] == ["ok", "ok", "failed", "ok"]
    assert caps[1]["caption"].startswith("The person on the left is gone.") and "The scene is dark" in caps[1]["caption"]
    assert caps[2]["reason"] == "no_clip_signals" and "decode_error" in caps[2]["error"]


def test_graph_batch_uses_facts_without_a_teacher_and_refuses_broken_facts(tmp_path):
    from pipelines.stage import StageContext
    from pipelines.stages.graph import GraphParams, graph_batch

    p = perceive_signals(sig(ocr_lines=["OPEN"], ocr_confidence=0.9))
    clip = {"clip_id": "v-c0000", "start_s": 0.0, "end_s": 3.0, "caption": p.caption, "facts": p.facts.model_dump_json(), "caption_status": "ok", "caption_reason": None}
    window = {"window_id": "v-w000", "video_id": "v", "start_s": 0.0, "end_s": 3.0, "clips": [clip]}
    broken = {**window, "window_id": "v-w001", "clips": [{**clip, "facts": '{"entities": [{"name": "!!"}]}'}]}
    ctx = StageContext(run="t", run_root=str(tmp_path), project_root=PROJECT, recipe={})  # no teacher section at all
    ok, bad = graph_batch([window, broken], GraphParams(), ctx)
    assert ok["status"] == "ok" and [e["name"] for e in ok["entities"]] == ["scene", "text open"] and ok["prompt_version"] == "facts"
    assert bad["reason"] == "invalid_clip_facts" and "v-c0000" in bad["error"]
