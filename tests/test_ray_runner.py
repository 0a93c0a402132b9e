"""The Ray runner keeps the local runner's promises: same inputs -> the same tables (the demo
recipe as shipped, whatever stages it holds), one crashing item costs only itself, and a killed
Ray run resumes without duplicates. One local Ray (2 CPUs, no dashboard) serves the module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import ray  # noqa: E402
import yaml
from _process_tools import canonical, kill_when_parts
from _streaming_fixtures import make_corpus

from curation.synthetic import write_synthetic_set  # noqa: E402
from pipelines.recipe import RecipeError, load_recipe, parse_recipe  # noqa: E402
from pipelines.run import run_recipe  # noqa: E402
from pipelines.rundir import RunDir  # noqa: E402
from pipelines.runners.local import LocalRunner  # noqa: E402
from pipelines.runners.ray_runner import RayRunner, start_local_ray  # noqa: E402
from pipelines.stage import Stage, StageContext, StageParams  # noqa: E402
from pipelines.stages import REGISTRY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VSTW = [sys.executable, "-m", "pipelines.cli"]


@pytest.fixture(scope="module")
def ray_session():
    # Workers import this module by name (the crashing stage below), hence tests/ on their path.
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    start_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20,
                    runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def tables_of(run_dir: RunDir) -> list[str]:
    return sorted(p.parent.name for p in run_dir.root.glob("*/part-*.parquet") if p.parent.parent == run_dir.root)


# ---- same inputs, same outputs ---------------------------------------------------------------
def test_demo_recipe_gives_identical_tables_under_local_and_ray(ray_session, samples, tmp_path):
    recipe = load_recipe(ROOT / "tests" / "recipes" / "fixture-demo.yaml")
    # the stages that need no teacher server (the teacher stages: the fake-teacher test below)
    recipe = recipe.model_copy(update={"stages": [s for s in recipe.stages if s.stage in ("ingest", "segment")]})
    stages = [s.stage for s in recipe.stages]
    runs = tmp_path / "runs"
    local = run_recipe(recipe, "local", ROOT, runs, progress=False, echo=lambda *_: None, runner_kind="local")
    on_ray = run_recipe(recipe, "ray", ROOT, runs, progress=False, echo=lambda *_: None, runner_kind="ray")
    a, b = RunDir(runs / "local"), RunDir(runs / "ray")
    assert list(local) == list(on_ray) == stages
    assert tables_of(a) == tables_of(b) and tables_of(a)
    for table in tables_of(a):
        assert canonical(a, table) == canonical(b, table), f"table {table} differs between local and Ray"
        assert sorted(os.listdir(a.table_dir(table))) == sorted(os.listdir(b.table_dir(table))), "same part names"
    for name in stages:
        table = REGISTRY[name].output_table
        assert a.is_complete(table) and b.is_complete(table)
        assert a.read_plan(table) == b.read_plan(table)
    assert on_ray["ingest"]["ok"] > 0
    print(f"stages covered by the equivalence test: {', '.join(stages)}")


# ---- one bad item costs only itself, under every kind of stage --------------------------------
def _crashy(rows, params, ctx):
    out = []
    for row in rows:
        if row["video_id"] == "crash":
            os._exit(139)  # what a segfaulting decoder looks like from outside
        if row["video_id"] == "raise":
            raise RuntimeError("a bug in the stage")
        out.append({"clip_id": row["video_id"] + "-c0000", "video_id": row["video_id"], "index": 0, "start_s": float(len(rows))})
    return out


class CrashyParams(StageParams):
    stage: str = "crashy"


def _crashy_stage(kind: str) -> Stage:
    return Stage(
        name="crashy", output_table="clips", fn=_crashy, params_model=CrashyParams, key="video_id",
        input_table="videos", kind=kind, ref=f"test_ray_runner:CRASHY_{kind.upper()}",  # type: ignore[arg-type]
        failed_row=lambda item, reason, msg: {"clip_id": item["video_id"] + "-none", "video_id": item["video_id"],
                                              "status": "failed", "reason": reason, "error": msg},
    )


CRASHY_CPU, CRASHY_IO, CRASHY_MODEL = _crashy_stage("cpu"), _crashy_stage("io"), _crashy_stage("model")


def _run(runner, stage, inputs, folder: Path) -> RunDir:
    run_dir = RunDir(folder)
    ctx = StageContext(run="r", run_root=run_dir.root, project_root=ROOT)
    runner.run_stage(stage, CrashyParams(), run_dir, ctx, inputs)
    return run_dir


def test_crashing_and_raising_items_fail_alone_under_ray(ray_session, tmp_path):
    inputs = [{"video_id": v} for v in ("a", "b", "crash", "c", "raise", "d", "e")]
    ref = _run(LocalRunner(workers=2, part_size=3, progress=False), CRASHY_CPU, inputs, tmp_path / "local")
    got = _run(RayRunner(workers=2, part_size=3, progress=False), CRASHY_CPU, inputs, tmp_path / "ray")
    rows = {r["video_id"]: r for r in got.read_rows("clips")}
    assert rows["crash"]["reason"] == "worker_crashed" and "worker process died" in rows["crash"]["error"]
    assert rows["raise"]["reason"] == "stage_error" and "a bug in the stage" in rows["raise"]["error"]
    assert all(rows[v]["status"] == "ok" for v in "abcde")

    def comparable(run_dir):  # the traceback text of stage_error names the worker's file paths
        return sorted((r["video_id"], r["status"], r["reason"], r["start_s"]) for r in run_dir.read_rows("clips"))

    assert comparable(got) == comparable(ref)
    assert got.read_success("clips")["failed_by_reason"] == {"stage_error": 1, "worker_crashed": 1}


def test_streamed_stages_give_the_local_rows_and_files_under_ray(ray_session, tmp_path):
    """check and export read their inputs part by part: on Ray each task reads its own part from
    the run's staging folder (the driver sends a few numbers per part, never the rows)."""
    base = make_corpus(tmp_path / "base", 120)
    runs = {}
    for kind, runner in (("local", LocalRunner(workers=2, part_size=7, progress=False)), ("ray", RayRunner(workers=2, part_size=7, progress=False))):
        runs[kind] = RunDir(tmp_path / kind / "run")
        shutil.copytree(base.root, runs[kind].root)
        ctx = StageContext(run="run", run_root=runs[kind].uri, project_root=ROOT)
        for name, params in (("check", {}), ("export", {"allow_unchecked": ["answer"]})):
            stage = REGISTRY[name]
            p = stage.params_model(**params)
            runner.run_stage(stage, p, runs[kind], ctx, stage.load_inputs(runs[kind], p))
    for table in ("verdicts", "export_decisions"):
        assert canonical(runs["local"], table) == canonical(runs["ray"], table), f"table {table} differs under Ray"
        assert runs["local"].read_plan(table) == runs["ray"].read_plan(table)
    files = sorted(p.relative_to(runs["local"].exports_dir) for p in runs["local"].exports_dir.rglob("*") if p.is_file() and not p.is_symlink())
    assert files and all((runs["local"].exports_dir / f).read_bytes() == (runs["ray"].exports_dir / f).read_bytes() for f in files)
    assert not (runs["ray"].root / "_staging").exists()


