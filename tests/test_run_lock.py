"""One writer per run (issue 14): a second writer of a running run is refused naming the holder,
a SIGKILLed holder does not leave the run locked, stale-temp cleanup spares live writers, and
files written atomically (parts, exports) get the user's umask."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from _chain_fixtures import build_corpus, demo_run_copy, run_stage, write_tables
from curation.synthetic import write_synthetic_set
from pipelines.rundir import RunDir

VSTW = [sys.executable, "-m", "pipelines.cli"]

# Holds the lock of a run, says so, waits for GO to appear, then runs the recipe under the same
# lock (run_recipe takes it again: re-entrant in one thread) and exits normally.
HOLDER = """
import sys, time
from pathlib import Path
from pipelines.recipe import load_recipe
from pipelines.run import run_recipe
from pipelines.runlock import run_lock

recipe, runs, name, go, root = sys.argv[1:]
with run_lock(Path(runs) / name, command="test holder"):
    print("locked", flush=True)
    while not Path(go).exists():
        time.sleep(0.05)
    run_recipe(load_recipe(recipe), name, Path(root), runs, progress=False, echo=lambda *_: None)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, project_root):
    base = tmp_path_factory.mktemp("runlock")
    write_synthetic_set(base / "videos", count=2, seed=21, n_scenes=2, scene_s=(2.0, 3.0))
    recipe = {
        "name": "lock-test",
        "inputs": [{"glob": str(base / "videos" / "*.mp4")}],
        "allowed_roots": [str(base)],
        "runner": {"workers": 1, "part_size": 1},
        "stages": [{"stage": "ingest"}, {"stage": "segment", "detect_width": 128}],
    }
    path = base / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "VSTW_RUNS": str(base / "runs"), "VSTW_HOME": str(project_root), "VSTW_PROGRESS": "0"}
    return base, path, env


def vstw(env, *args):
    return subprocess.run([*VSTW, *args], env=env, capture_output=True, text=True, timeout=300)


def start_holder(setup, run: str, project_root: Path) -> tuple[subprocess.Popen, Path]:
    base, recipe, env = setup
    go = base / f"go-{run}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(recipe), str(base / "runs"), run, str(go), str(project_root)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until the lock is held (or the holder died)
    assert line.strip() == "locked", proc.stderr.read()
    return proc, go


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_writer_is_refused_naming_the_holder_and_the_first_completes(setup, project_root):
    from pipelines.recipe import load_recipe
    from pipelines.run import run_recipe
    from pipelines.runlock import RunLockedError

    base, recipe, env = setup
    holder, go = start_holder(setup, "busy", project_root)
    run_folder = base / "runs" / "busy"
    try:
        before = files_of(run_folder)
        assert set(before) == {".lock"}, "the holder has written nothing yet but its lock"
        assert json.loads(before[".lock"])["pid"] == holder.pid

        second = vstw(env, "run", str(recipe), "--run", "busy")
        assert second.returncode != 0
        message = " ".join(second.stderr.split())  # rich may wrap a long line
        assert f"pid {holder.pid} on host" in message and "test holder" in message and "since" in message, second.stderr
        assert "Traceback" not in second.stderr
        # the Ray runner's path is refused the same way, before any Ray is started
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} "):
            run_recipe(load_recipe(recipe), "busy", project_root, base / "runs", progress=False, echo=lambda *_: None, runner_kind="ray")
        assert files_of(run_folder) == before, "a refused run writes nothing"
    finally:
        go.touch()
        out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err
    run_dir = RunDir(run_folder)
    assert run_dir.is_complete("videos") and run_dir.is_complete("clips")
    assert run_dir.read_success("videos")["ok"] == 2
    assert not (run_folder / ".lock").exists(), "a finished run leaves no lock behind"

    third = vstw(env, "run", str(recipe), "--run", "busy")  # the lock is free again: a no-op resume
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("already done") == 2


def test_demo_is_refused_too_before_it_starts_a_teacher(setup, project_root, samples):
    import hashlib

    from pipelines.recipe import load_recipe

    base, recipe, env = setup
    name = f"{load_recipe(recipe).name}-{hashlib.sha256(recipe.read_bytes()).hexdigest()[:8]}"  # how vstw demo names its run
    holder, go = start_holder(setup, name, project_root)
    try:
        demo = vstw(env, "demo", "--recipe", str(recipe))
        assert demo.returncode != 0
        assert f"pid {holder.pid} on host" in " ".join(demo.stderr.split()), demo.stderr
        assert "embedded teacher" not in demo.stdout
    finally:
        go.touch()
        holder.communicate(timeout=120)
    assert holder.returncode == 0


