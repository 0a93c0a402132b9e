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


# The fixture chains are written by hand-built stage output, without a verify stage: their answers
# have no `answer` verdict, so the export is told that by name (else nothing leaves: see below).
NO_VERIFY = {"allow_unchecked": ["answer"]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "exports")
    corpus = build_corpus(run)
    write_tables(run, corpus)
    run_stage(run, "check")
    run_stage(run, "export", **NO_VERIFY)
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
            assert qa[2].startswith(chain["qa"]["question"])
            if chain["qa"]["type"] == "multiple_choice":  # options re-lettered (shuffle_options): same texts, same right one
                lines = qa[2].split("\n")[1:]
                assert [l[:3] for l in lines] == ["A. ", "B. ", "C. "] and sorted(l[3:] for l in lines) == sorted(chain["qa"]["options"])
                assert lines["ABC".index(qa[3][len("\\boxed{")])][3:] == chain["qa"]["options"]["ABC".index(chain["qa"]["answer"])]
            else:
                assert qa[3] == chain["final_answer"]


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
    run_stage(run, "export", exclude_on=["structure"], group_by="none", subset_names={"all": "streaming"}, formats=["sft"], video_paths="absolute", shuffle_options=False, **NO_VERIFY)
    [p] = sft_files(run)
    assert p.name == "streaming_with_seeks.jsonl" and len(read_lines(p)) == 21
    decisions = {r["chain_id"]: r for r in run.read_rows("export_decisions")}
    chains = {c["chain_id"]: c for c in build_corpus(run)["chains"]}
    assert all(d["answer_letter"] == chains[c]["qa"]["answer"] for c, d in decisions.items() if d["qa_type"] == "multiple_choice")  # as written
    assert json.loads(read_lines(p)[0])[0]["content"][0]["video"].startswith("/")
    assert not (run.exports_dir / "rl").exists() and not (run.exports_dir / "videos").exists()


def test_reviews_are_applied_when_the_run_has_them(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "reviews")
    corpus = build_corpus(run)
    write_tables(run, corpus)
    multi = [c for c in corpus["chains"] if len(c["thoughts"]) > 2]
    rejected, corrected = multi[0], multi[1]
    fixed = "Looking again: " + corrected["thoughts"][1]["text"]  # a correction the rule checks accept (re-checked before export)
    reviews = [
        {"chain_id": rejected["chain_id"], "task_id": 1, "annotation_id": 1, "reviewer": "r@x", "decision": "reject", "reviewed_at": "2026-01-01T00:00:00Z", "status": "ok", "run": run.name},
        {"chain_id": corrected["chain_id"], "task_id": 2, "annotation_id": 2, "reviewer": "r@x", "decision": "accept", "reviewed_at": "2026-01-01T00:00:00Z",
         "corrections": json.dumps({"thoughts": [{"index": 1, "clip_id": corrected["thoughts"][1]["clip_id"], "text": fixed}]}), "status": "ok", "run": run.name},
    ]
    run.write_part("reviews", "part-00000-test", to_table(reviews, REVIEWS))
    atomic_write_json(run.success_path("reviews"), {"rows": 2})
    run_stage(run, "check")
    run_stage(run, "export", **NO_VERIFY)
    decisions = {r["chain_id"]: r for r in run.read_rows("export_decisions")}
    assert decisions[rejected["chain_id"]]["excluded_by"] == ["review:reject"]
    assert decisions[corrected["chain_id"]]["human_reviewed"] is True
    record = json.loads(decisions[corrected["chain_id"]]["sft_record"])
    assert record[1]["content"][0]["text_stream"][1][2] == fixed
    provs = [json.loads(l) for p in (run.exports_dir / "sft").glob("*_provenance.jsonl") for l in read_lines(p)]
    assert {p["chain_id"]: p["human_reviewed"] for p in provs}[corrected["chain_id"]] is True
    assert rejected["chain_id"] not in {p["chain_id"] for p in provs}


def test_export_files_are_rewritten_identically(exported):
    from pipelines.stages.export import ExportParams, write_exports

    run, _ = exported
    files = sorted(p for p in run.exports_dir.rglob("*") if p.is_file() and "hf" not in p.parts)
    before = {p: p.read_bytes() for p in files}
    write_exports(run, ExportParams(**NO_VERIFY))
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

    data = yaml.safe_load((ROOT / "tests" / "recipes" / "fixture-demo.yaml").read_text())
    data["stages"] = [s for s in data["stages"] if s["stage"] in ("ingest", "segment")]
    data["stages"] += [{"stage": "check", "structure": {"max_frames": 384}}, {"stage": "export", "group_by": "qa_type", **NO_VERIFY}]
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


