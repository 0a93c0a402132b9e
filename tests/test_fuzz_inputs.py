"""Hostile and odd inputs: manifests with bad rows, paths that try to leave the allowed roots
(`..`, absolute paths, symlinks to files and folders), recipes with wrong values, and videos with
odd properties made with ffmpeg. Every one ends as a row with a clear reason code (or, for a
recipe, a clear error message); nothing crashes the run and no good row is lost."""

from __future__ import annotations

import json
import socket
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.recipe import RecipeError, load_recipe, parse_recipe
from pipelines.run import run_recipe
from pipelines.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *args], check=True, timeout=120)


def lavfi_video(out: Path, source: str, seconds: float = 3, extra: tuple[str, ...] = ()) -> Path:
    ffmpeg("-f", "lavfi", "-i", source, "-t", str(seconds), *extra, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """allowed/ holds the videos a recipe may read; outside/ holds what it must never read."""
    base = tmp_path_factory.mktemp("fuzz")
    allowed, outside = base / "allowed", base / "outside"
    allowed.mkdir()
    outside.mkdir()
    lavfi_video(allowed / "normal.mp4", "testsrc=size=160x120:rate=10")
    lavfi_video(allowed / "vidéo 視頻 with spaces.mp4", "testsrc2=size=160x120:rate=10")
    lavfi_video(base / "upright.mp4", "smptebars=size=160x120:rate=10")
    ffmpeg("-i", str(base / "upright.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(allowed / "rotated.mp4"))
    # variable frame rate: 20 frames at 10 fps, then frames 1/3 s apart
    lavfi_video(allowed / "vfr.mp4", "mandelbrot=size=160x120:rate=10", 4,
                ("-vf", "setpts='if(lt(N,20),N/10,2+(N-20)/3)/TB'", "-fps_mode", "vfr"))
    lavfi_video(allowed / "one_frame.mp4", "testsrc=size=160x120:rate=10", 0.1, ("-frames:v", "1"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", "-f", "mp4", str(allowed / "audio_only.mp4"))
    # an 8K stream of two frames: a big header on a tiny body
    ffmpeg("-f", "lavfi", "-i", "color=c=navy:size=7680x4320:rate=1", "-frames:v", "2", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(allowed / "big8k.mp4"))
    (allowed / "big8k_truncated.mp4").write_bytes((allowed / "big8k.mp4").read_bytes()[:4096])
    (allowed / "notes.mp4").write_text("this is not a video\n")
    (allowed / "empty.mp4").write_bytes(b"")
    (allowed / "a folder.mp4").mkdir()
    os.symlink(allowed / "loop_b.mp4", allowed / "loop_a.mp4")
    os.symlink(allowed / "loop_a.mp4", allowed / "loop_b.mp4")
    os.mkfifo(allowed / "fifo.mp4")
    os.mkfifo(allowed / "fifo.json")  # read without a check, it would block the run forever
    bound = socket.socket(socket.AF_UNIX)
    bound.bind(str(allowed / "socket.mp4"))
    bound.close()  # the socket file stays
    os.symlink(allowed / "gone.mp4", allowed / "dangling.mp4")
    lavfi_video(outside / "secret.mp4", "rgbtestsrc=size=160x120:rate=10")
    (outside / "secret.json").write_text(json.dumps({"events": [{"start_s": 0, "end_s": 1, "text": "secret"}]}))
    os.symlink(outside / "secret.mp4", allowed / "link_to_outside.mp4")
    os.symlink(outside, allowed / "linkdir")
    (allowed / "truth.json").write_text(json.dumps({"events": [{"start_s": 0, "end_s": 1, "text": "a square"}]}))
    return base


# (manifest line as JSON or raw text, expected status/reason)
ROWS: list[tuple[object, str]] = [
    ({"path": "normal.mp4", "id": "n", "metadata": {"views": 10**30}, "annotations_file": "truth.json"}, "ok"),
    ({"path": "vidéo 視頻 with spaces.mp4"}, "ok"),
    ({"path": "rotated.mp4"}, "ok"),
    ({"path": "vfr.mp4"}, "ok"),
    ({"path": "big8k.mp4"}, "ok"),
    ({"path": "one_frame.mp4"}, "too_short"),
    ({"path": "audio_only.mp4"}, "no_video_stream"),
    ({"path": "big8k_truncated.mp4"}, "corrupt"),
    ({"path": "notes.mp4"}, "not_a_video"),
    ({"path": "empty.mp4"}, "empty_file"),
    ({"path": "a folder.mp4"}, "not_a_file"),
    ({"path": "loop_a.mp4"}, "symlink_loop"),
    ({"path": "fifo.mp4"}, "not_a_file"),
    ({"path": "socket.mp4"}, "not_a_file"),
    ({"path": "dangling.mp4"}, "missing"),
    ({"path": "normal.mp4", "annotations_file": "fifo.json"}, "bad_manifest_row"),
    ({"path": "normal.mp4", "annotations_file": "loop_a.mp4"}, "bad_manifest_row"),
    ({"path": "no_such_file.mp4"}, "missing"),
    ({"path": "x" * 5000 + ".mp4"}, "missing"),
    ({"path": "normal.mp4"}, "duplicate"),
    # paths that try to leave allowed/
    ({"path": "../outside/secret.mp4"}, "outside_allowed_roots"),
    ({"path": "/etc/passwd"}, "outside_allowed_roots"),
    ({"path": "link_to_outside.mp4"}, "outside_allowed_roots"),
    ({"path": "linkdir/secret.mp4"}, "outside_allowed_roots"),
    ({"path": "normal.mp4", "annotations_file": "../outside/secret.json"}, "outside_allowed_roots"),
    ({"path": "normal.mp4", "annotations_file": "linkdir/secret.json"}, "outside_allowed_roots"),
    # rows that are not what a manifest row must be
    ({"path": 123}, "bad_manifest_row"),
    ({"id": "no-path"}, "bad_manifest_row"),
    ({"path": ""}, "bad_manifest_row"),
    ({"path": "normal.mp4", "metadata": "not an object"}, "bad_manifest_row"),
    ({"path": "normal.mp4", "id": 10**30}, "bad_manifest_row"),
    ({"path": "normal.mp4", "colour": "red"}, "bad_manifest_row"),
    ({"path": "a\u0000b.mp4"}, "bad_manifest_row"),
    ('{"path": "normal.mp4", "annotations": [{"start_s": 1e400, "end_s": 1e400, "text": "t"}]}', "bad_manifest_row"),
    ({"path": "normal.mp4", "annotations": [{"start_s": 5, "end_s": 1, "text": "backwards"}]}, "bad_manifest_row"),
    ({"path": "normal.mp4", "annotations": [{"start_s": -1, "end_s": 1, "text": "t"}]}, "bad_manifest_row"),
    ({"path": "normal.mp4", "annotations": "not a list"}, "bad_manifest_row"),
    ({"path": "normal.mp4", "annotations_file": "missing.json"}, "bad_manifest_row"),
    ("this line is not JSON", "bad_manifest_row"),
    ("[1, 2, 3]", "bad_manifest_row"),
    (b'{"path": "caf\xe9.mp4"}', "bad_manifest_row"),  # Latin-1, not UTF-8
]


def write_manifest(folder: Path) -> Path:
    lines = []
    for row, _ in ROWS:
        lines.append(row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode())
    path = folder / "manifest.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def fuzz_run(corpus) -> RunDir:
    manifest = write_manifest(corpus / "allowed")
    data = {
        "name": "fuzz",
        "inputs": [{"manifest": str(manifest)}, {"glob": str(corpus / "allowed" / ".." / "outside" / "*.mp4")}],
        "allowed_roots": [str(corpus / "allowed")],
        "runner": {"workers": 2, "part_size": 4},
        "stages": [{"stage": "ingest", "min_duration_s": 1.0}, {"stage": "segment", "min_clip_s": 0.5, "max_clip_s": 2.0}],
    }
    run_recipe(parse_recipe(data), "fuzz", ROOT, corpus / "runs", progress=False, echo=lambda *_: None)
    return RunDir(corpus / "runs" / "fuzz")


def test_every_manifest_row_gets_the_expected_outcome(fuzz_run):
    videos = sorted(fuzz_run.read_rows("videos"), key=lambda r: r["input_index"])
    assert len(videos) == len(ROWS) + 1, "one row per manifest line, plus the glob match outside the roots"
    for (row, expected), got in zip(ROWS, videos):
        outcome = got["status"] if got["status"] == "ok" else got["reason"]
        assert outcome == expected, f"manifest row {row!r}: expected {expected}, got {outcome} ({got['error']})"
        if got["status"] != "ok":
            err = got["error"] or ""
            # the message names the item: its manifest line, or its file
            assert "manifest.jsonl line" in err or Path(got["path"]).name[:50] in err, (row, err)
    glob_row = videos[-1]
    assert glob_row["reason"] == "outside_allowed_roots" and "secret.mp4" in glob_row["path"]


def test_nothing_outside_the_roots_was_read(fuzz_run):
    videos = fuzz_run.read_rows("videos")
    for row in videos:
        if row["reason"] == "outside_allowed_roots":
            assert row["sha256"] is None, "a file outside the roots was opened"
    texts = [a["text"] for row in videos for a in (row["annotations"] or [])]
    assert "secret" not in texts and "a square" in texts


def test_odd_videos_are_segmented_or_refused_with_a_reason(fuzz_run):
    videos = {Path(r["source_path"] or r["path"]).name: r for r in fuzz_run.read_rows("videos") if r["status"] == "ok"}
    assert set(videos) == {"normal.mp4", "vidéo 視頻 with spaces.mp4", "rotated.mp4", "vfr.mp4", "big8k.mp4"}
    assert (videos["big8k.mp4"]["width"], videos["big8k.mp4"]["height"]) == (7680, 4320)
    assert videos["vfr.mp4"]["duration_s"] > 3.0 and videos["vfr.mp4"]["variable_frame_rate"] is True
    assert videos["normal.mp4"]["variable_frame_rate"] is False and videos["normal.mp4"]["rotation"] == 0
    # the 160x120 source turned a quarter: recorded as rotated, used through its upright 120x160 copy
    rotated = videos["rotated.mp4"]
    assert (rotated["rotation"], rotated["width"], rotated["height"]) == (90, 120, 160)
    assert Path(rotated["path"]).parent.name == "upright" and Path(rotated["path"]).is_file()
    clips = fuzz_run.read_rows("clips")
    by_video: dict[str, list[dict]] = {}
    for clip in clips:
        by_video.setdefault(clip["video_id"], []).append(clip)
    for name, video in videos.items():
        rows = by_video.get(video["video_id"])
        assert rows, f"{name}: no clips row at all"
        for clip in rows:
            assert clip["status"] == "ok" or (clip["reason"] and clip["error"]), (name, clip)
        ok = [c for c in rows if c["status"] == "ok"]
        if ok:  # clips cover the video in order, within its length
            assert ok[0]["start_s"] == 0 and all(a["end_s"] == b["start_s"] for a, b in zip(ok, ok[1:]))
            assert ok[-1]["end_s"] <= video["duration_s"] + 1e-6
    assert fuzz_run.read_success("clips")["rows"] == len(clips)


# ---- recipes with wrong values ------------------------------------------------------------------
GOOD = {"name": "r", "inputs": [{"glob": "data/samples/**/*.mp4"}], "stages": [{"stage": "ingest"}, {"stage": "segment"}]}

BAD_RECIPES = [
    ([], "expected a mapping at the top level"),
    ({**GOOD, "name": ""}, "name: String should have at least 1 character"),
    ({k: v for k, v in GOOD.items() if k != "inputs"}, "inputs: Field required"),
    ({**GOOD, "inputs": []}, "inputs: List should have at least 1 item"),
    ({**GOOD, "inputs": [{"glob": "*.mp4", "manifest": "m.jsonl"}]}, "give exactly one of 'glob' or 'manifest'"),
    ({**GOOD, "inputs": "videos/*.mp4"}, "inputs: must be a valid list"),
    ({**GOOD, "runner": {"workers": "two"}}, "runner.workers: must be a valid integer"),
    ({**GOOD, "runner": {"workers": 0}}, "runner.workers: must be greater than or equal to 1"),
    ({**GOOD, "runner": {"part_size": 10**12}}, "runner.part_size: must be less than or equal to 100000"),
    ({**GOOD, "runner": {"kind": "spark"}}, "runner.kind: 'spark' is not allowed"),
    ({**GOOD, "stages": [{"stage": "segmnt"}]}, "unknown stage 'segmnt'"),
    ({**GOOD, "stages": [{"threshold": 3}]}, "each stage needs a 'stage' key"),
    ({**GOOD, "stages": [{"stage": "segment", "threshold": -5}]}, "stages[0] (segment).threshold: must be greater than or equal to 0"),
    ({**GOOD, "stages": [{"stage": "segment", "threshold": 1e400}]}, "stages[0] (segment).threshold"),
    ({**GOOD, "stages": [{"stage": "segment", "treshold": 5}]}, "stages[0] (segment).treshold: unknown key"),
    ({**GOOD, "stages": [{"stage": "segment", "min_clip_s": 5, "max_clip_s": 6}]}, "must be at least twice min_clip_s"),
    ({**GOOD, "stages": [{"stage": "ingest"}, {"stage": "ingest"}]}, "stage(s) listed twice: ingest"),
    ({**GOOD, "stages": [{"stage": "ingest", "min_duration_s": 10, "max_duration_s": 5}]}, "must be greater than min_duration_s"),
    ({**GOOD, "allowed_roots": "data"}, "allowed_roots: must be a valid list"),
    ({**GOOD, "colour": "red"}, "colour: unknown key"),
]


@pytest.mark.parametrize("data,message", BAD_RECIPES, ids=[m[:40] for _, m in BAD_RECIPES])
def test_bad_recipes_are_refused_with_a_clear_message(data, message):
    with pytest.raises(RecipeError) as err:
        parse_recipe(data)
    assert message in str(err.value), str(err.value)
    assert "Traceback" not in str(err.value) and "pydantic" not in str(err.value)


def test_bad_yaml_and_bad_recipe_on_the_command_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nstages: [\n")
    with pytest.raises(RecipeError, match="is not valid YAML"):
        load_recipe(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "runner": {"workers": -3}}))
    env = {**os.environ, "VSTW_RUNS": str(tmp_path / "runs"), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(bad), "--run", "x"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "runner.workers: must be greater than or equal to 1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs" / "x").exists(), "a refused recipe leaves no run folder"



def test_messages_name_what_the_user_wrote_and_why(fuzz_run):
    errors = {}
    for (row, _), got in zip(ROWS, sorted(fuzz_run.read_rows("videos"), key=lambda r: r["input_index"])):
        if isinstance(row, dict) and got["error"]:
            errors.setdefault(json.dumps(row, sort_keys=True), got["error"])
    said = lambda **row: errors[json.dumps(row, sort_keys=True)]  # noqa: E731
    assert "loop_a.mp4: a loop of symbolic links" in said(path="loop_a.mp4")
    assert "fifo.mp4: a FIFO (named pipe), not a regular file" in said(path="fifo.mp4")
    assert "socket.mp4: a socket, not a regular file" in said(path="socket.mp4")
    assert "a folder.mp4: a folder, not a regular file" in said(path="a folder.mp4")
    # the name given, not the link's target
    assert "dangling.mp4: a symbolic link to a file that does not exist" in said(path="dangling.mp4")
    assert "gone.mp4" not in said(path="dangling.mp4")
    assert "annotations_file fifo.json: a FIFO" in said(path="normal.mp4", annotations_file="fifo.json")
    # a row listing a file again says so (not "normal.mp4: same content as normal.mp4")
    again = said(path="normal.mp4")
    assert "listed again" in again and "same content" not in again


def test_a_manifest_that_is_a_fifo_or_a_loop_is_one_row_and_never_blocks(tmp_path):
    from pipelines.inputs import list_inputs

    os.mkfifo(tmp_path / "manifest.jsonl")
    os.symlink(tmp_path / "m2.jsonl", tmp_path / "m1.jsonl")
    os.symlink(tmp_path / "m1.jsonl", tmp_path / "m2.jsonl")
    recipe = parse_recipe({"name": "fifo", "inputs": [{"manifest": str(tmp_path / "manifest.jsonl")}, {"manifest": str(tmp_path / "m1.jsonl")},
                                                      {"glob": str(tmp_path / "*.jsonl")}],
                           "allowed_roots": [str(tmp_path)], "stages": [{"stage": "ingest"}]})  # fmt: skip
    items = list_inputs(recipe, ROOT)
    errors = [item["input_error"] for item in items]
    assert errors[0][0] == "not_a_file" and "is a FIFO" not in errors[0][1] and "a FIFO (named pipe)" in errors[0][1]
    assert "does not exist" not in errors[0][1]
    assert errors[1][0] == "symlink_loop" and "m1.jsonl" in errors[1][1]
    assert sorted(e[0] for e in errors[2:]) == ["not_a_file", "symlink_loop", "symlink_loop"]