@pytest.mark.parametrize("stage", [CRASHY_IO, CRASHY_MODEL], ids=["io-actor-pool", "model-actor-pool"])
def test_actor_pool_stages_give_the_local_rows(ray_session, tmp_path, stage):
    inputs = [{"video_id": f"v{i:02d}"} for i in range(9)] + [{"video_id": "raise"}]
    ref = _run(LocalRunner(workers=2, part_size=4, progress=False), stage, inputs, tmp_path / "local")
    runner = RayRunner(workers=2, part_size=4, progress=False, resources={"crashy": {"concurrency": 1, "threads": 2}})
    got = _run(runner, stage, inputs, tmp_path / "ray")
    strip = lambda rows: sorted((r["clip_id"], r["status"], r["reason"], r["start_s"]) for r in rows)  # noqa: E731
    assert strip(got.read_rows("clips")) == strip(ref.read_rows("clips"))
    assert sorted(os.listdir(got.table_dir("clips"))) == sorted(os.listdir(ref.table_dir("clips")))
    # An item that kills its actor costs only itself (locally, io stages run in threads of the
    # run's own process, so there a crash like this one ends the run: Ray isolates it).
    crashed = _run(runner, stage, inputs + [{"video_id": "crash"}], tmp_path / "ray-crash")
    rows = {r["video_id"]: r for r in crashed.read_rows("clips")}
    assert rows["crash"]["reason"] == "worker_crashed" and rows["raise"]["reason"] == "stage_error"
    assert sum(r["status"] == "ok" for r in rows.values()) == 9


def test_map_options_follow_stage_kind_and_recipe_overrides(ray_session):
    from ray.data import ActorPoolStrategy

    runner = RayRunner(resources={"crashy": {"num_cpus": 0.5, "concurrency": 3}})
    cpu = runner.map_options(CRASHY_CPU)
    assert cpu["num_cpus"] == 0.5 and not cpu["cls"] and cpu["compute"].size == 3
    io = RayRunner().map_options(CRASHY_IO)
    assert io["cls"] and isinstance(io["compute"], ActorPoolStrategy) and io["num_gpus"] == 0
    model = RayRunner().map_options(CRASHY_MODEL)
    assert model["cls"] and model["num_gpus"] == 0  # no GPU on this machine: the judge runs on CPU


# ---- recipes and command line ------------------------------------------------------------------
def _recipe(runner: dict) -> dict:
    return {"name": "r", "inputs": [{"glob": "*.mp4"}], "runner": runner, "stages": [{"stage": "ingest"}]}