# ---- nothing unchecked leaves (issue 12, part 5) --------------------------------------------------------
@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """A run with chains and the check stage's verdicts, not exported yet: tests export copies of it."""
    run = demo_run_copy(tmp_path_factory, "checked")
    corpus = build_corpus(run)
    write_tables(run, corpus)
    run_stage(run, "check")
    return run, corpus


def run_copy(run, tmp_path, name="copy"):
    import shutil

    from pipelines.rundir import RunDir

    shutil.copytree(run.root, tmp_path / name, symlinks=True)
    return RunDir(tmp_path / name)


def decisions_of(run):
    return {r["chain_id"]: r for r in run.read_rows("export_decisions")}


def manifest_of(run):
    return json.loads((run.exports_dir / "manifest.json").read_text())


def test_without_answer_verdicts_nothing_leaves(checked, tmp_path):
    run = run_copy(checked[0], tmp_path)
    run_stage(run, "export")
    decisions = decisions_of(run)
    assert len(decisions) == 21 and not any(d["exported"] for d in decisions.values())
    assert all("answer:verdict_missing" in d["excluded_by"] for d in decisions.values())
    manifest = manifest_of(run)
    assert manifest["records"] == 0 and manifest["excluded"]["answer:verdict_missing"] == 21
    assert manifest["verdict_tables"] == {"verdicts": "read", "answer_verdicts": "absent", "judge_verdicts": "absent"}
    assert manifest["policy"]["required_checks"] == ["structure", "thoughts", "causality", "grounding", "qa", "dedup", "answer"]


def test_a_check_stage_crash_on_one_chain_excludes_exactly_that_chain(checked, exported, tmp_path, monkeypatch):
    import pipelines.stages.check as check_stage

    run = run_copy(checked[0], tmp_path)
    baseline = decisions_of(exported[0])
    victim = sorted(c for c, d in baseline.items() if d["exported"])[3]
    real = check_stage.run_checks

    def crashing(chain, *args, **kwargs):  # a bug in a check, hit by this chain only
        if chain["chain_id"] == victim:
            raise RuntimeError("a check crashed")
        return real(chain, *args, **kwargs)

    monkeypatch.setattr(check_stage, "run_checks", crashing)
    summary = run_stage(run, "check")
    assert summary["failed_by_reason"] == {"stage_error": 1}
    [crash] = [v for v in run.read_rows("verdicts") if v["chain_id"] == victim]
    assert crash["check"] == "all" and crash["passed"] is None  # how the runner records a crash
    run_stage(run, "export", **NO_VERIFY)
    decisions = decisions_of(run)
    assert decisions[victim]["exported"] is False
    assert decisions[victim]["excluded_by"] == sorted(f"{c}:not_run" for c in ("structure", "thoughts", "causality", "grounding", "qa", "dedup"))
    for chain_id, d in decisions.items():
        if chain_id != victim:
            assert (d["exported"], d["excluded_by"]) == (baseline[chain_id]["exported"], baseline[chain_id]["excluded_by"]), chain_id
    assert manifest_of(run)["records"] == manifest_of(exported[0])["records"] - 1


def test_a_recipe_without_a_check_stage_exports_nothing_unless_it_opts_out(checked, tmp_path):
    import shutil

    import yaml

    run = run_copy(checked[0], tmp_path)
    doc = yaml.safe_load(run.recipe_path.read_text())
    doc["recipe"]["stages"] = [s for s in doc["recipe"]["stages"] if s["stage"] != "check"]
    run.recipe_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.rmtree(run.root / "verdicts")  # the check stage never ran
    run_stage(run, "export", **NO_VERIFY)
    rules = ("causality", "dedup", "grounding", "qa", "structure", "thoughts")
    assert all(d["excluded_by"] == [f"{c}:verdict_missing" for c in rules] for d in decisions_of(run).values())
    assert manifest_of(run)["verdict_tables"]["verdicts"] == "absent"
    run_stage(run, "export", allow_unchecked=[*rules, "answer"])  # opted out by name: the recipe's choice
    assert all(d["exported"] for d in decisions_of(run).values())


