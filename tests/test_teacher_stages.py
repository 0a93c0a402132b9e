"""The teacher stages (perceive, graph, qa, think) in real runs: against a fault-injecting
OpenAI-compatible server, and against the real embedded llama.cpp server."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from _teacher_fixtures import FakeTeacherServer
from curation.schemas import TABLES
from pipelines.recipe import parse_recipe
from pipelines.rundir import RunDir
from pipelines.run import run_recipe

PROJECT = Path(__file__).resolve().parents[1]
SYNTHETIC = PROJECT / "data" / "samples" / "synthetic"
SECRET = "sk-test-SECRET123"


def _events(i: int) -> list[dict]:
    truth = json.loads((SYNTHETIC / f"synthetic-7-{i:03d}.json").read_text())
    return [{k: e[k] for k in ("start_s", "end_s", "text", "kind")} for e in truth["events"]]


def write_manifest(folder: Path, faults: dict[int, str] | None = None, real: bool = True, videos=(0, 1, 2, 3)) -> Path:
    """The synthetic samples with their ground truth as annotations; `faults` puts a fault
    marker into the text of the first object event of a video (so its clip's requests get it)."""
    lines = []
    for i in videos:
        events = _events(i)
        if faults and i in faults:
            first_object = next(e for e in events if e["kind"] == "object")
            first_object["text"] += f" {faults[i]}"
        lines.append({"path": str(SYNTHETIC / f"synthetic-7-{i:03d}.mp4"), "id": f"syn{i}", "annotations": events})
    if real:
        lines.append({"path": str(PROJECT / "data" / "samples" / "real" / "bikes.mp4"), "id": "bikes"})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def recipe(manifest: Path, base_url: str, cache_dir: Path | None = None, **teacher) -> dict:
    return {
        "name": "teacher-test",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": ["data/samples"],
        "runner": {"workers": 2, "part_size": 2},
        "teacher": {
            "text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema", "api_key_env": "VSTW_TEST_KEY"},
            "timeout_s": 1.0, "max_retries": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "concurrency": 4,
            "prices": {"fake-teacher": {"prompt_usd_per_mtok": 1.0, "completion_usd_per_mtok": 2.0}},
            **({"cache_dir": str(cache_dir)} if cache_dir else {}), **teacher,
        },  # fmt: skip
        "stages": [
            {"stage": "ingest"},
            {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
            {"stage": "perceive"},
            {"stage": "graph", "source": "teacher"},
            {"stage": "qa"},
            {"stage": "think", "mode": "teacher"},
        ],
    }


def run(data: dict, runs: Path, name: str) -> RunDir:
    run_recipe(parse_recipe(data), name, PROJECT, runs, progress=False, echo=lambda *_: None)
    return RunDir(runs / name)


def rows(run_dir: RunDir, table: str) -> list[dict]:
    return run_dir.read_rows(table)


def assert_chain_valid(chain: dict, clips: dict[str, list[dict]]) -> None:
    """The CHAINS contract other stages rely on."""
    window_clips = clips[chain["window_id"]]
    assert re.fullmatch(r"ch-[0-9a-f]{16}", chain["chain_id"])
    assert chain["video_path"] and Path(chain["video_path"]).is_file() and chain["video_duration_s"] > 0
    assert chain["start_s"] == window_clips[0]["window_start_s"] and chain["end_s"] == window_clips[0]["window_end_s"]
    assert [t["clip_id"] for t in chain["thoughts"]] == [c["clip_id"] for c in window_clips]
    for t, c in zip(chain["thoughts"], window_clips):
        assert (t["start_s"], t["end_s"]) == (c["start_s"], c["end_s"]) and t["text"].strip()
        assert chain["start_s"] <= t["start_s"] < t["end_s"] <= chain["end_s"]
    qa = chain["qa"]
    assert qa["type"] in {"multiple_choice", "numerical", "yes_no"} and qa["question"].strip()
    assert len(set(qa["evidence_clip_ids"])) >= 2 and set(qa["evidence_clip_ids"]) <= {c["clip_id"] for c in window_clips}
    if qa["type"] == "multiple_choice":
        assert 2 <= len(qa["options"]) <= 5 and [o[:3] for o in qa["options"]] == [f"{l}. " for l in "ABCDE"[: len(qa["options"])]]
        assert qa["answer"] in "ABCDE"[: len(qa["options"])]
    elif qa["type"] == "numerical":
        assert re.fullmatch(r"\d+", qa["answer"]) and not qa["options"]
    else:
        assert qa["answer"] in ("Yes", "No") and not qa["options"]
    assert chain["final_answer"] == "\\boxed{" + qa["answer"] + "}"
    assert set(dict(chain["prompt_versions"])) == {"perceive", "graph", "qa", "think"}  # a map column reads back as pairs
    assert chain["teacher"] and chain["cache_keys"] and chain["status"] == "ok"


def clips_by_window(run_dir: RunDir) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in sorted(rows(run_dir, "clips"), key=lambda c: c["index"]):
        out.setdefault(c["window_id"], []).append(c)
    return out


def all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("VSTW_TEST_KEY", SECRET)


def test_fault_injected_run_finishes_with_every_item_done_or_failed_for_its_reason(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    faults = {1: "[[fault:429:1]] [[fault:drop:1]]", 2: "[[fault:badjson:9]]", 3: "[[fault:slow:9]]"}
    with FakeTeacherServer(slow_s=2.5, retry_after="0") as server:
        run_dir = run(recipe(write_manifest(tmp_path, faults), server.base_url), tmp_path / "runs", "faults")

    captions = rows(run_dir, "captions")
    assert {c["reason"] for c in captions if c["status"] != "ok"} == {"no_perception_source"}  # bikes has no annotations
    graphs = {g["video_id"]: g for g in rows(run_dir, "graphs")}
    videos = {v["source_id"]: v["video_id"] for v in rows(run_dir, "videos")}
    assert graphs[videos["syn0"]]["status"] == "ok" and graphs[videos["syn1"]]["status"] == "ok"
    assert graphs[videos["syn2"]]["reason"] == "teacher_invalid_output" and "{not json" in graphs[videos["syn2"]]["raw_reply"]
    assert graphs[videos["syn3"]]["reason"] == "teacher_unavailable"
    assert graphs[videos["bikes"]]["reason"] == "clip_not_perceived"

    # Nothing done is lost: every ok window has its questions, every question its chain.
    questions = rows(run_dir, "questions")
    ok_windows = {g["window_id"] for g in graphs.values() if g["status"] == "ok"}
    assert {q["window_id"] for q in questions if q["status"] == "ok"} == ok_windows
    chains = rows(run_dir, "chains")
    assert sorted(c["question_id"] for c in chains) == sorted(q["question_id"] for q in questions if q["status"] == "ok")
    clips = clips_by_window(run_dir)
    for chain in chains:
        assert_chain_valid(chain, clips)
    assert len({c["chain_id"] for c in chains}) == len(chains)

    # The usage table accounts for every request the server saw, and every retry.
    usage = rows(run_dir, "teacher_usage")
    assert sum(u["requests"] for u in usage) == server.requests
    transient = sum(server.outcomes[k] for k in ("429", "500", "drop", "slow"))
    gave_up = sum(1 for u in usage if u["reason"] == "teacher_unavailable")
    assert sum(u["retries"] for u in usage) == transient - gave_up
    assert server.outcomes["429"] >= 2 and server.outcomes["drop"] >= 2  # graph and think requests of that clip
    report = json.loads((run_dir.reports_dir / "teacher_usage.json").read_text())
    assert report["graph"]["failures"] == sum(1 for u in usage if u["stage"] == "graph" and u["status"] == "failed")
    assert report["think"]["cost_usd"] > 0

    # Every table fits its schema, and the key is nowhere in the run folder or the logs.
    for table in ("captions", "graphs", "questions", "chains", "teacher_usage"):
        assert run_dir.read_table(table).schema.equals(TABLES[table])
    assert SECRET not in all_text(run_dir.root) and SECRET not in caplog.text


def test_second_run_with_a_shared_cache_sends_zero_requests_and_yields_identical_rows(tmp_path, capsys):
    manifest = write_manifest(tmp_path, real=False, videos=(0, 1))
    with FakeTeacherServer() as server:
        first = run(recipe(manifest, server.base_url, cache_dir=tmp_path / "shared-cache"), tmp_path / "runs", "first")
        sent = server.requests
        assert sent > 0
        second = run(recipe(manifest, server.base_url, cache_dir=tmp_path / "shared-cache"), tmp_path / "runs", "second")
        assert server.requests == sent
        again = run(recipe(manifest, server.base_url, cache_dir=tmp_path / "shared-cache"), tmp_path / "runs", "second")  # a finished run
        assert server.requests == sent and again.root == second.root
    for table in ("captions", "graphs", "questions", "chains"):
        a, b = (sorted((tuple((k, json.dumps(v, sort_keys=True, default=str)) for k, v in r.items() if k != "run") for r in rows(d, table))) for d in (first, second))
        assert a == b and a, table
    assert all(c["status"] == "ok" for c in rows(second, "chains"))
    assert all(u["cached"] and u["requests"] == 0 for u in rows(second, "teacher_usage"))
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert SECRET not in all_text(tmp_path)

    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["teacher", "usage", str(second.root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary) == {"graph", "think"} and all(s["requests"] == 0 and s["cache_hits"] == s["calls"] for s in summary.values())


def test_vision_teacher_sees_keyframes_and_qa_teacher_mode_is_checked(tmp_path):
    manifest = write_manifest(tmp_path, real=True, videos=(0,))
    with FakeTeacherServer() as server:
        data = recipe(manifest, server.base_url)
        data["teacher"]["vision"] = {"base_url": server.base_url, "model": "fake-vision", "structured_output": "json_schema"}
        data["stages"][2] = {"stage": "perceive", "source": "teacher", "frames_per_clip": 2, "frame_width": 96}
        data["stages"][4] = {"stage": "qa", "mode": "teacher"}
        run_dir = run(data, tmp_path / "runs", "vision")
        images = [p for b in server.bodies for m in b["messages"] if not isinstance(m["content"], str) for p in m["content"] if p.get("type") == "image_url"]
    captions = rows(run_dir, "captions")
    assert captions and all(c["status"] == "ok" and c["source"] == "fake-vision" and c["prompt_version"] == "caption.v1" for c in captions)
    assert all(c["caption"].startswith("A red circle is seen in 2 frames") for c in captions)
    assert len(images) == 2 * len(captions) and all(i["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/") for i in images)
    questions = [q for q in rows(run_dir, "questions") if q["status"] == "ok"]
    assert {q["qa"]["type"] for q in questions} == {"multiple_choice", "numerical", "yes_no"}
    assert all(q["template"] == "teacher" and q["prompt_version"] == "qa.v1" for q in questions)
    mc = next(q["qa"] for q in questions if q["qa"]["type"] == "multiple_choice")
    assert mc["options"] == ["A. red circle", "B. blue square"] and mc["answer"] == "A"
    chains = rows(run_dir, "chains")
    assert chains and all(c["status"] == "ok" and c["prompt_versions"] for c in chains)


def test_missing_teacher_or_key_fails_items_with_a_clear_reason(tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path, real=False, videos=(0,))
    monkeypatch.delenv("VSTW_TEST_KEY")
    with FakeTeacherServer() as server:
        run_dir = run(recipe(manifest, server.base_url), tmp_path / "runs", "nokey")
        assert server.requests == 0
    [graph] = rows(run_dir, "graphs")
    assert graph["reason"] == "teacher_config_error" and "VSTW_TEST_KEY" in graph["error"]


def test_check_qa_rules():
    from curation.teacher.structured import InvalidReply
    from pipelines.stages.qa import QAReply, check_qa

    ok = QAReply(type="multiple_choice", question="Which came first?", options=["a", "b"], answer="B", evidence_clip_ids=["c1", "c2"])
    check_qa(ok, "multiple_choice", ["c1", "c2", "c3"])
    for bad, match in [
        (ok.model_copy(update={"answer": "C"}), "one letter"),
        (ok.model_copy(update={"evidence_clip_ids": ["c1"]}), "two different"),
        (ok.model_copy(update={"evidence_clip_ids": ["c1", "zz"]}), "not clips"),
        (ok.model_copy(update={"options": ["a"] * 6}), "2 to 5"),
        (ok.model_copy(update={"type": "numerical", "options": [], "answer": "many"}), "number"),
    ]:
        with pytest.raises(InvalidReply, match=match):
            check_qa(bad, bad.type, ["c1", "c2", "c3"])


# ---- the real embedded teacher ------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from pipelines.teacher_server import start_server, stop_server

    home = tmp_path_factory.mktemp("llama-home")
    info = start_server(home, threads=2)
    try:
        yield info
    finally:
        stop_server(home)


def test_real_llama_cpp_teacher_produces_schema_valid_chains(tmp_path, llama_server):
    """Two clips, one window, the real Gemma 3 270M: slow on a shared 2-core machine, but real."""
    from curation.synthetic import ground_truth, make_script, render_video

    script = make_script("tiny", seed=11, n_scenes=2, scene_s=(3.0, 3.5), max_objects=1)
    video = render_video(script, tmp_path / "videos" / "tiny.mp4")
    events = [
        {"start_s": s["start_s"], "end_s": s["end_s"], "kind": "object", "text": f"A {o['colour']} {o['shape']} appears."}
        for s in ground_truth(script)["scenes"] for o in s["objects"]
    ]  # fmt: skip
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"path": str(video), "id": "tiny", "annotations": events}) + "\n")
    data = recipe(manifest, llama_server.base_url)
    data["allowed_roots"] = [str(tmp_path)]
    data["teacher"] = {"text": {"base_url": llama_server.base_url, "model": llama_server.model, "structured_output": "json_object_schema"},
                       "concurrency": 1, "timeout_s": 300, "max_retries": 1}  # fmt: skip
    data["stages"][3] = {"stage": "graph", "source": "teacher", "max_tokens": 160}
    data["stages"][5] = {"stage": "think", "mode": "teacher", "max_tokens": 60}
    run_dir = run(data, tmp_path / "runs", "llama")

    usage = rows(run_dir, "teacher_usage")
    assert usage and all(u["model"] == llama_server.model for u in usage)
    assert sum(u["completion_tokens"] for u in usage if not u["cached"]) > 0  # the model really generated
    for table in ("captions", "graphs", "questions", "chains"):
        assert run_dir.read_table(table).schema.equals(TABLES[table])
    known = {"teacher_invalid_output", "no_entities", "no_question"}
    for table in ("graphs", "questions", "chains"):
        assert all(r["status"] == "ok" or r["reason"] in known for r in rows(run_dir, table)), table
    chains = [c for c in rows(run_dir, "chains") if c["status"] == "ok"]
    assert chains, f"no chain: graphs {[(g['status'], g['reason'], g['error']) for g in rows(run_dir, 'graphs')]}, chains {[c['error'] for c in rows(run_dir, 'chains')]}"
    clips = clips_by_window(run_dir)
    for chain in chains:
        assert_chain_valid(chain, clips)
        assert chain["teacher"] == llama_server.model and dict(chain["prompt_versions"])["think"] == "think.v2"
        assert all(t["text"][0].isupper() for t in chain["thoughts"])