def test_a_sigkilled_holder_does_not_block_the_next_run(setup, project_root):
    base, recipe, env = setup
    holder, _ = start_holder(setup, "killed", project_root)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    lock = base / "runs" / "killed" / ".lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid, "SIGKILL left the lock file behind"

    started = time.monotonic()
    result = vstw(env, "run", str(recipe), "--run", "killed")
    assert result.returncode == 0, result.stderr
    note = " ".join(result.stdout.split())
    assert f"left locked by pid {holder.pid} on host" in note and "no longer running" in note, result.stdout
    assert RunDir(base / "runs" / "killed").is_complete("clips")
    assert not lock.exists()
    assert time.monotonic() - started < 60, "no waiting for the dead holder"


def test_a_run_on_an_object_store_is_not_locked_and_says_so():
    from pipelines.runlock import run_lock

    said = []
    with run_lock("memory://lock-test/runs/r", echo=said.append):
        pass
    assert len(said) == 1 and "no lock keeps a second writer of this run out" in said[0]


# ---- temp files are named per process; cleanup spares live writers ------------------------------
WRITER = """
import sys, time
from pathlib import Path
from curation.storage import temp_name
tmp = Path(sys.argv[1]) / temp_name(".parquet")
tmp.write_bytes(b"PAR1 half a part")
print(tmp.name, flush=True)
if sys.argv[2] == "stay":
    time.sleep(120)
"""


def temp_of_process(folder: Path, stay: bool) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), "stay" if stay else "exit"], stdout=subprocess.PIPE, text=True)
    name = proc.stdout.readline().strip()
    assert name.startswith(f".tmp-{proc.pid}-"), name
    if not stay:
        proc.wait(timeout=30)
    return proc, folder / name


def test_cleanup_removes_dead_writers_temp_files_and_never_a_live_ones(tmp_path):
    from curation.storage import temp_name

    run_dir = RunDir(tmp_path / "run")
    folder = run_dir.table_dir("clips")
    folder.mkdir(parents=True)
    live, live_tmp = temp_of_process(folder, stay=True)
    try:
        _, dead_tmp = temp_of_process(folder, stay=False)
        legacy = folder / ".tmp-k2j4h5.parquet"  # written before temp names carried their writer
        legacy.write_bytes(b"old")
        own = folder / temp_name(".parquet")  # this process writes nothing there while it cleans
        own.write_bytes(b"mine")
        part = folder / "part-00000-abc.parquet"
        part.write_bytes(b"kept")

        assert run_dir.remove_stale_parts("clips", {"part-00000-abc"}) == []
        assert live_tmp.exists(), "a live writer's temp file is never removed"
        assert not dead_tmp.exists() and not legacy.exists() and not own.exists()
        assert part.exists()
    finally:
        live.kill()
        live.wait()
    run_dir.remove_stale_parts("clips", {"part-00000-abc"})
    assert not live_tmp.exists(), "once its writer is gone, its temp file goes too"


def test_atomic_writes_name_their_temp_file_after_the_process(tmp_path, monkeypatch):
    from curation import storage

    seen = []
    real_replace = os.replace
    monkeypatch.setattr(storage.os, "replace", lambda src, dst: (seen.append(Path(src).name), real_replace(src, dst)))
    storage.atomic_write_bytes(tmp_path / "x.parquet", b"data")
    assert len(seen) == 1 and seen[0].startswith(f".tmp-{os.getpid()}-{storage.host_tag()}-") and seen[0].endswith(".parquet")


# ---- files a team can share: the umask's modes ---------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_parts_and_exports_get_the_umask_modes(tmp_path_factory, umask):
    run = demo_run_copy(tmp_path_factory, f"modes-{umask:03o}")
    corpus = build_corpus(run)
    previous = os.umask(umask)
    try:
        write_tables(run, corpus)
        run_stage(run, "check")
        summary = run_stage(run, "export", allow_unchecked=["answer"])
    finally:
        os.umask(previous)
    assert summary["ok"] > 0
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask

    written = [run.root / t for t in ("captions", "graphs", "chains", "verdicts", "export_decisions")]
    exports = run.exports_dir
    for name in ("sft", "rl", "hf", "manifest.json"):
        assert (exports / name).exists(), name
    for folder in [*written, exports]:
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():  # exports/videos/ links to the sources: their modes are the sources'
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            want = want_dir if path.is_dir() else want_file
            assert mode == want, f"{path.relative_to(run.root)}: mode {mode:o}, want {want:o} under umask {umask:03o}"
    assert not list(run.root.rglob(".tmp-*")), "no temp file or folder left"

