"""Scene-cut detectors on videos written here with known transitions: TransNetV2 finds the dissolve
and the fade that the content detector misses; a flash and a whip pan inside one shot are no cut
for the content detector while a hard cut beside them still is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.video.segment import DetectorConfig, detect_cuts, min_scene_len_filter
from curation.video.spikes import is_camera_motion

FPS = 25
W, H = 320, 240
PANO_W = 1600  # scenes are wide textured panoramas seen through a 320-pixel camera


# ---- the test videos ---------------------------------------------------------------------------
def panorama(seed: int) -> np.ndarray:
    """A wide textured picture: smooth colour fields, mid-scale detail and solid shapes, so the
    detectors see what they see on footage (not flat colours)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.integers(0, 256, (H // 40 + 2, PANO_W // 40 + 2, 3), dtype=np.uint8), (PANO_W, H), interpolation=cv2.INTER_CUBIC)
    detail = cv2.resize(rng.integers(0, 256, (H // 6, PANO_W // 6, 3), dtype=np.uint8), (PANO_W, H), interpolation=cv2.INTER_LINEAR)
    img = cv2.addWeighted(coarse, 0.65, detail, 0.35, 0)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, PANO_W)), int(rng.integers(0, H)))
        if rng.random() < 0.5:
            cv2.circle(img, centre, int(rng.integers(6, 30)), colour, -1)
        else:
            size = rng.integers(8, 50, 2)
            cv2.rectangle(img, centre, (centre[0] + int(size[0]), centre[1] + int(size[1])), colour, -1)
    return img


class Scene:
    """A camera over a panorama (drifting right) with two shapes moving across it."""

    def __init__(self, seed: int, drift: float = 1.5):
        self.pano = panorama(seed)
        self.drift = drift
        rng = np.random.default_rng(seed + 100)
        self.shapes = [(rng.integers(0, 256, 3).tolist(), rng.uniform(-4, 4, 2), rng.uniform(40, 280), rng.uniform(40, 200)) for _ in range(2)]

    def view(self, t: int, x: float | None = None) -> np.ndarray:
        x = self.drift * t if x is None else x
        x0 = int(round(x)) % (PANO_W - W)
        frame = self.pano[:, x0 : x0 + W].copy()
        for colour, (vx, vy), px, py in self.shapes:
            centre = (int(px + vx * t) % W, int(py + vy * t) % H)
            cv2.circle(frame, centre, 18, colour, -1)
        return frame


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is required (make env installs it)")
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return path


# frames of the transitions video: A | dissolve A->B | B | fade B->black->C | C
DISSOLVE = (50, 75)  # frames [50, 75): 1 s crossfade
FADE = (125, 151)  # 12 frames to black, 2 black, 12 back
TRANSITIONS_FRAMES = 200


def transitions_frames() -> list[np.ndarray]:
    a, b, c = Scene(1), Scene(2), Scene(3)
    out = []
    for t in range(TRANSITIONS_FRAMES):
        if t < DISSOLVE[0]:
            frame = a.view(t)
        elif t < DISSOLVE[1]:
            alpha = (t - DISSOLVE[0] + 1) / (DISSOLVE[1] - DISSOLVE[0] + 1)
            frame = cv2.addWeighted(a.view(t), 1 - alpha, b.view(t), alpha, 0)
        elif t < FADE[0]:
            frame = b.view(t)
        elif t < FADE[0] + 12:
            frame = (b.view(t) * (1 - (t - FADE[0] + 1) / 12)).astype(np.uint8)
        elif t < FADE[0] + 14:
            frame = np.zeros((H, W, 3), np.uint8)
        elif t < FADE[1]:
            frame = (c.view(t) * ((t - FADE[0] - 13) / 13)).astype(np.uint8)
        else:
            frame = c.view(t)
        out.append(frame)
    return out


# frames of the spikes video: one shot with a flash and a whip pan, then a hard cut
FLASH = (30, 33)  # 3 nearly white frames
WHIP = (60, 66)  # the camera jumps 600 px right in 6 frames, with motion blur
HARD_CUT = 100
SPIKES_FRAMES = 150


def spikes_frames() -> list[np.ndarray]:
    a, b = Scene(4), Scene(5)
    jump = 600.0
    out = []
    for t in range(SPIKES_FRAMES):
        if t >= HARD_CUT:
            out.append(b.view(t))
            continue
        x = a.drift * t + jump * min(1.0, max(0.0, (t - WHIP[0] + 1) / (WHIP[1] - WHIP[0])))
        if WHIP[0] <= t < WHIP[1]:  # the shutter is open while the camera sweeps: blur along x
            step = jump / (WHIP[1] - WHIP[0])
            frame = np.mean([a.view(t, x - step * s / 8).astype(np.float32) for s in range(8)], axis=0).astype(np.uint8)
        else:
            frame = a.view(t, x)
        if FLASH[0] <= t < FLASH[1]:
            frame = cv2.addWeighted(frame, 0.15, np.full_like(frame, 255), 0.85, 0)
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detectors")
    return {
        "transitions": write_video(folder / "transitions.mp4", transitions_frames()),
        "spikes": write_video(folder / "spikes.mp4", spikes_frames()),
    }


def within(cuts, span, slack=3):
    return [c for c in cuts if span[0] - slack <= c <= span[1] + slack]


# ---- TransNetV2 -----------------------------------------------------------------------------------
def test_transnetv2_finds_the_dissolve_and_the_fade_that_content_misses(videos):
    det = detect_cuts(videos["transitions"], DetectorConfig(kind="transnetv2"))
    assert det.frame_count == TRANSITIONS_FRAMES
    assert within(det.cuts, DISSOLVE), det.cuts
    assert within(det.cuts, FADE), det.cuts
    assert all(within([c], DISSOLVE) or within([c], FADE) for c in det.cuts), det.cuts
    assert det.scores.min() >= 0.0 and det.scores.max() <= 1.0
    assert all(det.scores[c] > 0.4 for c in det.cuts)
    content = detect_cuts(videos["transitions"], DetectorConfig(kind="content"))
    assert not within(content.cuts, DISSOLVE), content.cuts  # the reason the option exists


def test_transnetv2_cuts_at_the_first_frame_of_the_new_shot_and_not_at_flash_or_pan(videos):
    det = detect_cuts(videos["spikes"], DetectorConfig(kind="transnetv2"))
    assert det.cuts == [HARD_CUT], (det.cuts, det.suppressed)
    # the network itself fires on this flash and this whip pan: the spike check drops them
    raw = detect_cuts(videos["spikes"], DetectorConfig(kind="transnetv2", flash_max_s=0.0, pan_filter=False))
    assert within(raw.cuts, FLASH, slack=1) and within(raw.cuts, WHIP, slack=1), raw.cuts


def test_batched_windows_equal_the_packages_own_prediction(videos):
    """Our streaming, batched windows give the package's `predict_frames` numbers on the same frames."""
    import torch

    from curation.video import transnet

    n, chunks = transnet.decode_small(videos["transitions"])
    frames = np.concatenate(list(chunks))
    assert frames.shape == (n, 27, 48, 3)
    ours, _ = transnet.predict_windows(transnet.iter_windows(iter(np.array_split(frames, 7)), n), n)
    theirs, _ = transnet.load_model().predict_frames(torch.from_numpy(frames), quiet=True)
    assert np.allclose(ours, theirs.numpy(), atol=1e-5)


def test_loading_the_model_leaves_the_process_state_alone():
    import random

    import torch

    from curation.video import transnet

    transnet._MODELS.clear()
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    expected = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    deterministic = torch.are_deterministic_algorithms_enabled()
    model = transnet.load_model("cpu")
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expected
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert transnet.load_model("cpu") is model  # once per process


# ---- flashes, whip pans, min_scene_len -------------------------------------------------------------
def test_flash_and_whip_pan_are_not_cuts_but_the_hard_cut_is(videos):
    det = detect_cuts(videos["spikes"], DetectorConfig())  # the content detector's defaults
    assert det.cuts == [HARD_CUT], (det.cuts, det.suppressed)
    reasons = det.suppressed
    assert "flash" in {reasons[c] for c in within(reasons, FLASH, slack=1)}, reasons
    assert {reasons[c] for c in within(reasons, WHIP, slack=1)} == {"camera_motion"}, reasons
    # without the checks, the same detector cuts at the flash and at the pan: the test has teeth
    raw = detect_cuts(videos["spikes"], DetectorConfig(flash_max_s=0.0, pan_filter=False))
    assert within(raw.cuts, FLASH, slack=1) and within(raw.cuts, WHIP, slack=1) and HARD_CUT in raw.cuts, raw.cuts


def test_adaptive_detector_ignores_the_flash_too(videos):
    det = detect_cuts(videos["spikes"], DetectorConfig(kind="adaptive"))
    assert not within(det.cuts, FLASH, slack=1), (det.cuts, det.suppressed)
    assert abs(min(det.cuts, key=lambda c: abs(c - HARD_CUT)) - HARD_CUT) <= 1, det.cuts


def test_a_pan_is_camera_motion_and_a_cut_is_not():
    a, b = Scene(6), Scene(7)
    hsv = lambda f: cv2.cvtColor(cv2.resize(f, (128, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)  # noqa: E731
    assert is_camera_motion(hsv(a.view(0, 0.0)), hsv(a.view(0, 90.0)))  # 90 px of 320 to the right
    assert is_camera_motion(hsv(a.view(0, 90.0)), hsv(a.view(0, 20.0)))  # and back left
    assert not is_camera_motion(hsv(a.view(0, 0.0)), hsv(b.view(0, 0.0)))  # another shot
    assert not is_camera_motion(hsv(a.view(0, 0.0)), hsv(b.view(0, 90.0)))


def test_min_scene_len_is_seconds_and_uses_pyscenedetects_flash_filter():
    assert DetectorConfig().min_scene_frames(25.0) == 15  # the scenedetect CLI's 0.6 s
    assert DetectorConfig().min_scene_frames(30000 / 1001) == 18
    assert DetectorConfig(min_scene_len_s=0.0).min_scene_frames(25.0) == 0
    # merge (content's): a run of close cuts becomes its last one; suppress (adaptive's): close
    # cuts after a kept one are dropped; both: no cut within the minimum of the video's start
    proposed = [5, 20, 30, 40, 50]
    assert min_scene_len_filter(proposed, 100, 25.0, 15, "merge") == [20, 50]
    assert min_scene_len_filter(proposed, 100, 25.0, 15, "suppress") == [20, 40]
    assert min_scene_len_filter(proposed, 100, 25.0, 0, "merge") == proposed
    assert DetectorConfig(kind="adaptive").resolved_filter_mode() == "suppress"
    assert DetectorConfig(kind="transnetv2").resolved_filter_mode() == "merge"


# ---- the segment stage ------------------------------------------------------------------------------
def test_segment_stage_accepts_transnetv2(videos):
    from pipelines.stages.segment import SegmentParams, segment_video

    params = SegmentParams(detector="transnetv2", min_clip_s=1.0, max_clip_s=3.0)
    assert params.detector_config().kind == "transnetv2" and params.detector_config().transnet_threshold == 0.4
    video = {"video_id": "tr", "path": str(videos["transitions"]), "fps": float(FPS), "width": W, "height": H}
    rows = segment_video(video, params)
    assert rows and all(r["status"] == "ok" for r in rows)
    assert all(0.0 <= r["cut_score"] <= 1.0 for r in rows)
    assert rows[0]["start_frame"] == 0 and rows[-1]["end_frame"] == TRANSITIONS_FRAMES
    starts = [r["start_frame"] for r in rows if r["boundary"] == "scene_cut"]
    assert within(starts, DISSOLVE) and within(starts, FADE), starts


def test_recipe_keys_for_the_detectors():
    from pipelines.recipe import RecipeError, parse_recipe

    def recipe(**segment):
        return {"name": "t", "inputs": [{"glob": "x/*.mp4"}], "stages": [{"stage": "ingest"}, {"stage": "segment", **segment}]}

    stage = parse_recipe(recipe(detector="transnetv2", transnet_threshold=0.5, min_scene_len_s=1.0)).stages[1]
    assert stage.detector_config() == DetectorConfig(kind="transnetv2", transnet_threshold=0.5, min_scene_len_s=1.0)
    with pytest.raises(RecipeError, match="min_scene_len_s, in seconds"):
        parse_recipe(recipe(min_scene_len=15))
    with pytest.raises(RecipeError, match="transnet_threshold"):
        parse_recipe(recipe(transnet_threshold=1.5))


@pytest.mark.parametrize("kind", ["content", "adaptive"])
def test_a_video_in_time_ranges_gives_the_cuts_of_one_pass(videos, kind):
    """range_workers: the ranges are decoded in other processes and joined; every score, cut and
    suppressed spike is that of one pass over the video (150 frames: 2 ranges meet at frame 75, 3
    ranges at 50 and at the hard cut, 100)."""
    config = DetectorConfig(kind=kind)
    one = detect_cuts(videos["spikes"], config)
    for workers in (2, 3):
        ranged = detect_cuts(videos["spikes"], config, range_workers=workers, range_min_s=0)
        assert ranged.cuts == one.cuts and ranged.suppressed == one.suppressed
        assert np.array_equal(ranged.scores, one.scores)
    assert detect_cuts(videos["spikes"], config, range_workers=2, range_min_s=3600).cuts == one.cuts  # short: one pass
