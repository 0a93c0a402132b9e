"""Segmentation: cuts against synthetic ground truth, clip bounds, windows, VST frame slices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.synthetic import write_synthetic_set
from curation.video.segment import (
    Detection,
    group_windows,
    normalise_clips,
    vst_frame_count,
    vst_frame_indices,
)


# ---- pure functions --------------------------------------------------------------------------
def detection(n, cuts, fps=10.0, scores=None):
    s = np.zeros(n) if scores is None else np.asarray(scores, float)
    for c in cuts:
        s[c] = 50.0
    return Detection(fps=fps, frame_count=n, cuts=cuts, scores=s)


def spans(clips):
    return [(c.start_frame, c.end_frame, c.boundary) for c in clips]


def test_short_scene_is_merged_across_its_weaker_cut():
    det = detection(100, [40, 50])  # a 1 s scene between two cuts at 10 fps
    det.scores[40], det.scores[50] = 30.0, 60.0
    clips = normalise_clips(det, min_clip_s=2.0, max_clip_s=10.0)
    assert spans(clips) == [(0, 50, "video_start"), (50, 100, "scene_cut")]


def test_long_scene_is_split_at_the_quietest_frame_within_bounds():
    scores = np.full(250, 5.0)
    scores[120] = 0.1  # the quiet moment
    clips = normalise_clips(detection(250, [], scores=scores), min_clip_s=2.0, max_clip_s=15.0)
    assert spans(clips) == [(0, 120, "video_start"), (120, 250, "split")]


def test_even_split_and_bounds_hold():
    clips = normalise_clips(detection(1000, []), min_clip_s=2.0, max_clip_s=10.0, split="even")
    lengths = [c.end_frame - c.start_frame for c in clips]
    assert lengths == [100] * 10
    clips = normalise_clips(detection(1234, [300, 310, 800]), 2.0, 10.0)
    assert clips[0].start_frame == 0 and clips[-1].end_frame == 1234
    assert all(a.end_frame == b.start_frame for a, b in zip(clips, clips[1:]))
    assert all(20 <= c.end_frame - c.start_frame <= 100 for c in clips)


def test_a_video_with_no_cut_is_one_scene_split_by_max_clip():
    clips = normalise_clips(detection(95, []), 2.0, 10.0)
    assert spans(clips) == [(0, 95, "video_start")]


def test_windows_cut_only_at_clip_boundaries_and_stay_under_the_cap():
    clips = normalise_clips(detection(5000, []), 2.0, 10.0, split="even")  # 500 s at 10 fps
    windows = group_windows(clips, fps=10.0, window_max_s=192.0)
    assert [len(w) for w in windows] == [19, 19, 12]
    for w in windows:
        assert w[-1].end_frame - w[0].start_frame <= 1920
    assert windows[0][-1].end_frame == windows[1][0].start_frame


def test_vst_frame_slices_follow_the_loader_arithmetic():
    assert vst_frame_count(0.0, 10.0) == 20
    assert vst_frame_count(0.0, 10.3) == 20  # floor(20.6) = 20, already even
    assert vst_frame_count(0.0, 10.6) == 22  # 21 frames padded to even
    assert vst_frame_count(0.0, 500.0) == 384  # FPS_MAX_FRAMES
    # clips of a 10 s window at 25 fps: 2 fps frames at 0, .5, 1.0 ... s
    first = vst_frame_indices(0.0, 10.0, 0.0, 4.0, fps=25.0, frame_count=250)
    second = vst_frame_indices(0.0, 10.0, 4.0, 10.0, fps=25.0, frame_count=250)
    assert first == [0, 12, 25, 38, 50, 62, 75, 88]
    assert len(second) == 12 and second[0] == 100 and second[-1] == 238
    # a 0.3 s clip gets no frame: the silent failure the rule checks must catch
    assert vst_frame_indices(0.0, 10.0, 4.0, 4.3, fps=25.0, frame_count=250) == []


# ---- real videos ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    short = write_synthetic_set(folder, count=3, seed=11)
    long = write_synthetic_set(folder, count=1, seed=12, n_scenes=22, scene_s=(8.0, 12.0), width=96, height=72)
    return folder, short + long


def segment_recipe(folder, **segment):
    return {
        "name": "segment-test",
        "inputs": [{"glob": str(folder / "*.mp4")}],
        "allowed_roots": [str(folder)],
        "runner": {"workers": 2, "part_size": 1},
        "stages": [{"stage": "ingest"}, {"stage": "segment", **segment}],
    }


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_cuts_match_ground_truth_within_one_frame(synthetic_set, run_recipe_dict, detector):
    folder, videos = synthetic_set
    run_dir = run_recipe_dict(segment_recipe(folder, detector=detector))
    videos_rows = {r["video_id"]: r for r in run_dir.read_rows("videos")}
    clips = run_dir.read_rows("clips")
    assert clips and all(c["status"] == "ok" for c in clips)
    for video_id, video in videos_rows.items():
        truth = json.loads((folder / (video["path"].rsplit("/", 1)[1][:-4] + ".json")).read_text())
        mine = sorted((c for c in clips if c["video_id"] == video_id), key=lambda c: c["index"])
        cut_starts = [c["start_frame"] for c in mine if c["boundary"] == "scene_cut"]
        assert len(cut_starts) == len(truth["cut_frames"]), (video["path"], cut_starts, truth["cut_frames"])
        for found, expected in zip(cut_starts, truth["cut_frames"]):
            assert abs(found - expected) <= 1
        if detector == "content":  # the content score at a kept cut is above the threshold
            assert all(c["cut_score"] >= 27.0 for c in mine if c["boundary"] == "scene_cut")


def test_clip_bounds_and_windows_on_a_long_video(synthetic_set, run_recipe_dict):
    folder, videos = synthetic_set
    run_dir = run_recipe_dict(segment_recipe(folder, min_clip_s=2.0, max_clip_s=10.0))
    videos_rows = {r["video_id"]: r for r in run_dir.read_rows("videos")}
    clips = run_dir.read_rows("clips")
    long_id = max(videos_rows, key=lambda v: videos_rows[v]["duration_s"])
    assert videos_rows[long_id]["duration_s"] > 192.0, "the long video needs more than one window"
    for video_id, video in videos_rows.items():
        mine = sorted((c for c in clips if c["video_id"] == video_id), key=lambda c: c["index"])
        # clips: contiguous, cover the whole video, within [min, max]
        assert mine[0]["start_frame"] == 0 and mine[-1]["end_frame"] == video["frame_count"]
        assert all(a["end_frame"] == b["start_frame"] for a, b in zip(mine, mine[1:]))
        for c in mine:
            assert 2.0 - 1e-6 <= c["end_s"] - c["start_s"] <= 10.0 + 1e-6, c
            assert c["vst_frame_indices"], "every clip gets at least one 2 fps frame"
        # windows: at most 192 s, contiguous, cut at clip boundaries, covering the video
        windows: dict[str, list[dict]] = {}
        for c in mine:
            windows.setdefault(c["window_id"], []).append(c)
        ordered = sorted(windows.values(), key=lambda w: w[0]["start_s"])
        for w in ordered:
            assert w[-1]["end_s"] - w[0]["start_s"] <= 192.0 + 1e-6
            assert all(c["window_start_s"] == w[0]["start_s"] and c["window_end_s"] == w[-1]["end_s"] for c in w)
            assert [c["index_in_window"] for c in w] == list(range(len(w)))
        assert all(a[-1]["end_s"] == b[0]["start_s"] for a, b in zip(ordered, ordered[1:]))
        if video_id == long_id:
            assert len(ordered) >= 2
