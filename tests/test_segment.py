"""Segmentation: cuts against synthetic ground truth, clip bounds, windows, VST frame slices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.synthetic import write_synthetic_set
from curation.video.segment import (
    Detection,
    decord_frame_times,
    group_windows,
    normalise_clips,
    video_frame_times,
    vst_frame_count,
    vst_frame_indices,
    vst_window_frames,
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
    # without the frame rate: the floor(2 * duration) estimate
    assert vst_frame_count(0.0, 10.0) == 20
    assert vst_frame_count(0.0, 10.3) == 20  # floor(20.6) = 20, already even
    assert vst_frame_count(0.0, 10.6) == 22  # 21 frames padded to even
    assert vst_frame_count(0.0, 500.0) == 384  # FPS_MAX_FRAMES
    # clips of a 10 s window at 25 fps. decord's timestamp of frame i is its END, (i + 1) / 25, so
    # the loader's target times are 0.04, 0.54, 1.04 ... and each takes the first frame whose
    # timestamp is >= it (float32 timestamps against float64 targets: 1.04 picks frame 26).
    first = vst_frame_indices(0.0, 10.0, 0.0, 4.0, fps=25.0, frame_count=250)
    second = vst_frame_indices(0.0, 10.0, 4.0, 10.0, fps=25.0, frame_count=250)
    assert first == [0, 13, 26, 38, 51, 63, 76, 88]
    assert len(second) == 12 and second[0] == 101 and second[-1] == 238
    # a 0.3 s clip gets no frame: the silent failure the rule checks must catch
    assert vst_frame_indices(0.0, 10.0, 4.0, 4.3, fps=25.0, frame_count=250) == []


def test_window_frames_are_picked_by_timestamp_with_both_edges_included():
    times = decord_frame_times(25.0, 1000)  # a 40 s video
    # a window from 4 s to 14 s: the frame that ENDS at 4.0 s (index 99) and the one ending at
    # 14.0 s (index 349) are both in: 21 target times (4.0, 4.5 ... 14.0), padded to 22
    window = vst_window_frames(4.0, 14.0, times)
    assert len(window) == 22 == vst_frame_count(4.0, 14.0, fps=25.0, frame_count=1000)
    assert window[0] == 99 and window[-2] == 349 and window[-1] == 349  # padding repeats the last
    assert window[1] == 112  # 4.5 s -> first timestamp >= 4.5 is 4.52 (frame 112)
    # from 0: the first timestamp is 0.04 (frame 0's end), so 0.04 ... 9.54: 20 frames, no padding
    assert len(vst_window_frames(0.0, 10.0, times)) == 20
    # the loader's own float32 quirk, kept: its "+ 1e-6" on a float32 timestamp is lost from 32 s
    # on (float32(40.0) + 1e-6 == 40.0), so a window ending on the 0.5 s grid there loses its end
    # edge: 38.0 ... 39.5 (4 frames); below 32 s the end edge is in (8.0 ... 10.0: 5, padded to 6)
    assert vst_window_frames(38.0, 40.0, times) == [949, 962, 974, 987]
    assert vst_window_frames(8.0, 10.0, times)[-2:] == [249, 249]
    # FPS_MAX_FRAMES: the first 384 target times of a longer window, the tail dropped
    long = vst_window_frames(0.0, 39.9, decord_frame_times(25.0, 1000), max_frames=40)
    assert len(long) == 40 and long[-1] == vst_window_frames(0.0, 39.9, times)[39]
    # the clip slices of a window partition its frames in order
    spans = [(4.0, 6.3), (6.3, 9.0), (9.0, 14.0)]
    parts = [vst_frame_indices(4.0, 14.0, s, e, 25.0, 1000) for s, e in spans]
    assert sum(parts, []) == window
    assert [len(p) for p in parts] == [int(22 * 2.3 / 10), int(22 * 5.0 / 10) - int(22 * 2.3 / 10), 22 - int(22 * 5.0 / 10)]


@pytest.mark.parametrize("rate", ["25", "30", "30000/1001"])
def test_frame_timestamps_equal_decords_own(tmp_path, rate):
    """The constant-rate timestamps we compute are the ones decord gives VST's loader, bit for
    bit, and so are the frames picked for windows that do and do not start at 0."""
    import shutil
    import subprocess

    from curation.video.decode import open_reader

    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is required (make env installs it)")
    path = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate={rate}", "-t", "9", "-pix_fmt", "yuv420p", str(path)], check=True)
    reader = open_reader(path)
    real = video_frame_times(reader)
    ours = decord_frame_times(float(reader.get_avg_fps()), len(reader))
    assert real.dtype == np.float32 and np.array_equal(real, ours)
    for vs, ve in [(0.0, 9.0), (2.0, 7.5), (1.3, 8.966667)]:
        assert vst_window_frames(vs, ve, real) == vst_window_frames(vs, ve, ours)


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
