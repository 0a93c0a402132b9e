"""RL and SFT are right for every window: a video longer than 192 s (several windows), run for real
(ingest -> segment -> perceive -> graph -> qa -> think -> export, the fake teacher answering from
the synthetic ground truth), then judged by what VST's trainers do with the files.

RL: VST shows the model the whole file named by `video_context` with `extra_info.duration` as its
length, and rewards `\\boxed{answer}` against the ground truth. So each row's file is opened, its
length compared with the row's duration, and the template question's answer recomputed from the
synthetic ground truth restricted to what that file shows: the row's ground truth must score 1.
SFT: each record keeps the whole video with its window's bounds, and VST's 2 fps slice arithmetic
gives every thought frames (curation/formats/validate.py holds the loader rules).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from _teacher_fixtures import FakeTeacherServer
from curation.formats.rewards import compute_reward
from curation.formats.rl import is_whole_video, window_cut_name
from curation.formats.validate import validate_rl, validate_sft
from curation.schemas import EXPORT_DECISIONS, to_table
from curation.synthetic import BACKGROUNDS, ground_truth, make_script, render_video
from curation.video.cut import CutError, cut_window, read_recorded_window
from curation.video.decode import open_reader
from curation.video.segment import vst_frame_count
from pipelines.recipe import parse_recipe
from pipelines.rundir import RunDir, atomic_write_json
from pipelines.run import run_recipe
from pipelines.stages.export import ExportParams, export_one, load_export_inputs, write_exports

PROJECT = Path(__file__).resolve().parents[1]
FPS = 10  # small and slow videos render and decode fast; the rules do not depend on the size
LONG = dict(n_scenes=40, scene_s=(8.0, 12.0), fps=FPS, width=160, height=120)  # about 400 s: 3 windows
SHORT = dict(n_scenes=4, scene_s=(6.0, 9.0), fps=FPS, width=160, height=120)  # one window: the whole video
OBJECT = re.compile(r"\b(red|green|blue|yellow|white|magenta) (circle|square|triangle)\b")


# ---- the cut itself -------------------------------------------------------------------------------
def background_of(frame_rgb: np.ndarray) -> str:
    """The scene a decoded frame belongs to: its top-left pixel is the plain background."""
    r, g, b = (int(v) for v in frame_rgb[2, 2])
    return min(BACKGROUNDS, key=lambda name: sum(abs(x - y) for x, y in zip((b, g, r), BACKGROUNDS[name])))


def backgrounds(path: Path) -> list[str]:
    reader = open_reader(path)
    return [background_of(f) for f in reader.get_batch(list(range(len(reader)))).asnumpy()]


@pytest.fixture(scope="module")
def three_scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut")
    script = make_script("three", seed=5, n_scenes=3, scene_s=(4.0, 6.0), fps=FPS, width=160, height=120)
    return render_video(script, folder / "three.mp4"), ground_truth(script)


def test_a_cut_holds_exactly_the_frames_of_its_window(three_scenes, tmp_path):
    src, truth = three_scenes
    names = [s["background"] for s in truth["scenes"]]
    source = backgrounds(src)
    assert source == [s["background"] for s in truth["scenes"] for _ in range(round((s["end_s"] - s["start_s"]) * FPS))]
    c1, c2 = truth["cut_frames"]
    # Exactly the middle scene: one frame too many on either side would show another background.
    duration = cut_window(src, c1 / FPS, c2 / FPS, tmp_path / "mid.mp4")
    assert backgrounds(tmp_path / "mid.mp4") == [names[1]] * (c2 - c1)
    assert duration == pytest.approx((c2 - c1) / FPS, abs=1e-6)
    # Off the scene cuts: 3 frames before the first cut to 2 frames after the second.
    cut_window(src, (c1 - 3) / FPS, (c2 + 2) / FPS, tmp_path / "wide.mp4")
    assert backgrounds(tmp_path / "wide.mp4") == source[c1 - 3 : c2 + 2]
    # A window starting at 0 that is not the whole video.
    cut_window(src, 0.0, c1 / FPS, tmp_path / "head.mp4")
    assert backgrounds(tmp_path / "head.mp4") == [names[0]] * c1


def test_a_cut_is_made_once_and_redone_for_another_window(three_scenes, tmp_path):
    src, truth = three_scenes
    c1, c2 = truth["cut_frames"]
    dst = tmp_path / "w.mp4"
    first = cut_window(src, c1 / FPS, c2 / FPS, dst)
    stamp = dst.stat().st_mtime_ns, dst.stat().st_ino
    assert cut_window(src, c1 / FPS, c2 / FPS, dst) == first
    assert (dst.stat().st_mtime_ns, dst.stat().st_ino) == stamp, "the same window is not encoded twice"
    recorded = read_recorded_window(dst)
    assert (recorded["first_frame"], recorded["last_frame"], recorded["source"]) == (c1, c2, src.name)
    # Another window at the same path replaces the file.
    assert cut_window(src, 0.0, c1 / FPS, dst) == pytest.approx(c1 / FPS)
    assert backgrounds(dst) == [truth["scenes"][0]["background"]] * c1
    with pytest.raises(CutError, match="empty"):
        cut_window(src, 3.0, 3.0, tmp_path / "x.mp4")
    with pytest.raises(CutError, match="not found"):
        cut_window(tmp_path / "missing.mp4", 0.0, 1.0, tmp_path / "x.mp4")
    assert not list(tmp_path.glob(".*tmp*")), "no half-written file is left behind"


def test_window_names_and_whole_video():
    assert window_cut_name("v0123", 191.9, 383.4) == "v0123-w191900-383400.mp4"
    assert is_whole_video(0.0, 40.92, 40.92) and not is_whole_video(0.0, 30.0, 40.92)
    assert not is_whole_video(10.0, 40.92, 40.92) and not is_whole_video(0.0, 1.0, None)


# ---- a long video, end to end ---------------------------------------------------------------------
def annotations(truth: dict) -> list[dict]:
    return [{k: e[k] for k in ("start_s", "end_s", "text", "kind")} for e in truth["events"]]


def pipeline_recipe(manifest: Path, folder: Path, base_url: str) -> dict:
    return {
        "name": "rl-windows",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": [str(folder)],
        "runner": {"workers": 1, "part_size": 4},
        "teacher": {
            "text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
            "timeout_s": 5.0, "max_retries": 1, "concurrency": 4,
        },  # fmt: skip
        "stages": [
            {"stage": "ingest"},
            {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
            {"stage": "perceive"},
            {"stage": "graph", "source": "teacher"},
            # the three templates whose answers recomputed_answer re-derives from the ground truth
            {"stage": "qa", "mode": "template", "templates": ["count_entities", "first_appearance", "appeared_before"]},
            {"stage": "think", "mode": "teacher"},
        ],
    }


def export_everything(run_dir: RunDir, params: ExportParams) -> dict:
    """The export stage's own functions on every chain. The gate (which verdicts a chain needs)
    is not under test here: every chain is exported, so every window's rows are judged."""
    run_dir.success_path("export_decisions").unlink(missing_ok=True)  # decide again (params change)
    for part in run_dir.existing_parts("export_decisions"):
        run_dir.part_path("export_decisions", part).unlink()
    records = load_export_inputs(run_dir, params)
    rows = []
    for record in records:
        row = export_one(record, params)
        assert "reason" not in row, row.get("error")
        rows.append({**row, "exported": True, "excluded_by": [], "status": "ok", "run": run_dir.name})
    run_dir.write_part("export_decisions", "part-00000", to_table(rows, EXPORT_DECISIONS))
    atomic_write_json(run_dir.success_path("export_decisions"), {"rows": len(rows)})
    return write_exports(run_dir, params)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rlwin")
    truths, lines = {}, []
    # Seed 38: its 39 scene cuts all score above the content detector's threshold (the palette's
    # navy/teal pair scores 25.4 < 27, a cut scene detection misses, in many other seeds).
    for name, seed, shape in (("long", 38, LONG), ("short", 32, SHORT)):
        script = make_script(name, seed=seed, **shape)
        path = render_video(script, folder / f"{name}.mp4")
        truths[name] = ground_truth(script)
        lines.append({"path": str(path), "id": name, "annotations": annotations(truths[name])})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with FakeTeacherServer() as server:
        run_recipe(parse_recipe(pipeline_recipe(manifest, folder, server.base_url)), "rl", PROJECT, folder / "runs", progress=False, echo=lambda *_: None)
    run_dir = RunDir(folder / "runs" / "rl")
    manifest_out = export_everything(run_dir, ExportParams())
    videos = {v["source_id"]: v for v in run_dir.read_rows("videos")}
    return run_dir, truths, videos, manifest_out