def test_a_check_that_could_not_run_excludes_the_chain(checked, tmp_path):
    import shutil

    run = run_copy(checked[0], tmp_path)
    for table in ("verdicts", "graphs", "captions"):  # no grounding source: grounding cannot run
        shutil.rmtree(run.root / table)
    run_stage(run, "check")
    grounding = [v for v in run.read_rows("verdicts") if v["check"] == "grounding"]
    assert grounding and all(v["passed"] is None for v in grounding)
    run_stage(run, "export", **NO_VERIFY)
    assert all("grounding:not_run" in d["excluded_by"] for d in decisions_of(run).values())
    run_stage(run, "export", allow_unchecked=["answer", "grounding", "causality"])
    assert not any(r.endswith(":not_run") for d in decisions_of(run).values() for r in d["excluded_by"])


def test_check_names_in_the_policy_are_checked():
    from pydantic import ValidationError

    from pipelines.stages.export import ExportParams

    assert ExportParams(exclude_on=["qa", "judge_likelihood"]).exclude_on == ["qa", "judge_thought_likelihood"]
    with pytest.raises(ValidationError, match="groundng"):
        ExportParams(allow_unchecked=["groundng"])
    with pytest.raises(ValidationError, match="rl_pass_rate_band"):
        ExportParams(rl_pass_rate_band=(0.8, 0.2))
    with pytest.raises(ValidationError, match="halucinated"):
        ExportParams(exclude_review_labels=["halucinated"])


# ---- multiple-choice letters balanced ------------------------------------------------------------------
def test_multiple_choice_letters_are_balanced_and_still_right(exported):
    run, corpus = exported
    chains = {c["chain_id"]: c for c in corpus["chains"]}
    decisions = decisions_of(run)
    rl = pq.read_table(run.exports_dir / "rl" / "train.parquet").to_pylist()
    rl_prov = pq.read_table(run.exports_dir / "rl" / "train_provenance.parquet").to_pylist()
    rl_truth = {p["chain_id"]: row["reward_model"]["ground_truth"] for row, p in zip(rl, rl_prov)}
    letters = []
    for chain_id, d in decisions.items():
        if not d["exported"] or d["qa_type"] != "multiple_choice":
            continue
        original = chains[chain_id]["qa"]
        right_text = original["options"]["ABC".index(original["answer"])]
        [qa] = json.loads(d["sft_record"])[1]["content"][0]["qa_stream"]
        shown = {line[0]: line[3:] for line in qa[2].split("\n")[1:]}
        letter = qa[3][len("\\boxed{") : -1]
        assert shown[letter] == right_text and sorted(shown.values()) == sorted(original["options"])  # same option, same texts
        assert d["answer_letter"] == letter and rl_truth[chain_id] == [letter] and d["options"][ord(letter) - 65] == right_text
        assert json.loads(d["rl_row"])["prompt"] == qa[2]
        letters.append(letter)
    counts = [letters.count(l) for l in "ABC"]
    assert len(letters) >= 4 and max(counts) - min(counts) <= 1, counts
    written = [chains[c]["qa"]["answer"] for c in decisions if decisions[c]["exported"] and decisions[c]["qa_type"] == "multiple_choice"]
    assert max(written.count(l) for l in "ABC") - min(written.count(l) for l in "ABC") > 1, "the fixture's own letters are unbalanced"
    manifest = manifest_of(run)
    assert manifest["answer_letters"]["all"] == {l: n for l, n in zip("ABC", counts) if n}
    assert manifest["answer_letters"]["by_subset"] == {"multiple_choice": manifest["answer_letters"]["all"]}
    card = (run.exports_dir / "hf" / "README.md").read_text()
    assert "| answer letters (multiple choice) | " + ", ".join(f"{l}: {n}" for l, n in zip("ABC", counts) if n) + " |" in card


# ---- reviews: corrections re-checked, labels exclude -----------------------------------------------------
def review_row(run, chain_id, corrections=None, labels=(), annotation_id=1):
    return {"chain_id": chain_id, "task_id": annotation_id, "annotation_id": annotation_id, "reviewer": "r@x", "decision": "accept",
            "reviewed_at": "2026-01-01T00:00:00Z", "corrections": json.dumps(corrections) if corrections else None,
            "labels": list(labels), "status": "ok", "run": run.name}  # fmt: skip


