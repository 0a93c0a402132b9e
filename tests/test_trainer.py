"""The minimal trainer: VST-loader rendering (exact turn texts, labels on assistant turns only),
30 SFT steps that lower the loss on a real demo export, a checkpoint that reloads, and `compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from _model_fixtures import SAMPLES, demo_run_with_chains, tiny_model, write_sft_export
from curation.model.sft_render import IGNORE, clip_frames, conversation, render_sft_record

torch.set_num_threads(1)  # on a shared, loaded machine one thread is several times faster than two
MEMORY = "[System]\nYou are a Streaming Video Analyst.\n"
VIDEO = "synthetic/synthetic-7-000.mp4"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("trainer-tiny") / "model")


@pytest.fixture(scope="module")
def processor(tiny):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny, local_files_only=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run_with_chains(tmp_path_factory.mktemp("trainer-runs"))


def record(instruction: str = "Describe.") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": VIDEO, "video_start": 0.0, "video_end": 10.0},
                {"type": "text", "text": instruction, "previous": MEMORY},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text_stream",
                    # the second clip is 0.3 s long: VST's slice gives it no frames (a turn with no video)
                    "text_stream": [[0.0, 4.0, "A blue triangle appears."], [4.0, 4.3, "Nothing new."], [4.3, 8.0, "A red triangle moves up."]],
                    "qa_stream": [[8.0, 10.0, "How many shapes?", "\\boxed{3}"]],
                }
            ],
        },
    ]


def test_rendering_reproduces_the_vst_turn_texts_exactly(processor):
    sample = render_sft_record(record(), processor, [SAMPLES])
    # 20 frames at 2 fps over 10 s; clip slices [0:8], [8:8] (empty), [8:16]; the QA clip [16:20]
    assert sample.video_grid_thw[:, 0].tolist() == [4, 4, 2]
    pads = ["<|video_pad|>" * (int(g.prod()) // 4) for g in sample.video_grid_thw]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>previous text\n[System]\nYou are a Streaming Video Analyst.\n<|im_end|>\n"
        f"<|im_start|>user\nTime=0.0-4.0s <|vision_start|>{pads[0]}<|vision_end|>Describe.<|im_end|>\n"
        "<|im_start|>assistant\nA blue triangle appears.<|im_end|>\n"
        "<|im_start|>user\nTime=4.0-4.3s Describe.<|im_end|>\n"
        "<|im_start|>assistant\nNothing new.<|im_end|>\n"
        f"<|im_start|>user\nTime=4.3-8.0s <|vision_start|>{pads[1]}<|vision_end|>Describe.<|im_end|>\n"
        "<|im_start|>assistant\nA red triangle moves up.<|im_end|>\n"
        f"<|im_start|>user\n<|vision_start|>{pads[2]}<|vision_end|>Timestamp=8.0s How many shapes?<|im_end|>\n"
        "<|im_start|>assistant\n\\boxed{3}<|im_end|>\n"
    )
    tok = processor.tokenizer
    assert tok.decode(sample.input_ids) == expected
    # labels: every assistant turn (content + <|im_end|>) and nothing else
    labelled = [t for t, lab in zip(sample.input_ids.tolist(), sample.labels.tolist()) if lab != IGNORE]
    assert tok.decode(labelled) == "A blue triangle appears.<|im_end|>Nothing new.<|im_end|>A red triangle moves up.<|im_end|>\\boxed{3}<|im_end|>"
    assert all(lab in (IGNORE, t) for t, lab in zip(sample.input_ids.tolist(), sample.labels.tolist()))
    video_pad = tok.convert_tokens_to_ids("<|video_pad|>")
    assert not any(lab == video_pad for lab in sample.labels.tolist())
    assert ((sample.input_ids == video_pad) == (sample.mm_token_type_ids == 2)).all()


def test_rendering_matches_the_processor_ids_and_pixels(processor):
    from transformers.video_utils import VideoMetadata

    sample = render_sft_record(record(instruction=""), processor, [SAMPLES])
    _, spans = conversation(record(instruction=""))
    frames = clip_frames(SAMPLES / VIDEO, 0.0, 10.0, spans)
    metadata = [VideoMetadata(total_num_frames=len(f), fps=2.0, frames_indices=list(range(len(f)))) for f in frames]
    ref = processor(text=[sample.text], videos=frames, video_metadata=metadata, return_tensors="pt")
    assert torch.equal(ref["input_ids"][0], sample.input_ids)
    assert torch.equal(ref["pixel_values_videos"], sample.pixel_values_videos)
    assert torch.equal(ref["video_grid_thw"], sample.video_grid_thw)
    assert "Time=0.0-4.0s <|vision_start|><|video_pad|><|vision_end|><|im_end|>" in sample.text  # empty instruction: no text


def test_records_the_loader_would_skip_are_counted_not_trained(processor, tmp_path):
    from curation.model.sft_render import read_records
    from curation.model.trainer import render_records

    bad_span = record()
    bad_span[0]["content"][0]["video_end"] = 0.0
    missing = record()
    missing[0]["content"][0]["video"] = "synthetic/nope.mp4"
    wrong_tuple = record()
    wrong_tuple[1]["content"][0]["text_stream"][0] = [0.0, 4.0]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (record(), bad_span, missing, wrong_tuple)) + "[0, 100, 200, 300]\n")
    rendered = render_records(read_records(path), processor, [SAMPLES], 128)
    assert len(rendered.samples) == 1
    assert rendered.skipped == {"sft_bad_record": 2, "sft_video_missing": 1}
    assert any("nope.mp4" in e for e in rendered.errors)


def test_thirty_steps_lower_the_loss_and_the_checkpoint_reloads(demo, tiny, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from pipelines.cli import app

    _, corpus = demo
    export = write_sft_export(corpus["chains"], tmp_path / "export")
    out = tmp_path / "train"
    args = [
        "train",
        "--sft",
        str(export),
        "--model",
        str(tiny),
        "--steps",
        "30",
        "--out",
        str(out),
        "--frame-width",
        "128",
        "--threads",
        "1",
        "--video-root",
        str(SAMPLES),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == len(corpus["chains"]) and summary["skipped"] == {}
    assert summary["trained_on"] + summary["held_out"] == summary["records"] and summary["held_out"] >= 1
    assert summary["last_window_train_loss"] < summary["first_window_train_loss"] - 0.5
    assert summary["held_out_loss_after"] < summary["held_out_loss_before"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(31))
    assert sum(1 for m in metrics if m.get("held_out_loss") is not None) == 4  # steps 0, 10, 20, 30
    assert (out / "loss.png").stat().st_size > 5000
    # the checkpoint reloads offline and gives the loss the trainer logged on the held-out set
    from curation.model.sft_render import read_records
    from curation.model.trainer import mean_loss, render_records, split_held_out

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out / "checkpoint", local_files_only=True)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out / "checkpoint", local_files_only=True)
    samples = render_records(read_records(export), processor, [export, SAMPLES], 128).samples
    _, held = split_held_out(samples, 0.2, 0)
    assert mean_loss(model, held) == pytest.approx(summary["held_out_loss_after"], rel=1e-4)


def test_gold_set_from_the_synthetic_ground_truth(processor):
    from curation.model.gold import gold_from_synthetic

    records = gold_from_synthetic(SAMPLES / "synthetic")
    truths = sorted((SAMPLES / "synthetic").glob("*.json"))
    assert len(records) == len(truths) >= 4
    for rec, truth_path in zip(records, truths):
        truth = json.loads(truth_path.read_text())
        qa = rec[1]["content"][0]["qa_stream"]
        n_objects = sum(len(s["objects"]) for s in truth["scenes"])
        assert qa[0][3] == "\\boxed{" + str(n_objects) + "}"
        first = min((o for s in truth["scenes"] for o in s["objects"]), key=lambda o: (o["appear_s"], o["object_id"]))
        assert qa[1][3] == "\\boxed{" + "ABC"[["circle", "square", "triangle"].index(first["shape"])] + "}"
        assert len(rec[1]["content"][0]["text_stream"]) == len(truth["scenes"])
    sample = render_sft_record(records[0], processor, [], 128)
    assert sample.video_grid_thw.shape[0] == len(records[0][1]["content"][0]["text_stream"])


HELDOUT_SEED = 9101  # not the samples' seed (7): worlds the demo exports never saw


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A VSTW_HOME whose data/heldout/<seed>/ holds two held-out worlds (written once)."""
    from curation.model.gold import ensure_heldout, heldout_folder

    root = tmp_path_factory.mktemp("trainer-home")
    ensure_heldout(heldout_folder(root, HELDOUT_SEED), 2, HELDOUT_SEED)
    return root