def rl_rows_with_chains(run_dir: RunDir) -> list[tuple[dict, dict]]:
    rows = pq.read_table(run_dir.exports_dir / "rl" / "train.parquet").to_pylist()
    prov = pq.read_table(run_dir.exports_dir / "rl" / "train_provenance.parquet").to_pylist()
    chains = {c["chain_id"]: c for c in run_dir.read_rows("chains")}
    assert len(rows) == len(prov) and rows
    return [(row, chains[p["chain_id"]]) for row, p in zip(rows, prov)]


def visible(truth: dict, start_s: float, end_s: float) -> dict[str, float]:
    """Object name -> when it is first on screen within [start_s, end_s) (the ground truth)."""
    out: dict[str, float] = {}
    for scene in truth["scenes"]:
        for o in scene["objects"]:
            if o["appear_s"] < end_s and o["leave_s"] > start_s:
                name = f"{o['colour']} {o['shape']}"
                out[name] = min(out.get(name, float("inf")), max(o["appear_s"], start_s))
    return out


def recomputed_answer(row: dict, on_screen: dict[str, float]) -> str:
    """The template question's answer over what the model is shown (the prompt as VST gives it)."""
    question = row["question"]
    if row["data_source"] == "numerical":
        assert question == "How many different objects have appeared in the video so far?"
        return str(len(on_screen))
    if row["data_source"] == "multiple choice":
        options = dict(re.findall(r"^([A-E])\. (.+)$", row["prompt"], re.MULTILINE))
        return min(options, key=lambda letter: (on_screen[options[letter]], options[letter]))
    x, y = re.fullmatch(r"Did the (.+) (?:appear|show up|come) before the (.+)\?", question).groups()  # APPEARED_BEFORE's phrasings
    return "Yes" if on_screen[x] < on_screen[y] else "No"


