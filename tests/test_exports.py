"""Exports: SFT JSONL + seek index to the byte, RL Parquet with exactly VST's columns, the HF
DatasetDict that reloads and matches the JSONL, the exclusion policy, reviews and provenance."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from _chain_fixtures import PROMPTS, TEACHER, build_corpus, demo_run_copy, run_stage, write_tables
from curation.formats.rl import RL_SCHEMA
from curation.formats.sft import PREVIOUS, encode_lines, seeks_path_for
from curation.schemas import REVIEWS, to_table
from pipelines.rundir import atomic_write_json


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "exports")
    corpus = build_corpus(run)
    write_tables(run, corpus)
    run_stage(run, "check")
    run_stage(run, "export")
    return run, corpus


def sft_files(run):
    return sorted((run.exports_dir / "sft").glob("*_with_seeks.jsonl"))


def read_lines(path):
    return path.read_bytes().decode("utf-8").splitlines()


# ---- SFT ----------------------------------------------------------------------------------------------
def test_one_sft_file_per_qa_type_with_its_seek_file(exported):
    run, _ = exported
    names = [p.name for p in sft_files(run)]
    assert names == ["multiple_choice_with_seeks.jsonl", "numerical_with_seeks.jsonl", "yes_no_with_seeks.jsonl"]
    for p in sft_files(run):
        assert seeks_path_for(p).name == p.name.replace("_with_seeks.jsonl", "_seeks.jsonl")
        assert seeks_path_for(p).exists()
    assert seeks_path_for("counting_with_seeks.jsonl").name == "counting_seeks.jsonl"
    assert seeks_path_for("counting.jsonl").name == "counting_seeks.jsonl"


def test_seek_offsets_are_the_byte_offsets_of_every_line_start(exported):
    run, _ = exported
    saw_multibyte = False
    for p in sft_files(run):
        data = p.read_bytes()
        offsets = json.loads(seeks_path_for(p).read_text())
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
        assert offsets == starts
        for off in offsets:
            with open(p, "rb") as fh:  # what VST's loader does: seek, read one line, parse
                fh.seek(off)
                json.loads(fh.readline())
        saw_multibyte |= len(data) != len(data.decode("utf-8"))
    assert saw_multibyte, "a non-ASCII record must be exported, so bytes and characters differ"


def test_records_have_exactly_vsts_shape(exported):
    run, corpus = exported
    chains = {c["chain_id"]: c for c in corpus["chains"]}
    for p in sft_files(run):
        provenance = [json.loads(l) for l in read_lines(p.with_name(p.name.replace("_with_seeks.jsonl", "_provenance.jsonl")))]
        for line, prov in zip(read_lines(p), provenance, strict=True):
            rec = json.loads(line)
            assert isinstance(rec, list) and len(rec) == 2
            user, assistant = rec
            assert user["role"] == "user" and [c["type"] for c in user["content"]] == ["video", "text"]
            video, text = user["content"]
            assert set(video) == {"type", "video", "video_start", "video_end"}
            assert text == {"type": "text", "text": "", "previous": "[System]\nYou are a Streaming Video Analyst.\n"}
            assert assistant["role"] == "assistant" and len(assistant["content"]) == 1
            stream = assistant["content"][0]
            assert set(stream) == {"type", "text_stream", "qa_stream"} and stream["type"] == "text_stream"
            chain = chains[prov["chain_id"]]
            assert video["video"] == f"videos/{chain['video_id']}.mp4"
            assert (run.exports_dir / video["video"]).resolve() == __import__("pathlib").Path(chain["video_path"]).resolve()
            assert (video["video_start"], video["video_end"]) == (chain["start_s"], chain["end_s"])
            assert stream["text_stream"] == [[t["start_s"], t["end_s"], t["text"]] for t in chain["thoughts"]]
            assert all(len(item) == 3 for item in stream["text_stream"])
            [qa] = stream["qa_stream"]
            assert len(qa) == 4 and qa[0] == qa[1] == chain["end_s"]
            assert qa[2].startswith(chain["qa"]["question"]) and qa[3] == chain["final_answer"]
            if chain["qa"]["type"] == "multiple_choice":
                assert qa[2].split("\n")[1:] == [f"{l}. {o}" for l, o in zip("ABC", chain["qa"]["options"])]


def test_every_exported_row_carries_provenance(exported):
    run, _ = exported
    for p in sft_files(run):
        for i, line in enumerate(read_lines(p.with_name(p.name.replace("_with_seeks.jsonl", "_provenance.jsonl")))):
            prov = json.loads(line)
            assert prov["line"] == i and prov["run"] == run.name and prov["teacher"] == TEACHER
            assert prov["prompt_versions"] == PROMPTS and prov["chain_id"].startswith("ch")
    rl_prov = pq.read_table(run.exports_dir / "rl" / "train_provenance.parquet").to_pylist()
    assert [r["index"] for r in rl_prov] == list(range(len(rl_prov)))
    assert all(r["run"] == run.name and r["teacher"] == TEACHER and json.loads(r["prompt_versions"]) == PROMPTS for r in rl_prov)


def test_duckdb_reads_the_default_jsonl_and_the_trailing_line_is_opt_in(exported, tmp_path):
    import duckdb

    from curation.formats.sft import write_sft

    run, _ = exported
    p = sft_files(run)[0]
    n = len(read_lines(p))
    assert duckdb.sql(f"select count(*) from read_json_auto('{p}')").fetchall()[0][0] == n
    lines = read_lines(p)
    jsonl, seeks, offsets = write_sft(lines, tmp_path / "x_with_seeks.jsonl", trailing_seeks=True)
    written = read_lines(jsonl)
    assert written[:-1] == lines and json.loads(written[-1]) == offsets == json.loads(seeks.read_text())
    assert offsets == encode_lines(lines)[1]
    # Why the trailing line is opt-in: DuckDB then counts it as a record and loses the structure.
    assert "role" in duckdb.sql(f"describe select * from read_json_auto('{p}')").fetchall()[0][1]
    assert duckdb.sql(f"select count(*) from read_json_auto('{jsonl}')").fetchall()[0][0] == n + 1
    assert "role" not in duckdb.sql(f"describe select * from read_json_auto('{jsonl}')").fetchall()[0][1]


# ---- RL -----------------------------------------------------------------------------------------------
def test_rl_parquet_has_exactly_vsts_columns_and_types(exported):
    run, corpus = exported
    table = pq.read_table(run.exports_dir / "rl" / "train.parquet")
    assert table.schema.equals(RL_SCHEMA)
    assert table.column_names == ["prompt", "question", "video_context", "data_source", "reward_model", "extra_info"]
    rows = table.to_pylist()
    durations = {v["video_id"]: v["duration_s"] for v in run.read_rows("videos")}
    prov = pq.read_table(run.exports_dir / "rl" / "train_provenance.parquet").to_pylist()
    chains = {c["chain_id"]: c for c in corpus["chains"]}
    assert len(rows) == 15
    for i, (row, p) in enumerate(zip(rows, prov)):
        chain = chains[p["chain_id"]]
        assert row["extra_info"] == {"index": i, "duration": durations[chain["video_id"]]}
        assert row["reward_model"]["style"] == "rule" and len(row["reward_model"]["ground_truth"]) == 1
        assert row["data_source"] == {"multiple_choice": "multiple choice", "numerical": "numerical", "yes_no": "yes or no"}[chain["qa"]["type"]]
        assert row["question"] == chain["qa"]["question"] and row["prompt"].startswith(row["question"])
        assert row["video_context"] == f"videos/{chain['video_id']}.mp4"


# ---- HF -----------------------------------------------------------------------------------------------
def test_hf_dataset_reloads_and_matches_the_jsonl(exported):
    from datasets import load_from_disk

    from curation.formats.hf import hf_features

    run, _ = exported
    dd = load_from_disk(str(run.exports_dir / "hf"))
    assert sorted(dd) == ["multiple_choice", "numerical", "yes_no"]
    for split in dd:
        ds = dd[split]
        assert ds.features == hf_features()
        lines = read_lines(run.exports_dir / "sft" / f"{split}_with_seeks.jsonl")
        assert ds["sft_record"] == lines
        for row, line in zip(ds, lines):
            rec = json.loads(line)
            assert row["video"] == rec[0]["content"][0]["video"]
            assert [[t["start"], t["end"], t["text"]] for t in row["thoughts"]] == rec[1]["content"][0]["text_stream"]
            assert row["answer"] == rec[1]["content"][0]["qa_stream"][0][3]
            assert row["previous"] == PREVIOUS and row["run"] == run.name and row["teacher"] == TEACHER
            assert {p["name"]: p["version"] for p in row["prompt_versions"]} == PROMPTS
    card = (run.exports_dir / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "| records | 15 |" in card and "qa:evidence_too_few_clips" in card
    assert "stage: segment" in card  # the recipe that made it


# ---- policy, reviews, idempotence ---------------------------------------------------------------------
def test_failed_rule_checks_exclude_chains_and_the_decisions_table_says_why(exported):
    run, corpus = exported
    decisions = {r["chain_id"]: r for r in run.read_rows("export_decisions")}
    assert len(decisions) == len(corpus["chains"])
    out = [r for r in decisions.values() if not r["exported"]]
    assert len(out) == 6 and all(r["excluded_by"] == ["qa:evidence_too_few_clips"] for r in out)
    manifest = json.loads((run.exports_dir / "manifest.json").read_text())
    assert manifest["records"] == 15 and manifest["excluded"] == {"qa:evidence_too_few_clips": 6}
    exported_ids = {json.loads(l)["chain_id"] for p in (run.exports_dir / "sft").glob("*_provenance.jsonl") for l in read_lines(p)}
    assert exported_ids == {c for c, r in decisions.items() if r["exported"]}


def test_policy_comes_from_the_recipe(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "policy")
    write_tables(run, build_corpus(run))
    run_stage(run, "check")
    run_stage(run, "export", exclude_on=["structure"], group_by="none", subset_names={"all": "streaming"}, formats=["sft"], video_paths="absolute")
    [p] = sft_files(run)
    assert p.name == "streaming_with_seeks.jsonl" and len(read_lines(p)) == 21
    assert json.loads(read_lines(p)[0])[0]["content"][0]["video"].startswith("/")
    assert not (run.exports_dir / "rl").exists() and not (run.exports_dir / "videos").exists()


def test_reviews_are_applied_when_the_run_has_them(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "reviews")
    corpus = build_corpus(run)
    write_tables(run, corpus)
    multi = [c for c in corpus["chains"] if len(c["thoughts"]) > 2]
    rejected, corrected = multi[0], multi[1]
    reviews = [
        {"chain_id": rejected["chain_id"], "task_id": 1, "annotation_id": 1, "reviewer": "r@x", "decision": "reject", "reviewed_at": "2026-01-01T00:00:00Z", "status": "ok", "run": run.name},
        {"chain_id": corrected["chain_id"], "task_id": 2, "annotation_id": 2, "reviewer": "r@x", "decision": "accept", "reviewed_at": "2026-01-01T00:00:00Z",
         "corrections": json.dumps({"thoughts": [{"index": 1, "clip_id": corrected["thoughts"][1]["clip_id"], "text": "Fixed by a human."}]}), "status": "ok", "run": run.name},
    ]
    run.write_part("reviews", "part-00000-test", to_table(reviews, REVIEWS))
    atomic_write_json(run.success_path("reviews"), {"rows": 2})
    run_stage(run, "check")
    run_stage(run, "export")
    decisions = {r["chain_id"]: r for r in run.read_rows("export_decisions")}
    assert decisions[rejected["chain_id"]]["excluded_by"] == ["review:reject"]
    assert decisions[corrected["chain_id"]]["human_reviewed"] is True
    record = json.loads(decisions[corrected["chain_id"]]["sft_record"])
    assert record[1]["content"][0]["text_stream"][1][2] == "Fixed by a human."
    provs = [json.loads(l) for p in (run.exports_dir / "sft").glob("*_provenance.jsonl") for l in read_lines(p)]
    assert {p["chain_id"]: p["human_reviewed"] for p in provs}[corrected["chain_id"]] is True
    assert rejected["chain_id"] not in {p["chain_id"] for p in provs}


def test_export_files_are_rewritten_identically(exported):
    from pipelines.stages.export import ExportParams, write_exports

    run, _ = exported
    files = sorted(p for p in run.exports_dir.rglob("*") if p.is_file() and "hf" not in p.parts)
    before = {p: p.read_bytes() for p in files}
    write_exports(run, ExportParams())
    assert {p: p.read_bytes() for p in files} == before


def test_a_chain_whose_video_is_gone_fails_alone(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "novideo")
    corpus = build_corpus(run)
    corpus["chains"][5]["video_id"] = "v-missing"
    write_tables(run, corpus)
    summary = run_stage(run, "export", exclude_on=[])
    assert summary["failed_by_reason"] == {"video_unknown": 1} and summary["ok"] == 20


def test_a_recipe_with_check_and_export_runs_end_to_end(tmp_path):
    """`vstw run` path: the recipe's check and export stages, process pool of 2 workers, resume."""
    import yaml

    from _chain_fixtures import ROOT
    from curation.formats.validate import validate_rl, validate_sft
    from pipelines.recipe import parse_recipe
    from pipelines.run import run_recipe
    from pipelines.rundir import RunDir

    data = yaml.safe_load((ROOT / "pipelines" / "recipes" / "demo.yaml").read_text())
    data["stages"] = [s for s in data["stages"] if s["stage"] in ("ingest", "segment")]
    data["stages"] += [{"stage": "check", "structure": {"max_frames": 384}}, {"stage": "export", "group_by": "qa_type"}]
    recipe = parse_recipe(data)
    quiet = dict(progress=False, echo=lambda *_: None)
    run_recipe(recipe, "e2e", ROOT, tmp_path, until="segment", **quiet)
    run = RunDir(tmp_path / "e2e")
    write_tables(run, build_corpus(run))  # what the teacher stages will write
    summaries = run_recipe(recipe, "e2e", ROOT, tmp_path, **quiet)
    assert summaries["check"]["rows"] == 21 * 6 and summaries["export"]["ok"] == 21
    assert json.loads((run.exports_dir / "manifest.json").read_text())["records"] == 15
    for p in sft_files(run):
        assert validate_sft(p).ok
    assert validate_rl(run.exports_dir / "rl" / "train.parquet").ok
    again = run_recipe(recipe, "e2e", ROOT, tmp_path, **quiet)  # a finished run does no work
    assert again["export"].get("skipped") and again["check"].get("skipped")