@pytest.fixture(scope="module")
def exports(demo, tmp_path_factory):
    """Two SFT exports of the demo's synthetic chains (the sample worlds, seed 7): all, and a subset."""
    _, corpus = demo
    synthetic = [c for c in corpus["chains"] if "synthetic" in c["video_path"]]
    folder = tmp_path_factory.mktemp("trainer-exports")
    a = write_sft_export(synthetic, folder / "a")  # every question
    b = write_sft_export(synthetic, folder / "b", keep=lambda c: c["qa"]["type"] == "multiple_choice")  # a filtered set
    return a, b, synthetic


def test_answer_accuracy_is_graded_by_the_reward_rules():
    from curation.formats.rewards import compute_reward
    from curation.model.trainer import answer_reward

    cases = [
        ("\\boxed{B}", "\\boxed{B}", 1.0),
        ("\\boxed{B}", "B. square", 1.0),  # no box: the first standalone capital of the text
        ("\\boxed{B}", "\\boxed{A} or B", 0.0),  # the box decides
        ("\\boxed{3}", "There are \\boxed{3.0} shapes.", 1.0),  # numbers compare by value
        ("\\boxed{3}", "3", 0.0),  # numerical answers must be boxed
        ("\\boxed{12}", "\\boxed{1}", 0.0),  # the truth is passed as [truth], never indexed character-wise
        ("\\boxed{Yes}", "\\boxed{yes}", 1.0),
        ("\\boxed{No}", "\\boxed{Yes}", 0.0),
    ]
    for gold, output, want in cases:
        assert answer_reward(gold, output) == want, (gold, output)
    assert answer_reward("\\boxed{3}", "\\boxed{3.0}") == compute_reward("numerical", "\\boxed{3.0}", ["3"])