def test_scene_detection_finds_every_cut_of_the_small_long_video(long_run):
    run_dir, truths, videos, _ = long_run
    long = videos["long"]
    assert long["duration_s"] > 2 * 192.0, "three windows"
    clips = sorted((c for c in run_dir.read_rows("clips") if c["video_id"] == long["video_id"]), key=lambda c: c["index"])
    found = [c["start_frame"] for c in clips if c["boundary"] == "scene_cut"]
    assert len(found) == len(truths["long"]["cut_frames"])
    assert all(abs(a - b) <= 1 for a, b in zip(found, truths["long"]["cut_frames"]))
    assert len({c["window_id"] for c in clips}) >= 3


def test_rl_rows_show_the_model_exactly_the_window_their_answer_was_computed_on(long_run):
    run_dir, truths, videos, manifest = long_run
    root = run_dir.exports_dir
    by_id = {v["video_id"]: (source, v) for source, v in videos.items()}
    windows_seen, cut_starts, wrong_on_whole_video = set(), set(), 0
    for row, chain in rl_rows_with_chains(run_dir):
        source, video = by_id[chain["video_id"]]
        truth = truths[source]
        path = root / row["video_context"]
        assert path.is_file(), row["video_context"]
        reader = open_reader(path)
        frames, fps = len(reader), float(reader.get_avg_fps())
        assert abs(frames / fps - row["extra_info"]["duration"]) <= 1.0 / fps, "duration = the file's length, within a frame"
        if is_whole_video(chain["start_s"], chain["end_s"], video["duration_s"]):
            assert source == "short" and row["video_context"] == f"videos/{video['video_id']}.mp4"
            assert path.resolve() == Path(video["path"]).resolve()
            shown = (0.0, video["duration_s"])
        else:
            assert source == "long"
            assert row["video_context"] == f"videos/{window_cut_name(video['video_id'], chain['start_s'], chain['end_s'])}"
            start = int(re.search(r"-w(\d+)-\d+\.mp4$", row["video_context"]).group(1)) / 1000
            shown = (start, start + frames / fps)
            assert shown[1] == pytest.approx(chain["end_s"], abs=1.0 / fps)
            # The file shows the source's frames of that span: same scenes, frame for frame.
            first = round(start * FPS)
            src = open_reader(Path(video["path"]))
            want = [background_of(f) for f in src.get_batch(list(range(first, first + frames))).asnumpy()]
            assert backgrounds(path) == want
            cut_starts.add(start)
        windows_seen.add(chain["window_id"])
        got = recomputed_answer(row, visible(truth, *shown))
        # VST's reward rule for the answer the ground truth says is right, given what the model sees.
        assert compute_reward(row["data_source"], "\\boxed{" + got + "}", row["reward_model"]["ground_truth"]) == 1.0, (row, got)
        assert row["reward_model"]["ground_truth"] == [got]
        # What the old rows (the whole video, its full length) would have rewarded instead.
        wrong_on_whole_video += recomputed_answer(row, visible(truth, 0.0, video["duration_s"])) != got
    assert len({w for w in windows_seen if w.startswith(videos["long"]["video_id"])}) >= 2
    assert any(s > 0 for s in cut_starts), "a window not starting at 0 is cut"
    assert any(s == 0 for s in cut_starts), "a first window that is not the whole video is cut too"
    assert wrong_on_whole_video > 0, "pointing these rows at the whole video would reward wrong answers"
    assert manifest["rl_window_cuts"]["windows"] == len(cut_starts) and manifest["rl_window_cuts"]["errors"] == {}
    report = validate_rl(root / "rl" / "train.parquet")
    assert report.ok, [str(p) for p in report.problems()]


