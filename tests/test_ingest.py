"""Ingest on real sample videos plus broken inputs: good rows right, each bad input failed with
the right reason code, nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from curation.synthetic import make_script, render_video


@pytest.fixture
def messy_folder(tmp_path, samples):
    real = samples.parent / "real"
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(real / name, folder / name)
    shutil.copy(real / "bikes.mp4", folder / "bikes-copy.mp4")  # duplicate content
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    data = (real / "bigbuckbunny.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(folder / "audio-only.mp4")],
        check=True,
    )
    render_video(make_script("short", seed=1, n_scenes=1, scene_s=(0.5, 0.5)), folder / "short.mp4")
    manifest = tmp_path / "manifest.jsonl"
    rows = [
        {"path": str(folder / "bikes.mp4"), "id": "bikes-from-manifest", "metadata": {"split": "train"},
         "annotations": [{"start_s": 0.0, "end_s": 1.0, "text": "cyclists ride past", "kind": "caption"}]},
        {"path": str(folder / "does-not-exist.mp4"), "id": "ghost"},
        {"id": "no-path"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken json\n")
    return folder, manifest


def recipe(folder, manifest, tmp_path, **ingest):
    return {
        "name": "ingest-test",
        "inputs": [{"glob": str(folder / "*.mp4")}, {"manifest": str(manifest)}],
        "allowed_roots": [str(tmp_path)],
        "runner": {"workers": 2, "part_size": 3},
        "stages": [{"stage": "ingest", "min_duration_s": 1.0, **ingest}],
    }


def by_path(rows):
    out = {}
    for row in rows:
        out.setdefault(row["path"].split("/")[-1], []).append(row)
    return out


def test_ingest_records_every_bad_input_with_its_reason(messy_folder, tmp_path, run_recipe_dict):
    folder, manifest = messy_folder
    run_dir = run_recipe_dict(recipe(folder, manifest, tmp_path))
    rows = run_dir.read_rows("videos")
    # every input is accounted for: 9 files from the glob, 4 manifest rows
    assert len(rows) == 13
    assert len({r["video_id"] for r in rows}) == 13, "ids are unique"
    got = by_path(rows)

    bunny = got["bigbuckbunny.mp4"][0]
    assert bunny["status"] == "ok"
    assert (bunny["width"], bunny["height"], bunny["frame_count"]) == (1280, 720, 132)
    assert bunny["fps"] == pytest.approx(25.0) and bunny["duration_s"] == pytest.approx(5.28)
    assert bunny["codec"] == "h264" and len(bunny["sha256"]) == 64
    assert bunny["video_id"] == "v" + bunny["sha256"][:16]
    assert got["carphone_pristine.mp4"][0]["status"] == "ok"

    def reason(name, index=0):
        return got[name][index]["reason"]

    assert reason("zero.mp4") == "empty_file"
    assert reason("notes.mp4") == "not_a_video"
    assert reason("truncated.mp4") == "corrupt"
    assert reason("audio-only.mp4") == "no_video_stream"
    assert reason("short.mp4") == "too_short"
    assert reason("does-not-exist.mp4") == "missing"
    # bikes.mp4 comes in three times (glob, copy, manifest): the first input keeps the content id
    bikes = sorted(got["bikes.mp4"] + got["bikes-copy.mp4"], key=lambda r: r["input_index"])
    assert [r["status"] for r in bikes] == ["ok", "failed", "failed"]
    assert {r["reason"] for r in bikes[1:]} == {"duplicate"}
    assert all("same content as" in r["error"] for r in bikes[1:])
    # manifest problems are named by file and line
    bad = [r for r in rows if r["reason"] == "bad_manifest_row"]
    assert len(bad) == 2
    assert any("manifest.jsonl line 3: path: Field required" in r["error"] for r in bad)
    assert any("manifest.jsonl line 4: not JSON" in r["error"] for r in bad)
    for row in rows:
        if row["status"] == "failed":
            assert row["reason"] and row["error"], row


def test_manifest_metadata_and_annotations_are_kept(messy_folder, tmp_path, run_recipe_dict):
    folder, manifest = messy_folder
    run_dir = run_recipe_dict({**recipe(folder, manifest, tmp_path), "inputs": [{"manifest": str(manifest)}]})
    rows = {r["source_id"]: r for r in run_dir.read_rows("videos")}
    bikes = rows["bikes-from-manifest"]
    assert bikes["status"] == "ok"
    assert json.loads(bikes["metadata_json"]) == {"split": "train"}
    assert bikes["annotations"] == [{"start_s": 0.0, "end_s": 1.0, "text": "cyclists ride past", "kind": "caption"}]
    assert rows["ghost"]["reason"] == "missing"


def test_too_long_and_paths_outside_allowed_roots(messy_folder, tmp_path, run_recipe_dict, samples):
    folder, manifest = messy_folder
    data = recipe(folder, manifest, tmp_path, max_duration_s=3.0)
    data["inputs"].append({"glob": str(samples.parent / "real" / "bikes.mp4")})  # outside tmp_path
    run_dir = run_recipe_dict(data)
    got = by_path(run_dir.read_rows("videos"))
    assert got["bigbuckbunny.mp4"][0]["reason"] == "too_long"
    outside = [r for r in got["bikes.mp4"] if r["reason"] == "outside_allowed_roots"]
    assert len(outside) == 1 and "outside the allowed roots" in outside[0]["error"]


def test_a_rerun_of_a_finished_ingest_does_no_work(messy_folder, tmp_path, run_recipe_dict):
    folder, manifest = messy_folder
    data = recipe(folder, manifest, tmp_path)
    run_dir = run_recipe_dict(data)
    before = {p: p.stat().st_mtime_ns for p in run_dir.table_dir("videos").iterdir()}
    run_recipe_dict(data)
    after = {p: p.stat().st_mtime_ns for p in run_dir.table_dir("videos").iterdir()}
    assert before == after
