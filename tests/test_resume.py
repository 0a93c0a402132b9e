"""A run killed with SIGKILL in the middle of segment resumes to exactly the rows of an
uninterrupted run: no duplicates, nothing lost; a finished run re-run does no work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from curation.synthetic import write_synthetic_set
from pipelines.rundir import RunDir

VSTW = [sys.executable, "-m", "pipelines.cli"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, project_root):
    base = tmp_path_factory.mktemp("resume")
    write_synthetic_set(base / "videos", count=8, seed=21)
    recipe = {
        "name": "resume-test",
        "inputs": [{"glob": str(base / "videos" / "*.mp4")}],
        "allowed_roots": [str(base)],
        # one video per part, one worker: many small parts, so a kill lands between them
        "runner": {"workers": 1, "part_size": 1},
        "stages": [{"stage": "ingest"}, {"stage": "segment", "detect_width": 320}],
    }
    path = base / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "VSTW_RUNS": str(base / "runs"), "VSTW_HOME": str(project_root), "VSTW_PROGRESS": "0"}
    return base, path, env


def vstw(env, *args, **kw):
    return subprocess.run([*VSTW, *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def table_rows(run_dir: RunDir, table: str) -> list[dict]:
    rows = run_dir.read_rows(table)
    for row in rows:
        row.pop("run")
    return sorted(rows, key=lambda r: str(r.get("clip_id") or r.get("video_id")))


def test_killed_run_resumes_without_duplicates_or_loss(setup):
    base, recipe, env = setup
    reference = vstw(env, "run", str(recipe), "--run", "reference")
    assert reference.returncode == 0, reference.stderr
    ref = RunDir(base / "runs" / "reference")

    proc = subprocess.Popen([*VSTW, "run", str(recipe), "--run", "killed"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = RunDir(base / "runs" / "killed")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(killed.existing_parts("clips")) >= 2:
            break
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = killed.existing_parts("clips")
    assert 2 <= len(done_at_kill) < 8 and not killed.is_complete("clips"), "killed in the middle of segment"

    status = vstw(env, "status", "killed")
    assert status.returncode == 0 and "partial" in status.stdout

    resumed = vstw(env, "run", str(recipe), "--run", "killed")
    assert resumed.returncode == 0, resumed.stderr
    for table in ("videos", "clips"):
        got, want = table_rows(killed, table), table_rows(ref, table)
        assert got == want, f"{table} differs from the uninterrupted run"
    clip_ids = [r["clip_id"] for r in killed.read_rows("clips")]
    assert len(clip_ids) == len(set(clip_ids)), "no duplicate clips"
    # parts written before the kill were kept, not recomputed
    assert killed.read_success("clips")["parts_computed"] == 8 - len(done_at_kill)
    assert not list(killed.table_dir("clips").glob(".tmp-*")), "no temp files left behind"

    # a third run does no work at all
    before = {p: p.stat().st_mtime_ns for p in killed.root.rglob("*") if p.is_file()}
    third = vstw(env, "run", str(recipe), "--run", "killed")
    assert third.returncode == 0
    assert third.stdout.count("already done") == 2
    after = {p: p.stat().st_mtime_ns for p in killed.root.rglob("*") if p.is_file()}
    assert before == after


def test_resuming_with_a_changed_recipe_is_refused(setup):
    base, recipe, env = setup
    assert vstw(env, "run", str(recipe), "--run", "changed", "--until", "ingest").returncode == 0
    other = base / "other.yaml"
    data = yaml.safe_load(recipe.read_text())
    data["stages"][1]["threshold"] = 40
    other.write_text(yaml.safe_dump(data))
    result = vstw(env, "run", str(other), "--run", "changed")
    assert result.returncode == 2
    assert "was made with a different recipe" in result.stderr and "Traceback" not in result.stderr