def test_sft_records_keep_the_whole_video_and_give_every_thought_frames(long_run):
    run_dir, _, videos, _ = long_run
    root = run_dir.exports_dir
    chains = {c["chain_id"]: c for c in run_dir.read_rows("chains")}
    starts = set()
    for path in sorted((root / "sft").glob("*_with_seeks.jsonl")):
        report = validate_sft(path)
        assert report.ok, [str(p) for p in report.problems()]
        provenance = [json.loads(l) for l in path.with_name(path.name.replace("_with_seeks", "_provenance")).read_text().splitlines()]
        for line, prov in zip(path.read_text().splitlines(), provenance, strict=True):
            chain = chains[prov["chain_id"]]
            video, _ = json.loads(line)[0]["content"]
            stream = json.loads(line)[1]["content"][0]
            assert video["video"] == f"videos/{chain['video_id']}.mp4", "SFT keeps the whole video"
            vs, ve = video["video_start"], video["video_end"]
            assert (vs, ve) == (chain["start_s"], chain["end_s"]) and ve - vs <= 192.0
            n = vst_frame_count(vs, ve)
            for s, e, _ in stream["text_stream"]:
                assert vs <= s < e <= ve
                assert int(n * (e - vs) / (ve - vs)) > int(n * (s - vs) / (ve - vs)), "every thought gets 2 fps frames"
            starts.add(vs)
    assert any(s > 0 for s in starts), "windows that do not start at 0 are exported"


