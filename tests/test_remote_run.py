"""Run folders on remote filesystems: the same recipe written to s3:// (a real S3 API on
127.0.0.1) or to an fsspec filesystem gives the tables, exports and resume of a local run;
credentials only ever come from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _process_tools import canonical, kill_when_parts
from _s3_fixtures import ACCESS_KEY, SECRET_KEY, LocalS3
from _teacher_fixtures import TEACHER_MODES, FakeTeacherServer, synthetic_manifest

from curation.synthetic import write_synthetic_set
from pipelines.recipe import parse_recipe
from pipelines.run import run_recipe
from pipelines.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
VSTW = [sys.executable, "-m", "pipelines.cli"]
QUIET = {"progress": False, "echo": lambda *_: None}


@pytest.fixture(scope="module")
def s3():
    with LocalS3() as server:
        yield server


@pytest.fixture
def bucket(s3, monkeypatch) -> str:
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3.new_bucket()


def table_names(run_dir: RunDir) -> list[str]:
    return sorted({Path(p).parent.name for p in run_dir.files("", recursive=True)
                   if Path(p).name.startswith("part-") and Path(p).parent.parent.as_posix() == run_dir.base})


def teacher_recipe(manifest: Path, base_url: str, runner: dict) -> dict:
    return {
        "name": "remote",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": ["data/samples"],
        "runner": runner,
        "teacher": {"text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
                    "timeout_s": 30.0, "max_retries": 4, "concurrency": 2},
        "stages": [{"stage": s, **TEACHER_MODES.get(s, {})} for s in ("ingest", "segment", "perceive", "graph", "qa", "think", "check")]
        # the fake teacher's thoughts repeat themselves: exclude on structure only, so rows get out
        # (no verify stage: the fake teacher cannot re-answer, so the recipe opts out of `answer` by name)
        + [{"stage": "export", "formats": ["sft", "rl", "hf"], "exclude_on": ["structure"], "allow_unchecked": ["answer"]}],
    }


# ---- the whole pipeline on S3 ---------------------------------------------------------------
def test_pipeline_on_s3_gives_the_local_tables_and_exports(s3, bucket, samples, tmp_path):
    manifest = synthetic_manifest(samples.parent, tmp_path, count=2)
    with FakeTeacherServer() as teacher:
        recipe = parse_recipe(teacher_recipe(manifest, teacher.base_url, {"workers": 2, "part_size": 2}))
        run_recipe(recipe, "remote", ROOT, tmp_path / "runs", **QUIET)
        asked_locally = teacher.requests
        run_recipe(recipe, "remote", ROOT, f"s3://{bucket}/runs", **QUIET)
        assert teacher.requests == 2 * asked_locally > 0, "the S3 run asked the teacher itself (its own cache)"
        again = run_recipe(recipe, "remote", ROOT, f"s3://{bucket}/runs", **QUIET)
        assert teacher.requests == 2 * asked_locally, "a finished S3 run asks nothing again"
    assert all(s.get("skipped") for s in again.values()), again

    local, remote = RunDir(tmp_path / "runs" / "remote"), RunDir(f"s3://{bucket}/runs/remote")
    assert not remote.is_local and remote.name == "remote"
    assert table_names(remote) == table_names(local) and "chains" in table_names(remote)
    for table in sorted(set(table_names(local)) - {"teacher_usage"}):  # usage rows hold latencies
        assert canonical(remote, table) == canonical(local, table), f"table {table} differs on S3"
        assert remote.read_plan(table) == local.read_plan(table)
    assert remote.read_rows("chains"), "the run made chains"
    assert json.loads(local.read_bytes("exports", "manifest.json"))["records"] > 0, "the export has records"

    objects = s3.objects(bucket)
    exported = {k.split("runs/remote/", 1)[1] for k in objects if "/exports/" in k}
    local_exports = {p.relative_to(local.root).as_posix() for p in local.exports_dir.rglob("*") if p.is_file()}
    assert exported == local_exports, exported ^ local_exports
    assert any(name.startswith("exports/videos/") for name in exported), "relative video paths: videos uploaded"
    for name in sorted(n for n in exported if n.endswith((".jsonl", ".parquet"))):
        assert objects[f"runs/remote/{name}"] == (local.root / name).read_bytes(), f"{name} differs on S3"
    manifest_json = json.loads(objects["runs/remote/exports/manifest.json"])
    assert manifest_json["dataset_root"] == f"s3://{bucket}/runs/remote/exports"
    assert any(k.startswith("runs/remote/teacher-cache/") for k in objects), "the teacher cache lives beside the tables"
    assert "runs/remote/reports/teacher_usage.json" in objects
    # no folder-marker objects, no temp files: exactly the layout of a local run
    assert not [k for k in objects if k.endswith("/") or "/.tmp-" in k]
    for key, data in objects.items():
        assert SECRET_KEY.encode() not in data and ACCESS_KEY.encode() not in data, f"a credential was written to {key}"


def test_ray_runner_writes_the_same_run_to_s3(s3, bucket, samples, tmp_path):
    """Under Ray the driver writes the tables and the workers the teacher cache and usage rows,
    all in the bucket (the local Ray inherits the AWS_* environment)."""
    manifest = synthetic_manifest(samples.parent, tmp_path, count=2)
    with FakeTeacherServer() as teacher:
        data = teacher_recipe(manifest, teacher.base_url, {"workers": 2, "part_size": 2, "kind": "ray",
                                                            "resources": {"graph": {"concurrency": 1, "threads": 2}}})
        data["stages"] = [s for s in data["stages"] if s["stage"] in ("ingest", "segment", "perceive", "graph")]
        recipe = parse_recipe(data)
        run_recipe(recipe, "r", ROOT, tmp_path / "runs", runner_kind="local", **QUIET)
        run_recipe(recipe, "r", ROOT, f"s3://{bucket}/runs", **QUIET)
    local, remote = RunDir(tmp_path / "runs" / "r"), RunDir(f"s3://{bucket}/runs/r")
    for table in ("videos", "clips", "captions", "graphs"):
        assert canonical(remote, table) == canonical(local, table), f"table {table} differs on S3 under Ray"
    usage = lambda d: sorted((r["stage"], r["status"]) for r in d.read_rows("teacher_usage"))  # noqa: E731
    assert usage(remote) == usage(local) and usage(remote)
    assert any(k.startswith("runs/r/teacher-cache/") for k in s3.objects(bucket))


def test_status_pull_and_sql_on_a_remote_run(s3, bucket, samples, tmp_path):
    """`vstw status` reads the run where it is; `vstw pull` copies it here for the SQL tools."""
    write_synthetic_set(tmp_path / "videos", count=2, seed=5, n_scenes=2, scene_s=(2.0, 3.0))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"name": "pulled", "inputs": [{"glob": str(tmp_path / "videos" / "*.mp4")}],
                                  "allowed_roots": [str(tmp_path)], "stages": [{"stage": "ingest"}, {"stage": "segment"}]}))
    env = {**os.environ, **s3.env, "VSTW_HOME": str(ROOT), "VSTW_RUNS": str(tmp_path / "local-runs"), "VSTW_PROGRESS": "0"}
    uri = f"s3://{bucket}/runs"

    def vstw(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*VSTW, *args], env=env, capture_output=True, text=True, timeout=300)

    ran = vstw("run", str(recipe), "--run", "r1", "--runs-root", uri)
    assert ran.returncode == 0, ran.stderr
    assert f"{uri}/r1" in ran.stdout and not (tmp_path / "local-runs" / "r1").exists()
    status = vstw("status", f"{uri}/r1")
    assert status.returncode == 0 and status.stdout.count("complete") == 2, status.stdout
    refused = vstw("sql", "SELECT count(*) FROM clips", "--run", f"{uri}/r1")
    assert refused.returncode == 2 and f"vstw pull {uri}/r1" in refused.stderr
    pulled = vstw("pull", f"{uri}/r1")
    assert pulled.returncode == 0, pulled.stderr
    copy = RunDir(tmp_path / "local-runs" / "r1")
    assert copy.is_complete("clips") and canonical(copy, "clips") == canonical(RunDir(f"{uri}/r1"), "clips")
    counted = vstw("sql", "SELECT count(*) AS n FROM clips", "--run", "r1", "--format", "json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout.strip().splitlines()[-1])["n"] == len(copy.read_rows("clips")) > 0
    for out in (ran, status, pulled, counted):
        assert SECRET_KEY not in out.stdout + out.stderr


def test_killed_run_on_s3_resumes_without_duplicates(s3, bucket, tmp_path):
    write_synthetic_set(tmp_path / "videos", count=5, seed=8, n_scenes=3, scene_s=(3.0, 5.0))
    data = {"name": "s3-resume", "inputs": [{"glob": str(tmp_path / "videos" / "*.mp4")}], "allowed_roots": [str(tmp_path)],
            "runner": {"workers": 1, "part_size": 1}, "stages": [{"stage": "ingest"}, {"stage": "segment", "detect_width": 320}]}
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(json.dumps(data))
    run_recipe(parse_recipe(data), "reference", ROOT, tmp_path / "runs", **QUIET)

    env = {**os.environ, **s3.env, "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    killed = RunDir(f"s3://{bucket}/runs/killed")
    done_at_kill = kill_when_parts([*VSTW, "run", str(recipe_path), "--run", "killed", "--runs-root", f"s3://{bucket}/runs"],
                                   env, killed, "clips", parts=2)
    assert 2 <= len(done_at_kill) < 5 and not killed.is_complete("clips")

    run_recipe(parse_recipe(data), "killed", ROOT, f"s3://{bucket}/runs", **QUIET)
    reference = RunDir(tmp_path / "runs" / "reference")
    for table in ("videos", "clips"):
        assert canonical(killed, table) == canonical(reference, table), f"{table} differs from the uninterrupted run"
    clip_ids = [r["clip_id"] for r in killed.read_rows("clips")]
    assert len(clip_ids) == len(set(clip_ids)) > 0
    assert killed.read_success("clips")["parts_computed"] == 5 - len(done_at_kill), "finished parts were kept"


# ---- any fsspec filesystem -------------------------------------------------------------------
def test_fsspec_memory_filesystem_holds_a_run(tmp_path):
    """A protocol pyarrow does not know itself goes through fsspec (here its in-memory one)."""
    write_synthetic_set(tmp_path / "videos", count=2, seed=3, n_scenes=2, scene_s=(2.0, 3.0))
    data = {"name": "mem", "inputs": [{"glob": str(tmp_path / "videos" / "*.mp4")}], "allowed_roots": [str(tmp_path)],
            "runner": {"workers": 1, "part_size": 1}, "stages": [{"stage": "ingest"}, {"stage": "segment"}]}
    run_recipe(parse_recipe(data), "m", ROOT, tmp_path / "runs", **QUIET)
    summaries = run_recipe(parse_recipe(data), "m", ROOT, "memory://vstw-test/runs", **QUIET)
    assert summaries["segment"]["ok"] > 0
    mem, local = RunDir("memory://vstw-test/runs/m"), RunDir(tmp_path / "runs" / "m")
    for table in ("videos", "clips"):
        assert canonical(mem, table) == canonical(local, table)
    assert mem.existing_parts("clips") == local.existing_parts("clips")
    assert mem.remove_stale_parts("clips", keep=set()) and not mem.existing_parts("clips")


# ---- credentials never go in an address ------------------------------------------------------
def test_uri_with_credentials_is_refused(tmp_path):
    for uri in (f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/runs/x", f"s3://bucket/runs/x?access_key={ACCESS_KEY}&secret_key={SECRET_KEY}"):
        with pytest.raises(ValueError) as err:
            RunDir(uri)
        assert "environment" in str(err.value) and SECRET_KEY not in str(err.value)

    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"name": "r", "inputs": [{"glob": str(tmp_path / "*.mp4")}], "allowed_roots": [str(tmp_path)],
                                  "stages": [{"stage": "ingest"}]}))
    env = {**os.environ, "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    result = subprocess.run([*VSTW, "run", str(recipe), "--run", "x", "--runs-root", f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/runs"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "environment" in result.stderr, result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr and "Traceback" not in result.stderr
    for command in ("status", "pull"):  # the commands that take a run's URI refuse it the same way
        result = subprocess.run([*VSTW, command, f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/runs/x"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "environment" in result.stderr, (command, result.stderr)
        assert SECRET_KEY not in result.stdout + result.stderr and "Traceback" not in result.stderr
