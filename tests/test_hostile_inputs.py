"""Real-world video a phone or a screen recorder makes: variable frame rate, rotation, truncation.

Every file is made here (PyAV / ffmpeg), with a known truth: where the cut really is, which way
is up. tests/test_fuzz_inputs.py holds the paths that are not files (loops, FIFOs, sockets).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from curation.model.sft_render import clip_frames
from curation.synthetic import write_rotated, write_vfr_video
from curation.video.clock import FrameClock
from curation.video.decode import open_reader, read_frames
from pipelines.recipe import parse_recipe
from pipelines.rundir import RunDir
from pipelines.run import run_recipe

ROOT = Path(__file__).resolve().parents[1]
CUT_S = 10.0  # red at 5 fps until here, then blue at 30 fps for 5 s
RED, BLUE = (230, 20, 20), (20, 20, 230)


def ffmpeg(*args: str) -> None:
    subprocess.run([shutil.which("ffmpeg"), "-nostdin", "-y", "-loglevel", "error", *args], check=True)


def colour(frame: np.ndarray) -> str:
    r, _, b = frame[5:30, 5:30].reshape(-1, 3).mean(axis=0)  # a corner the moving bar never covers
    return "red" if r > b else "blue"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    # 10 s of red at 5 fps, then 5 s of blue at 30 fps: 200 frames, average 13.3 fps, the cut at 10.0 s
    assert write_vfr_video(base / "phone_vfr.mp4", ((5, CUT_S, RED), (30, 5.0, BLUE))) == [0.0, CUT_S]
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(base / "upright.mp4"))
    write_rotated(base / "upright.mp4", base / "sideways.mp4", 90)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(base / "whole.mp4"))  # fmt: skip
    data = (base / "whole.mp4").read_bytes()
    (base / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])  # the header still promises 6 s
    annotations = [{"start_s": 0.0, "end_s": CUT_S, "text": "A red screen."}, {"start_s": CUT_S, "end_s": 15.0, "text": "A blue screen."}]
    rows = [{"path": "phone_vfr.mp4", "annotations": annotations}, {"path": "sideways.mp4"}, {"path": "truncated.mp4"}]
    (base / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base


def run(corpus: Path, name: str, ingest: dict | None = None) -> RunDir:
    recipe = {
        "name": name, "inputs": [{"manifest": str(corpus / "manifest.jsonl")}], "allowed_roots": [str(corpus)],
        "runner": {"workers": 1, "part_size": 8},
        "stages": [{"stage": "ingest", **(ingest or {})}, {"stage": "segment", "min_clip_s": 1.0, "max_clip_s": 4.0},
                   {"stage": "perceive", "source": "annotation"}],
    }  # fmt: skip
    run_recipe(parse_recipe(recipe), name, ROOT, corpus / "runs", progress=False, echo=lambda *_: None)
    return RunDir(corpus / "runs" / name)


@pytest.fixture(scope="module")
def hostile_run(corpus) -> RunDir:
    return run(corpus, "hostile")


def _video(run_dir: RunDir, name: str) -> dict:
    return next(v for v in run_dir.read_rows("videos") if Path(v["source_path"] or v["path"]).name == name)


# ---- variable frame rate ----------------------------------------------------------------------------
def test_vfr_video_is_timed_by_its_frames_timestamps(hostile_run):
    video = _video(hostile_run, "phone_vfr.mp4")
    assert video["status"] == "ok" and video["variable_frame_rate"] is True
    assert video["frame_count"] == 200 and video["duration_s"] == pytest.approx(15.0, abs=0.05)
    clips = sorted((c for c in hostile_run.read_rows("clips") if c["video_id"] == video["video_id"]), key=lambda c: c["index"])
    starts = [c["start_s"] for c in clips]
    # frame / average fps would put the cut at 50 / 13.3 = 3.75 s; the real cut is at 10.0 s
    assert CUT_S in starts, starts
    assert clips[0]["start_s"] == 0 and all(a["end_s"] == b["start_s"] for a, b in zip(clips, clips[1:]))
    assert clips[-1]["end_s"] == pytest.approx(15.0, abs=0.05)
    assert all(1.0 - 1e-6 <= c["end_s"] - c["start_s"] <= 4.0 + 1e-6 for c in clips), [(c["start_s"], c["end_s"]) for c in clips]
    cut = next(c for c in clips if c["start_s"] == CUT_S)
    assert cut["start_frame"] == 50 and cut["boundary"] == "scene_cut"


def test_the_frames_vst_takes_for_each_thought_show_that_clip(hostile_run):
    """Each clip's vst_frame_indices, and the frames the SFT renderer takes for the same spans
    (VST's loader, by timestamps), show red before the cut and blue after it."""
    video = _video(hostile_run, "phone_vfr.mp4")
    clips = sorted((c for c in hostile_run.read_rows("clips") if c["video_id"] == video["video_id"]), key=lambda c: c["index"])
    rendered = clip_frames(Path(video["path"]), clips[0]["window_start_s"], clips[0]["window_end_s"], [(c["start_s"], c["end_s"]) for c in clips])
    for clip, frames in zip(clips, rendered):
        expected = "red" if clip["end_s"] <= CUT_S else "blue"
        assert clip["vst_frame_indices"], clip
        picked = read_frames(video["path"], clip["vst_frame_indices"])
        assert {colour(f) for f in picked} == {expected}, (clip["start_s"], clip["end_s"], clip["vst_frame_indices"])
        assert {colour(f) for f in frames} == {expected}


def test_annotations_attach_to_clips_by_real_time(hostile_run):
    video = _video(hostile_run, "phone_vfr.mp4")
    clips = {c["clip_id"]: c for c in hostile_run.read_rows("clips") if c["video_id"] == video["video_id"]}
    captions = [c for c in hostile_run.read_rows("captions") if c["clip_id"] in clips]
    assert len(captions) == len(clips)
    for caption in captions:
        clip = clips[caption["clip_id"]]
        assert caption["status"] == "ok", caption
        said = "red" if clip["end_s"] <= CUT_S else "blue"
        other = "blue" if said == "red" else "red"
        assert said in caption["caption"] and other not in caption["caption"], (clip["start_s"], clip["end_s"], caption["caption"])


def test_the_clock_reads_vfr_exactly_and_keeps_constant_rates_exact(corpus):
    vfr = FrameClock.of_path(corpus / "phone_vfr.mp4")
    assert vfr.variable and vfr.time_of(50) == pytest.approx(CUT_S) and vfr.boundary_at(CUT_S) == 50
    assert np.array_equal(vfr.ends, open_reader(corpus / "phone_vfr.mp4").get_frame_timestamp(list(range(200)))[:, 1])
    cfr = FrameClock.of_path(corpus / "upright.mp4")
    assert not cfr.variable and cfr.duration_s == 4.0 and cfr.time_of(25) == 2.5


# ---- rotation ------------------------------------------------------------------------------------------
def test_a_rotated_video_is_used_through_an_upright_copy(hostile_run, corpus):
    video = _video(hostile_run, "sideways.mp4")
    assert video["status"] == "ok" and video["rotation"] == 90
    assert (video["width"], video["height"]) == (120, 160)
    copy = Path(video["path"])
    assert copy.parent == hostile_run.root / "upright" and video["source_path"] == str(corpus / "sideways.mp4")
    with av.open(str(copy)) as container:  # a reader that ignores display matrices sees it upright
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (120, 160, 0)
        plain = frame.to_ndarray(format="rgb24").astype(int)
    upright = np.rot90(read_frames(corpus / "upright.mp4", [0])[0], k=1).astype(int)  # 90 degrees counter-clockwise
    assert np.abs(plain - upright).mean() < 8
    clips = [c for c in hostile_run.read_rows("clips") if c["video_id"] == video["video_id"]]
    assert clips and all(c["status"] == "ok" for c in clips)


def test_rotated_reject_fails_the_video_with_a_reason(corpus):
    video = _video(run(corpus, "hostile-reject", {"rotated": "reject"}), "sideways.mp4")
    assert (video["status"], video["reason"]) == ("failed", "rotated")
    assert "sideways.mp4" in video["error"] and "90 degrees" in video["error"]


# ---- damage ----------------------------------------------------------------------------------------------
def test_a_truncated_file_is_reported_without_decoder_internals(hostile_run):
    video = _video(hostile_run, "truncated.mp4")
    assert (video["status"], video["reason"]) == ("failed", "corrupt")
    assert "truncated.mp4" in video["error"] and "truncated" in video["error"].split("truncated.mp4", 1)[1]
    assert ".cc:" not in video["error"] and "av_read_frame" not in video["error"]