def test_a_second_export_reuses_the_cuts_and_writes_the_same_files(long_run):
    run_dir, _, _, manifest = long_run
    folder = run_dir.exports_dir / "videos"
    cuts = sorted(p for p in folder.iterdir() if "-w" in p.name)
    assert len(cuts) == manifest["rl_window_cuts"]["windows"]
    stamps = {p.name: p.stat().st_mtime_ns for p in cuts}
    before = (run_dir.exports_dir / "rl" / "train.parquet").read_bytes()
    stale = folder / "vdeadbeef-w0-1000.mp4"
    shutil.copyfile(cuts[0], stale)  # a real cut (it records its window), of a window gone since
    lookalike = folder / "vcafe-w1-2.mp4"
    lookalike.write_bytes(b"a source video whose id looks like a cut name")
    write_exports(run_dir, ExportParams())
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if "-w" in p.name and p != lookalike} == stamps
    assert (run_dir.exports_dir / "rl" / "train.parquet").read_bytes() == before
    assert not stale.exists(), "a cut no export row points at is removed"
    assert lookalike.exists(), "a file that is not a cut is never removed"
    lookalike.unlink()


def test_absolute_paths_point_at_the_cuts(long_run):
    run_dir, _, _, _ = long_run
    export_everything(run_dir, ExportParams(video_paths="absolute"))
    rows = pq.read_table(run_dir.exports_dir / "rl" / "train.parquet").to_pylist()
    assert all(os.path.isabs(r["video_context"]) and Path(r["video_context"]).is_file() for r in rows)
    cuts = [r for r in rows if "-w" in r["video_context"]]
    assert cuts and all(Path(r["video_context"]).parent == (run_dir.exports_dir / "videos").resolve() for r in cuts)
    assert validate_rl(run_dir.exports_dir / "rl" / "train.parquet").ok
    export_everything(run_dir, ExportParams())  # back to the default


# ---- which tokenizer counted the tokens ------------------------------------------------------------
def test_validate_sft_says_its_token_counts_are_not_qwens_with_the_tiny_processor(long_run):
    from typer.testing import CliRunner

    from pipelines.cli import app

    run_dir, _, _, _ = long_run
    path = run_dir.exports_dir / "sft" / "numerical_with_seeks.jsonl"
    result = CliRunner().invoke(app, ["validate", "sft", str(path), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "tokens counted by Qwen2_5_VLProcessor with tokenizer trained locally" in result.output
    assert "NOT Qwen's vocabulary" in result.output and "these are not Qwen2.5-VL token counts" in result.output
    assert "at most 3136 pixels per frame" in result.output  # the tiny 56x56 budget, not Qwen's


def test_a_tokenizer_with_qwens_vocabulary_is_named_as_such():
    from curation.formats.validate import QWEN_VOCAB_IDS, describe_processor
    from curation.model.tiny import build_processor, tokenizer_corpus, train_tokenizer

    tiny = describe_processor(build_processor(train_tokenizer(tokenizer_corpus())))
    assert not tiny.qwen_vocabulary and tiny.vocab_size < 2000 and "NOT Qwen's" in str(tiny)

    class QwenShapedTokenizer:  # Qwen's files are not on this machine: only the ids the rule reads
        name_or_path = "Qwen/Qwen2.5-VL-7B-Instruct"

        def __len__(self):
            return 151665

        def convert_tokens_to_ids(self, token):
            return QWEN_VOCAB_IDS[token]

    qwen = describe_processor(QwenShapedTokenizer())
    assert qwen.qwen_vocabulary and "Qwen2.5's vocabulary" in str(qwen) and "Qwen/Qwen2.5-VL-7B-Instruct" in str(qwen)