def test_gold_accuracy_counts_reward_graded_answers(tiny, processor, home, monkeypatch):
    """Known answers: every count right (written as 3.0), every letter right (unboxed), every
    yes/no wrong: accuracy is exactly 2/3, per kind as planned."""
    from curation.model import vst_protocol
    from curation.model.gold import heldout_folder, load_gold
    from curation.model.tiny import load_model
    from curation.model.trainer import evaluate_gold, prepare_gold

    gold = prepare_gold(load_gold(heldout_folder(home, HELDOUT_SEED)), processor, [], 128)
    planned = []
    for _, _, qas in gold.items:
        for _, _, _, answer in qas:
            inner = answer.removeprefix("\\boxed{").removesuffix("}")
            if inner.isdigit():
                planned.append(f"I count \\boxed{{{inner}.0}}")
            elif inner in "ABC":
                planned.append(f"{inner}. it is")
            else:
                planned.append("\\boxed{" + ("No" if inner == "Yes" else "Yes") + "}")
    outputs = iter(planned)
    monkeypatch.setattr(vst_protocol.VSTEngine, "generate", lambda self, *a, **k: vst_protocol.Generated(next(outputs)))
    model, _ = load_model(tiny, device="cpu")
    result = evaluate_gold(model, processor, gold)
    assert len(gold.items) == 2 and result["questions"] == 6 and result["right"] == 4
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["by_kind"] == {"numerical": {"questions": 2, "right": 2}, "multiple_choice": {"questions": 2, "right": 2}, "yes_no": {"questions": 2, "right": 0}}
    assert result["loss"] > 0