def test_reviewer_corrections_are_rechecked_and_labels_exclude(checked, exported, tmp_path):
    run = run_copy(checked[0], tmp_path)
    chains = {c["chain_id"]: c for c in checked[1]["chains"]}
    baseline = decisions_of(exported[0])
    good = sorted(c for c, d in baseline.items() if d["exported"])
    mc = [c for c in good if chains[c]["qa"]["type"] == "multiple_choice"]
    other = [c for c in good if chains[c]["qa"]["type"] != "multiple_choice"]
    outside, fixed, labelled, relabelled = mc[0], mc[1], other[0], other[1]
    new_answer = next(l for l in "ABC" if l != chains[fixed]["qa"]["answer"])
    n = len(chains[labelled]["thoughts"])
    first = chains[relabelled]["thoughts"][0]
    reviews = [
        review_row(run, outside, {"answer": "D"}, annotation_id=1),  # three options: D is none of them
        review_row(run, fixed, {"answer": new_answer}, annotation_id=2),  # the reviewer picks another option
        review_row(run, labelled, labels=["ok", "hallucinated"] + ["ok"] * (n - 2), annotation_id=3),
        # a label on a thought the reviewer corrected says why it was corrected: the correction is re-checked instead
        review_row(run, relabelled, {"thoughts": [{"index": 0, "clip_id": first["clip_id"], "text": "Looking again: " + first["text"]}]},
                   labels=["wrong"] + ["ok"] * (len(chains[relabelled]["thoughts"]) - 1), annotation_id=4),  # fmt: skip
    ]
    run.write_part("reviews", "part-00000-test", to_table(reviews, REVIEWS))
    atomic_write_json(run.success_path("reviews"), {"rows": len(reviews)})
    run_stage(run, "export", **NO_VERIFY)
    decisions = decisions_of(run)
    assert decisions[outside]["excluded_by"] == ["review_recheck:answer_not_an_option"]
    assert decisions[labelled]["excluded_by"] == ["review_label:hallucinated"]
    assert decisions[relabelled]["exported"] and decisions[relabelled]["human_reviewed"]
    assert json.loads(decisions[relabelled]["sft_record"])[1]["content"][0]["text_stream"][0][2].startswith("Looking again: ")
    assert decisions[fixed]["exported"]
    [qa] = json.loads(decisions[fixed]["sft_record"])[1]["content"][0]["qa_stream"]
    shown = {line[0]: line[3:] for line in qa[2].split("\n")[1:]}
    assert shown[qa[3][len("\\boxed{") : -1]] == chains[fixed]["qa"]["options"]["ABC".index(new_answer)]  # the reviewer's option
    for chain_id in set(good) - {outside, labelled}:
        assert decisions[chain_id]["exported"], chain_id
    assert manifest_of(run)["excluded"]["review_label:hallucinated"] == 1
    # A reviewer's answer counts as checked by a person: without answer verdicts, only that chain leaves.
    run_stage(run, "export")
    assert [c for c, d in decisions_of(run).items() if d["exported"]] == [fixed]


# ---- the VST-model judge ---------------------------------------------------------------------------------
JUDGE = {"samples": 2, "max_thought_tokens": 4, "max_answer_tokens": 4, "frame_width": 128}


@pytest.fixture(scope="module")
def judged(checked, tmp_path_factory):
    """The checked run, judged by the REAL judge stage with the tiny model (random weights)."""
    from _model_fixtures import tiny_model

    base = tmp_path_factory.mktemp("judged")
    tiny = tiny_model(base / "tiny")
    run = run_copy(checked[0], base)
    run_stage(run, "judge", model=str(tiny), **JUDGE)
    return run, tiny


def judge_rows(run):
    rows = {}
    for v in run.read_rows("judge_verdicts"):
        rows.setdefault(v["chain_id"], {})[v["check"]] = v
    return rows


def test_an_untrained_judge_is_recorded_but_does_not_exclude(judged, exported, tmp_path):
    run = run_copy(judged[0], tmp_path)
    run_stage(run, "export", **NO_VERIFY)
    baseline = decisions_of(exported[0])
    decisions = decisions_of(run)
    assert {c: (d["exported"], d["excluded_by"]) for c, d in decisions.items()} == {c: (d["exported"], d["excluded_by"]) for c, d in baseline.items()}
    flags = [f for d in decisions.values() for f in d["judge_flags"]]
    assert flags and all(f.startswith("judge_") for f in flags)  # recorded: a random model gets answers wrong
    manifest = manifest_of(run)
    assert manifest["judge"]["used"] is False and manifest["judge"]["model"] == "tiny"
    assert manifest["judge"]["note"] == "judge verdicts recorded, not used: untrained model (tiny)"
    assert sum(manifest["judge"]["flagged"].values()) == len(flags)
    assert manifest["verdict_tables"]["judge_verdicts"] == "read" and manifest["rl_rows"] == manifest_of(exported[0])["rl_rows"]
    assert "judge verdicts recorded, not used: untrained model" in (run.exports_dir / "hf" / "README.md").read_text()