def test_runner_block_is_validated():
    ok = parse_recipe(_recipe({"kind": "ray", "address": "auto", "resources": {"segment": {"num_cpus": 2}}}))
    assert ok.runner.kind == "ray" and ok.runner.resources["segment"].num_cpus == 2
    bad = [
        ({"kind": "spark"}, "'spark' is not allowed; allowed values: 'local' or 'ray'"),
        ({"kind": "local", "address": "auto"}, "only used by the ray runner"),
        ({"kind": "ray", "resources": {"segmnt": {}}}, "unknown stage(s) segmnt"),
        ({"kind": "ray", "resources": {"segment": {"num_cpus": -1}}}, "greater than 0"),
        ({"kind": "ray", "resources": {"segment": {"gpus": 1}}}, "unknown key"),
    ]
    for runner, message in bad:
        with pytest.raises(RecipeError) as err:
            parse_recipe(_recipe(runner))
        assert message in str(err.value), (runner, str(err.value))


def test_unreachable_cluster_is_a_clear_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe({"kind": "local"}) | {"inputs": [{"glob": str(tmp_path / "*.mp4")}],
                                                                      "allowed_roots": [str(tmp_path)]}))
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    env = {**os.environ, "VSTW_RUNS": str(tmp_path / "runs"), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([*VSTW, "run", str(recipe), "--run", "x", "--runner", "ray", "--address", "ray://127.0.0.1:9"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "cannot start or reach Ray at ray://127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr


# ---- a killed Ray run resumes without duplicates ---------------------------------------------

def test_killed_ray_run_resumes_without_duplicates(ray_session, tmp_path):
    write_synthetic_set(tmp_path / "videos", count=6, seed=21, n_scenes=3, scene_s=(3.0, 5.0))
    data = {
        "name": "ray-resume",
        "inputs": [{"glob": str(tmp_path / "videos" / "*.mp4")}],
        "allowed_roots": [str(tmp_path)],
        "runner": {"kind": "ray", "workers": 1, "part_size": 1},
        "stages": [{"stage": "ingest"}, {"stage": "segment", "detect_width": 320}],
    }
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    run_recipe(parse_recipe(data), "reference", ROOT, runs, progress=False, echo=lambda *_: None, runner_kind="local")

    env = {**os.environ, "VSTW_RUNS": str(runs), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    env.pop("RAY_ADDRESS", None)
    killed = RunDir(runs / "killed")
    done_at_kill = kill_when_parts([*VSTW, "run", str(recipe_path), "--run", "killed"], env, killed, "clips", parts=2)
    assert 2 <= len(done_at_kill) < 6 and not killed.is_complete("clips"), "killed in the middle of segment"

    run_recipe(parse_recipe(data), "killed", ROOT, runs, progress=False, echo=lambda *_: None)  # resumed under Ray
    ref = RunDir(runs / "reference")
    for table in ("videos", "clips"):
        assert canonical(killed, table) == canonical(ref, table), f"{table} differs from the uninterrupted run"
    clip_ids = [r["clip_id"] for r in killed.read_rows("clips")]
    assert len(clip_ids) == len(set(clip_ids)), "no duplicate clips"
    assert killed.read_success("clips")["parts_computed"] == 6 - len(done_at_kill), "finished parts were kept"
    assert not list(killed.root.rglob(".tmp-*")), "no temp files left behind"


# ---- teacher stages (io: actor pools with threads) give the local tables ------------------------
def test_teacher_stages_give_identical_tables_under_ray(ray_session, samples, tmp_path):
    from _teacher_fixtures import TEACHER_MODES, FakeTeacherServer, synthetic_manifest

    runs = tmp_path / "runs"
    # two synthetic samples (with their ground truth as annotations) keep this test short
    manifest = synthetic_manifest(ROOT / "data" / "samples", tmp_path, count=2)
    with FakeTeacherServer() as teacher:
        data = {
            "name": "ray-teacher",
            "inputs": [{"manifest": str(manifest)}],
            "allowed_roots": ["data/samples"],
            "runner": {"workers": 2, "part_size": 2, "kind": "ray", "resources": {"graph": {"concurrency": 1, "threads": 2}}},
            "teacher": {"text": {"base_url": teacher.base_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
                        "timeout_s": 30.0, "max_retries": 4, "concurrency": 2},  # slack for a loaded CI machine
            "stages": [{"stage": s, **TEACHER_MODES.get(s, {})} for s in ("ingest", "segment", "perceive", "graph", "qa", "think")],
        }
        # separate caches: the Ray run must ask the teacher itself, not replay the local run
        run_recipe(parse_recipe(data), "local", ROOT, runs, progress=False, echo=lambda *_: None, runner_kind="local")
        requests_local = teacher.requests
        run_recipe(parse_recipe(data), "ray", ROOT, runs, progress=False, echo=lambda *_: None)
        assert teacher.requests - requests_local >= requests_local > 0  # (a slow reply may be retried)
    a, b = RunDir(runs / "local"), RunDir(runs / "ray")
    volatile = {"teacher_usage"}  # latency and timing per request differ by nature
    assert tables_of(a) == tables_of(b)
    for table in sorted(set(tables_of(a)) - volatile):
        assert canonical(a, table) == canonical(b, table), f"table {table} differs between local and Ray"
    # Which of two identical requests is the cache hit depends on timing when they run at once
    # (in parallel actors under Ray): compare the calls, not where the cache answered them.
    usage = lambda d: sorted((r["stage"], r["status"]) for r in d.read_rows("teacher_usage"))  # noqa: E731
    assert usage(a) == usage(b)