def test_heldout_worlds_share_no_video_with_the_training_exports(exports, home, tmp_path):
    from curation.model.gold import heldout_folder, load_gold, world_seed
    from curation.model.sft_render import read_records
    from curation.model.trainer import find_overlap, record_videos

    a, b, _ = exports
    arms = {"a": record_videos(read_records(a), [a, SAMPLES]), "b": record_videos(read_records(b), [b, SAMPLES])}
    assert arms["a"] and all(ident["world"] // 1000 == 7 for ident in arms["a"].values())  # the sample worlds
    heldout = record_videos(load_gold(heldout_folder(home, HELDOUT_SEED)), [])
    assert len(heldout) == 2 and {ident["world"] for ident in heldout.values()} == {HELDOUT_SEED * 1000, HELDOUT_SEED * 1000 + 1}
    assert find_overlap(heldout, arms) == []
    # forced: the sample worlds themselves, and one of them copied under another name (same bytes)
    samples = record_videos(load_gold(SAMPLES / "synthetic"), [])
    overlap = find_overlap(samples, arms)
    trained = {p.name for p in arms["a"]}
    assert {o["eval_video"].rsplit("/", 1)[-1] for o in overlap if o["arm"] == "a"} == trained
    assert all(o["by"] == "sha256" for o in overlap)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(next(iter(arms["a"])).read_bytes())
    renamed = record_videos([(tmp_path / "x.jsonl", [{"content": [{"type": "video", "video": str(copy), "video_start": 0.0, "video_end": 1.0}, {"type": "text", "text": ""}]}, {"content": [{}]}])], [])
    assert [o["by"] for o in find_overlap(renamed, {"a": arms["a"]})] == ["sha256"]
    # the same synthetic world re-rendered elsewhere (other bytes, same script seed) is the same world
    assert world_seed("synthetic-7-002.mp4") == 7002 and world_seed("v0123456789abcdef.mp4") is None
    rerendered = {tmp_path / "synthetic-7-002.mp4": {"sha256": "f" * 64, "world": 7002, "name": "synthetic-7-002.mp4"}}
    hits = find_overlap(rerendered, {"a": {Path("synthetic-7-002.mp4"): {"sha256": "0" * 64, "world": 7002, "name": "synthetic-7-002.mp4"}}})
    assert [o["by"] for o in hits] == ["synthetic_world"]


def test_compare_refuses_an_eval_set_the_exports_trained_on(exports, tiny, tmp_path):
    from pipelines.cli import app

    a, b, _ = exports
    args = ["train", "compare", "--a", str(a), "--b", str(b), "--eval", str(SAMPLES / "synthetic"), "--model", str(tiny),
            "--steps", "1", "--out", str(tmp_path / "refused"), "--frame-width", "128", "--video-root", str(SAMPLES)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "shares" in result.output and "synthetic-7-000.mp4" in result.output and "--allow-overlap" in result.output
    assert not (tmp_path / "refused").exists()  # refused before any training


def test_compare_over_seeds_on_heldout_worlds(exports, tiny, home, tmp_path, monkeypatch):
    from pipelines.cli import app

    monkeypatch.setenv("VSTW_HOME", str(home))
    a, b, synthetic = exports
    out = tmp_path / "compare"
    args = ["train", "compare", "--a", str(a), "--b", str(b), "--eval-worlds", "2", "--eval-seed", str(HELDOUT_SEED), "--seeds", "0,1,2",
            "--model", str(tiny), "--steps", "3", "--eval-every", "3", "--out", str(out), "--frame-width", "128", "--threads", "1",
            "--video-root", str(SAMPLES), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["held_out"] is True and report["overlap"] == [] and report["seeds"] == [0, 1, 2]
    assert report["gold"] == str(home / "data" / "heldout" / str(HELDOUT_SEED))
    assert report["base"]["questions"] == 6 and report["base"]["records"] == 2
    for name in ("a", "b"):
        runs = report["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1, 2] and [r["config"]["seed"] for r in runs] == [0, 1, 2]
        assert all(r["gold"]["questions"] == 6 and 0.0 <= r["gold"]["accuracy"] <= 1.0 and r["gold"]["loss"] > 0 for r in runs)
        assert all((out / name / f"seed-{s}" / "summary.json").is_file() for s in (0, 1, 2))
        losses = [r["gold"]["loss"] for r in runs]
        assert len(set(losses)) == 3  # the seed changes the split and the order: three different runs
        spread = report["summary"][name]["eval_loss"]
        assert spread["n"] == 3 and spread["min"] == min(losses) and spread["max"] == max(losses)
        assert spread["mean"] == pytest.approx(sum(losses) / 3) and spread["std"] > 0
        assert all(r["gold"]["loss"] < report["base"]["loss"] for r in runs)  # training moved the model
    assert report["runs"]["a"][0]["records"] == len(synthetic) > report["runs"]["b"][0]["records"] > 0
    paired = report["paired"]["eval_loss"]
    diffs = [rb["gold"]["loss"] - ra["gold"]["loss"] for ra, rb in zip(report["runs"]["a"], report["runs"]["b"])]
    assert paired["mean"] == pytest.approx(sum(diffs) / 3)
    md = (out / "report.md").read_text()
    assert len(re.findall(r"\n\| a \| \d \| ", md)) == 3 and len(re.findall(r"\n\| b \| \d \| ", md)) == 3  # per-seed rows
    assert "± " in md and "Verdict:" in md and "NOT HELD OUT" not in md
    compact = json.loads(result.output.strip().splitlines()[-1])
    assert compact["held_out"] is True and [r["seed"] for r in compact["arms"]["a"]["per_seed"]] == [0, 1, 2]
    assert compact["arms"]["b"]["eval_accuracy"]["n"] == 3


def test_compare_with_allow_overlap_warns_and_marks_the_report(exports, tiny, tmp_path):
    from curation.model.trainer import TrainConfig, compare

    a, b, _ = exports
    warnings = []
    config = TrainConfig(steps=1, eval_every=1, frame_width=128)
    report = compare(a, b, SAMPLES / "synthetic", tiny, tmp_path / "c", config, [SAMPLES], log=lambda *_: None,
                     allow_overlap=True, eval_limit=1, warn=warnings.append)  # fmt: skip
    assert report["held_out"] is False and report["overlap"] and len(report["runs"]["a"]) == 1
    assert len(warnings) == 1 and "NOT HELD OUT" in warnings[0]
    assert "NOT HELD OUT" in (tmp_path / "c" / "report.md").read_text() and "NOT HELD OUT" in report["verdict"]


def test_lora_option_trains_adapters_and_saves_a_plain_checkpoint(tiny, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from curation.model.trainer import TrainConfig, train_sft

    export = tmp_path / "two.jsonl"
    export.write_text("".join(json.dumps(record(i)) + "\n" for i in ("Describe.", "")))
    config = TrainConfig(steps=3, eval_every=3, lora=True, lr=5e-3, frame_width=128, eval_fraction=0.5)
    summary = train_sft(export, tiny, tmp_path / "lora", config, [SAMPLES], log=lambda *_: None)
    assert summary["trained_on"] == 1 and summary["held_out"] == 1
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny, local_files_only=True).state_dict()
    tuned = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "lora" / "checkpoint", local_files_only=True).state_dict()
    assert base.keys() == tuned.keys()  # merged: loads like the base model, no adapter keys
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and all(k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")) for k in changed)


def test_agrees_with_the_export_side_renderer(processor):
    """curation.formats.render (issue 4) renders the same ids, labels and pixels; ours also carries
    the 2 fps temporal spacing (second_per_grid_ts = 1.0) and the token types the model needs."""
    from curation.formats.render import render_record

    for instruction in ("Describe.", ""):
        ours = render_sft_record(record(instruction), processor, [SAMPLES], 128)
        theirs = render_record(record(instruction), processor, video_root=SAMPLES, frame_width=128)
        assert torch.equal(ours.input_ids, theirs.input_ids)
        assert torch.equal(ours.labels, theirs.labels)
        assert torch.equal(ours.pixel_values_videos, theirs.pixel_values_videos)
    assert ours.second_per_grid_ts.tolist() == [1.0] * len(ours.video_grid_thw)
