"""Validators: the demo export passes both; hand-broken exports fail with the right message; the
render gives labels on assistant turns only; VST's rewards accept the truth and refuse a wrong answer."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from _chain_fixtures import build_corpus, demo_run_copy, run_stage, write_tables
from curation.formats.render import IGNORE_INDEX, render_record
from curation.formats.rewards import compute_reward, extract_boxed
from curation.formats.sft import encode_lines, seeks_path_for
from curation.formats.validate import validate_rl, validate_sft


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    run = demo_run_copy(tmp_path_factory, "validate")
    write_tables(run, build_corpus(run))
    run_stage(run, "check")
    run_stage(run, "export", allow_unchecked=["answer"])  # hand-built chains: no verify stage ran
    return run.exports_dir


@pytest.fixture(scope="module")
def processor():
    """The real Qwen2_5_VLProcessor with the Qwen2.5-VL chat template and a locally trained tokenizer."""
    from curation.model.tiny import build_processor, tokenizer_corpus, train_tokenizer

    proc = build_processor(train_tokenizer(tokenizer_corpus()))
    assert type(proc).__name__ == "Qwen2_5_VLProcessor"
    return proc


def codes(report):
    return [p.code for p in report.problems()]


def broken_copy(export_root, tmp_path, name="yes_no_with_seeks.jsonl"):
    """A copy of the export root whose SFT file can be broken by hand."""
    root = tmp_path / "exports"
    shutil.copytree(export_root, root, symlinks=True)
    return root, root / "sft" / name


def rewrite(path, lines):
    data, offsets = encode_lines(lines)
    path.write_bytes(data)
    seeks_path_for(path).write_text(json.dumps(offsets))


# ---- round trip -----------------------------------------------------------------------------------------
def test_the_demo_export_passes_the_sft_validator_with_rendering(export_root, processor):
    for path in sorted((export_root / "sft").glob("*_with_seeks.jsonl")):
        report = validate_sft(path, processor=processor)
        assert report.ok, [str(p) for p in report.problems()]
        assert len(report.records) == 5
        assert all(r.tokens > r.label_tokens > 0 and r.frames > 0 for r in report.records)


def test_the_demo_export_passes_the_rl_validator(export_root):
    report = validate_rl(export_root / "rl" / "train.parquet")
    assert report.ok, [str(p) for p in report.problems()]
    assert len(report.records) == 15


# ---- rendering -----------------------------------------------------------------------------------------
def test_render_puts_labels_on_assistant_turns_only(export_root, processor):
    line = (export_root / "sft" / "numerical_with_seeks.jsonl").read_text().splitlines()[0]
    record = json.loads(line)
    r = render_record(record, processor, export_root)
    tok = processor.tokenizer
    stream = record[1]["content"][0]
    labelled = tok.decode([i for i in r.labels.tolist() if i != IGNORE_INDEX])
    assert labelled == "".join(t[2] + "<|im_end|>" for t in stream["text_stream"]) + stream["qa_stream"][0][3] + "<|im_end|>"
    unlabelled = tok.decode([i for i, l in zip(r.input_ids.tolist(), r.labels.tolist()) if l == IGNORE_INDEX])
    assert "Time=0.0-" in unlabelled and "previous text\n[System]\nYou are a Streaming Video Analyst." in unlabelled
    assert "You are a helpful assistant." in unlabelled and "Timestamp=" in unlabelled
    # Every clip has frames; the QA at the window end has none; frames decoded = 2 fps over the window.
    vs, ve = record[0]["content"][0]["video_start"], record[0]["content"][0]["video_end"]
    assert r.frames_decoded == int((ve - vs) * 2) + int((ve - vs) * 2) % 2
    assert all(c > 0 for c in r.clip_frames[:-1]) and r.clip_frames[-1] == 0
    assert r.video_grid_thw.shape[0] == len(stream["text_stream"])
    assert r.text.index("<|im_start|>previous text\n") < r.text.index("<|im_start|>user\nTime=")


def test_render_follows_the_loader_turn_layout(export_root, processor):
    record = json.loads((export_root / "sft" / "yes_no_with_seeks.jsonl").read_text().splitlines()[0])
    record[0]["content"][1]["text"] = "Describe what is new."
    r = render_record(record, processor, export_root)
    first_user = r.messages[1]["content"]
    assert first_user[0]["text"].startswith("Time=") and first_user[0]["text"].endswith("s ")
    assert first_user[1] == {"type": "video"} and first_user[2] == {"type": "text", "text": "Describe what is new."}
    qa_user = r.messages[-2]["content"]
    assert qa_user == [{"type": "text", "text": f"Timestamp={record[0]['content'][0]['video_end']:.1f}s " + record[1]["content"][0]["qa_stream"][0][2]}]


# ---- hand-broken SFT ------------------------------------------------------------------------------------
def test_shifted_seek_offsets_fail(export_root, tmp_path):
    _, path = broken_copy(export_root, tmp_path)
    offsets = json.loads(seeks_path_for(path).read_text())
    seeks_path_for(path).write_text(json.dumps([offsets[0]] + [o + 1 for o in offsets[1:]]))
    report = validate_sft(path)
    assert not report.ok and [r.where for r in report.bad_records] == ["line 2"]
    [p] = [p for p in report.problems() if p.code == "seek_offset_wrong"]
    assert p.where == "line 2" and "should be" in p.message and "inside a line" in p.message


def test_a_tuple_of_4_in_text_stream_fails(export_root, tmp_path):
    _, path = broken_copy(export_root, tmp_path)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[2])
    rec[1]["content"][0]["text_stream"][1].append("extra")
    lines[2] = json.dumps(rec)
    rewrite(path, lines)
    report = validate_sft(path)
    [bad] = report.bad_records
    assert bad.where == "line 3"
    assert bad.problems[0].code == "text_stream_item" and "text_stream[1] must be [start, end, thought] (3 items)" in bad.problems[0].message


@pytest.mark.parametrize(
    "mutate,code",
    [
        (lambda r: r.append({"role": "user", "content": []}), "record_shape"),
        (lambda r: r[0]["content"].reverse(), "record_shape"),
        (lambda r: r[0]["content"][0].pop("video_end"), "record_shape"),
        (lambda r: r[1]["content"][0]["qa_stream"][0].pop(), "qa_stream_item"),
        (lambda r: r[1]["content"][0]["text_stream"][0].__setitem__(2, 7), "text_stream_item"),
        (lambda r: r[0]["content"][0].__setitem__("video", "videos/nope.mp4"), "video_missing"),
        (lambda r: r[0]["content"][0].__setitem__("video_end", r[0]["content"][0]["video_end"] + 5), "window_past_video_end"),
        (lambda r: r[0]["content"][0].__setitem__("video_end", r[0]["content"][0]["video_start"]), "window_empty"),
        (lambda r: r[1]["content"][0]["text_stream"].reverse(), "thoughts_overlap"),
        (lambda r: r[1]["content"][0]["text_stream"][1].__setitem__(1, r[1]["content"][0]["text_stream"][1][0] + 0.05), "clip_gets_no_frames"),
    ],
)
def test_hand_broken_records_fail_with_their_code(export_root, tmp_path, mutate, code):
    _, path = broken_copy(export_root, tmp_path, "multiple_choice_with_seeks.jsonl")
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    mutate(rec)
    lines[1] = json.dumps(rec)
    rewrite(path, lines)
    report = validate_sft(path)
    assert [r.where for r in report.bad_records] == ["line 2"]
    assert code in codes(report)


def test_window_longer_than_192s_fails(tmp_path):
    rec = [
        {"role": "user", "content": [{"type": "video", "video": "v.mp4", "video_start": 0.0, "video_end": 200.0}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": [{"type": "text_stream", "text_stream": [[0.0, 100.0, "a"], [100.0, 200.0, "b"]]}]},
    ]
    path = tmp_path / "long.jsonl"
    rewrite(path, [json.dumps(rec)])
    report = validate_sft(path, check_videos=False)
    assert codes(report) == ["window_too_long"]
    assert validate_sft(path, check_videos=False, max_frames=400).ok


def test_trailing_seek_line_is_accepted_when_it_agrees(export_root, tmp_path):
    _, path = broken_copy(export_root, tmp_path)
    lines = path.read_text().splitlines()
    path.write_bytes(encode_lines(lines)[0] + (json.dumps(encode_lines(lines)[1]) + "\n").encode())
    assert validate_sft(path).ok
    seeks_path_for(path).write_text("[0, 1]")
    assert "seeks_disagree" in codes(validate_sft(path))


# ---- hand-broken RL -------------------------------------------------------------------------------------
def rl_rows(export_root):
    return pq.read_table(export_root / "rl" / "train.parquet").to_pylist()


def test_bare_string_ground_truth_fails(export_root, tmp_path):
    rows = rl_rows(export_root)
    schema = pa.schema([f if f.name != "reward_model" else pa.field("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])) for f in pq.read_schema(export_root / "rl" / "train.parquet")])
    numerical = next(i for i, r in enumerate(rows) if r["data_source"] == "numerical" and len(r["reward_model"]["ground_truth"][0]) > 1)
    for r in rows:
        r["reward_model"]["ground_truth"] = r["reward_model"]["ground_truth"][0]
    path = tmp_path / "rl" / "train.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    report = validate_rl(path, video_root=export_root)
    assert not report.ok and "rl_column_type" in codes(report)
    bad = report.records[numerical].problems
    assert bad[0].code == "ground_truth_not_list" and "grades against" in bad[0].message
    assert "reward_rejects_truth" in [p.code for p in bad]  # "12"[0] == "1": VST would never reward 12


def test_option_f_fails(export_root, tmp_path):
    rows = rl_rows(export_root)
    i = next(i for i, r in enumerate(rows) if r["data_source"] == "multiple choice")
    rows[i]["prompt"] += "\nD. hexagon\nE. star\nF. heart"
    rows[i]["reward_model"]["ground_truth"] = ["F"]
    path = tmp_path / "rl" / "train.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(export_root / "rl" / "train.parquet")), path)
    report = validate_rl(path, video_root=export_root)
    [bad] = report.bad_records
    assert bad.where == f"row {i}"
    assert [p.code for p in bad.problems] == ["option_beyond_e", "reward_rejects_truth"]
    assert "['F']" in bad.problems[0].message


@pytest.mark.parametrize(
    "mutate,code",
    [
        (lambda r: r["extra_info"].__setitem__("duration", 0.0), "duration_invalid"),
        (lambda r: r["extra_info"].__setitem__("duration", r["extra_info"]["duration"] + 7), "duration_mismatch"),
        (lambda r: r.__setitem__("data_source", "yes or no val"), "data_source_unsupported"),
        (lambda r: r.__setitem__("data_source", "essay"), "data_source_unknown"),
        (lambda r: r["reward_model"].__setitem__("ground_truth", ["A", "B"]), "ground_truth_not_one"),
        (lambda r: r.__setitem__("video_context", "videos/gone.mp4"), "video_missing"),
        (lambda r: r.__setitem__("question", ""), "question_missing"),
    ],
)
def test_hand_broken_rl_rows_fail_with_their_code(export_root, tmp_path, mutate, code):
    rows = rl_rows(export_root)
    mutate(rows[3])
    path = tmp_path / "rl" / "train.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(export_root / "rl" / "train.parquet")), path)
    report = validate_rl(path, video_root=export_root)
    assert [r.where for r in report.bad_records] == ["row 3"] and code in codes(report)


def test_extra_or_missing_rl_columns_fail(export_root, tmp_path):
    table = pq.read_table(export_root / "rl" / "train.parquet")
    path = tmp_path / "x.parquet"
    pq.write_table(table.append_column("chain_id", pa.array(["c"] * table.num_rows)).drop_columns(["question"]), path)
    got = codes(validate_rl(path, video_root=export_root))
    assert "rl_column_extra" in got and "rl_column_missing" in got


# ---- rewards ---------------------------------------------------------------------------------------------
def test_rewards_follow_vsts_rules():
    assert compute_reward("multiple choice", "I think \\boxed{B. red}", ["B."]) == 1.0
    assert compute_reward("multiple choice", "A is wrong, so \\boxed{C}", ["C"]) == 1.0
    assert compute_reward("multiple choice", "The answer is B", ["B"]) == 1.0  # no box: whole text
    assert compute_reward("multiple choice", "\\boxed{F}", ["F"]) == 0.0  # beyond E: never rewarded
    assert compute_reward("numerical", "\\boxed{12}", ["12"]) == 1.0
    assert compute_reward("numerical", "\\boxed{12.0}", ["12"]) == 1.0
    assert compute_reward("numerical", "\\boxed{12}", "12") == 0.0  # bare string: graded against "1"
    assert compute_reward("numerical", "12", ["12"]) == 0.0  # no box, no reward
    assert compute_reward("yes or no", "\\boxed{yes}", ["Yes"]) == 1.0
    assert compute_reward("yes or no", "no box but No.", ["No"]) == 1.0
    assert compute_reward("numerical val", "\\boxed{3}", ["3"]) == 1.0
    assert extract_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    with pytest.raises(ValueError, match="no reward"):
        compute_reward("yes or no val", "\\boxed{Yes}", ["Yes"])


# ---- the command line ------------------------------------------------------------------------------------
def test_cli_exit_codes_and_per_record_errors(export_root, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    good = runner.invoke(app, ["validate", "rl", str(export_root / "rl")])
    assert good.exit_code == 0, good.output
    assert "OK" in good.output
    good_sft = runner.invoke(app, ["validate", "sft", str(export_root / "sft"), "--no-render"])
    assert good_sft.exit_code == 0 and good_sft.output.count("OK") == 3
    _, path = broken_copy(export_root, tmp_path)
    offsets = json.loads(seeks_path_for(path).read_text())
    seeks_path_for(path).write_text(json.dumps(offsets[:-1] + [offsets[-1] + 3]))
    bad = runner.invoke(app, ["validate", "sft", str(path), "--no-render"])
    assert bad.exit_code == 1
    assert "line 5: seek offset" in bad.output and "[seek_offset_wrong]" in bad.output
    assert "INVALID" in bad.output and "1 bad" in bad.output