def test_judge_verdicts_exclude_when_the_recipe_says_so(judged, exported, tmp_path):
    run = run_copy(judged[0], tmp_path)
    run_stage(run, "export", judge_excludes=True, **NO_VERIFY)
    baseline, decisions, judge = decisions_of(exported[0]), decisions_of(run), judge_rows(run)
    excluding = ("judge_teacher_forced", "judge_blind", "judge_thought_likelihood")  # own_thinking: the RL band
    by_judge = 0
    for chain_id, d in decisions.items():
        failed = {f"{c}:{judge[chain_id][c]['reason']}" for c in excluding if judge[chain_id][c]["passed"] is False}
        assert d["excluded_by"] == sorted(set(baseline[chain_id]["excluded_by"]) | failed), chain_id
        by_judge += bool(failed) and baseline[chain_id]["exported"]
        rate = judge[chain_id]["judge_own_thinking"]["score"]
        if d["exported"]:  # RL keeps what the model sometimes, not always, solves
            assert (d["rl_row"] is not None) == (0.0 < rate < 1.0), (chain_id, rate)
            assert d["rl_excluded_by"] == ([] if 0 < rate < 1 else ["judge_own_thinking:pass_rate_below_band" if rate == 0 else "judge_own_thinking:pass_rate_above_band"])
    assert by_judge > 0, "the judge excluded chains the rule checks kept"
    manifest = manifest_of(run)
    assert manifest["judge"]["used"] is True and "untrained" in manifest["judge"]["note"]
    assert manifest["rl_rows"] == sum(1 for d in decisions.values() if d["exported"] and d["rl_row"])
    assert sum(manifest["rl_excluded"].values()) == sum(1 for d in decisions.values() if d["exported"] and d["rl_excluded_by"])
    # exclude_on can name one judge measurement (judge_likelihood is judge_thought_likelihood)
    run_stage(run, "export", judge_excludes=True, exclude_on=["judge_likelihood"], **NO_VERIFY)
    for chain_id, d in decisions_of(run).items():
        v = judge[chain_id]["judge_thought_likelihood"]
        assert d["excluded_by"] == ([] if v["passed"] else [f"judge_thought_likelihood:{v['reason']}"])


def test_a_trained_judge_excludes_by_default(judged, exported, tmp_path):
    """`auto`: a model folder without the tiny model's marker (as a trainer saves a checkpoint)
    is taken as trained: its verdicts exclude, and a chain the judge could not run on stays out.
    The recipe judges with teacher forcing only (cheap): only that measurement is required."""
    import shutil

    import yaml

    from curation.schemas import CLIPS

    run = run_copy(judged[0], tmp_path)
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(judged[1], checkpoint)
    (checkpoint / "vstw_tiny.json").unlink()
    shutil.rmtree(run.root / "judge_verdicts")
    doc = yaml.safe_load(run.recipe_path.read_text())
    [judge_stage] = [s for s in doc["recipe"]["stages"] if s["stage"] == "judge"]
    judge_stage.update(model=str(checkpoint), modes=["teacher_forced"])
    run.recipe_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    # one clip gone from the clips table: the judge cannot run on the chains of its window
    gone = sorted({c["window_id"] for c in run.read_rows("chains")})[0]
    kept = [c for c in run.read_rows("clips") if not (c["window_id"] == gone and c["index_in_window"] == 0)]
    for part in run.existing_parts("clips"):
        run.part_path("clips", part).unlink()
    run.write_part("clips", "part-00000-test", to_table(kept, CLIPS))
    summary = run_stage(run, "judge", model=str(checkpoint), modes=["teacher_forced"], **JUDGE)
    assert summary["failed_by_reason"] == {"judge_clip_missing": 3}
    run_stage(run, "export", **NO_VERIFY)
    manifest = manifest_of(run)
    assert manifest["judge"]["used"] is True and manifest["judge"]["model"] == "checkpoint"
    assert manifest["judge"]["note"] == "judge verdicts used: model checkpoint"
    assert manifest["policy"]["required_checks"][-1] == "judge_teacher_forced" and manifest["policy"]["rl_pass_rate_band"] is None
    baseline, judge = decisions_of(exported[0]), judge_rows(run)
    chains = {c["chain_id"]: c for c in run.read_rows("chains")}
    excluded_by_judge = 0
    for chain_id, d in decisions_of(run).items():
        if chains[chain_id]["window_id"] == gone:
            assert "judge_teacher_forced:not_run" in d["excluded_by"] and not d["exported"]
            continue
        right = judge[chain_id]["judge_teacher_forced"]["passed"]
        assert d["exported"] == (baseline[chain_id]["exported"] and right), chain_id
        excluded_by_judge += baseline[chain_id]["exported"] and not right
    assert excluded_by_judge > 0
