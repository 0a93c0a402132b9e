"""Chaos: the pipeline while a seeded controller SIGKILLs the run (or one of its worker processes)
at random moments in different stages, and while the teacher server flaps (refuses connections,
then answers 500). After re-runs every table equals the table of an undisturbed run, no id is
duplicated, and every failed row carries a reason. A fake API key given through the environment
never lands in the run folder, the exports or the logs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml
from _process_tools import canonical, kill_tree
from _teacher_fixtures import TEACHER_MODES, FakeTeacherServer

from curation.schemas import TABLES
from pipelines.recipe import load_recipe, parse_recipe
from pipelines.run import run_recipe
from pipelines.rundir import RunDir
from pipelines.stages import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
VSTW = [sys.executable, "-m", "pipelines.cli"]
SEED = 8
FAKE_KEY = "sk-chaos-FAKE-0123456789abcdef"
# Per-request bookkeeping of the teacher (latency, retries, cache hits) differs between a disturbed
# and an undisturbed run by nature; the data tables must not.
VOLATILE_TABLES = {"teacher_usage"}


def tables_of(run_dir: RunDir) -> list[str]:
    return sorted({p.parent.name for p in run_dir.root.glob("*/part-*.parquet")} - VOLATILE_TABLES)


def assert_same_tables(got: RunDir, want: RunDir) -> None:
    assert tables_of(got) == tables_of(want)
    for table in tables_of(want):
        assert canonical(got, table) == canonical(want, table), f"table {table} differs from the undisturbed run"


def assert_clean(run_dir: RunDir) -> None:
    """No duplicate ids, and a reason + message on every failed row."""
    for table in tables_of(run_dir):
        rows = run_dir.read_rows(table)
        id_col = TABLES[table].names[0] if table in TABLES else None
        if id_col and id_col.endswith("_id") and table not in ("verdicts", "judge_verdicts", "reviews"):
            ids = [r[id_col] for r in rows]
            assert len(ids) == len(set(ids)), f"duplicate {id_col} in {table}"
        for row in rows:
            if row.get("status") == "failed":
                assert row.get("reason") and row.get("error"), f"{table}: a failed row without reason: {row}"
    # A SIGKILL between a temp file's creation and its rename leaves an orphan `.tmp-*` file; it is
    # never read (tables are `part-*.parquet`), so it cannot duplicate or lose a row.
    for orphan in run_dir.root.rglob(".tmp-*"):
        assert not orphan.name.startswith("part-")


def worker_processes(pid: int) -> list[psutil.Process]:
    """The run's pool workers (spawned Python processes)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for child in children:
        try:
            if "multiprocessing" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.Error:
            pass
    return out


class Controller:
    """Starts `vstw run` again and again, killing it at seeded random moments: after a random
    number of parts of a chosen stage's table exist (+ a random delay), either the whole run
    (SIGKILL to its process tree) or one worker process (the run goes on)."""

    def __init__(self, recipe: Path, run: str, env: dict, stages: list[str], seed: int = SEED):
        self.recipe, self.run, self.env, self.stages = recipe, run, env, stages
        self.rng = random.Random(seed)
        self.kills: list[tuple[str, str, int]] = []  # (stage, "run" | "worker", parts done at the kill)

    def start(self) -> subprocess.Popen:
        return subprocess.Popen([*VSTW, "run", str(self.recipe), "--run", self.run], env=self.env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def attempt(self, run_dir: RunDir, stage: str, kill_worker_first: bool = False) -> str:
        """One run of `vstw run` with a planned kill in `stage` (first, optionally, one of its
        worker processes; then the whole run); returns the run's output (its log)."""
        table = REGISTRY[stage].output_table
        proc = self.start()
        phase = "worker" if kill_worker_first else "run"
        planned, delay = None, 0.0
        deadline = time.monotonic() + 240
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                done = len(run_dir.existing_parts(table))
                if run_dir.is_complete(table):  # finished before the planned moment: kill now
                    kill_tree(proc.pid)
                    self.kills.append((stage, "run at stage end", done))
                    break
                plan = run_dir.read_plan(table)
                if plan and planned is None:
                    # kill once `planned` parts exist: at least one more than now (every run makes
                    # progress), at most half of what is left
                    planned = done + 1 + self.rng.randrange(0, max(1, (len(plan["parts"]) - done) // 2))
                    delay = self.rng.uniform(0.0, 0.4)
                if planned is not None and done >= planned:
                    time.sleep(delay)
                    if phase == "worker":
                        workers = worker_processes(proc.pid)
                        if not workers:
                            time.sleep(0.02)
                            continue
                        self.rng.choice(workers).send_signal(signal.SIGKILL)
                        self.kills.append((stage, "worker", done))
                        phase, planned = "run", None  # the run goes on; plan the whole-run kill
                        continue
                    kill_tree(proc.pid)
                    self.kills.append((stage, "run", len(run_dir.existing_parts(table))))
                    break
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                kill_tree(proc.pid)
            out, _ = proc.communicate(timeout=240)
        return out

    def finish(self) -> tuple[int, str]:
        proc = self.start()
        out, _ = proc.communicate(timeout=600)
        return proc.returncode, out


def chaos_recipe(base: dict, runs_part_size: int = 1) -> dict:
    return {**base, "runner": {"kind": "local", "workers": 2, "part_size": runs_part_size}}


def test_demo_pipeline_survives_random_sigkills(samples, tmp_path):
    demo = yaml.safe_load((ROOT / "tests" / "recipes" / "fixture-demo.yaml").read_text())
    # the CPU stages here; the teacher stages are killed in the test below, against a fake teacher
    demo["stages"] = [s for s in demo["stages"] if s["stage"] in ("ingest", "segment")]
    data = chaos_recipe(demo)
    path = tmp_path / "chaos.yaml"
    path.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    stages = [s["stage"] for s in data["stages"]]
    run_recipe(load_recipe(path), "reference", ROOT, runs, progress=False, echo=lambda *_: None)

    env = {**os.environ, "VSTW_RUNS": str(runs), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    ctl = Controller(path, "chaos", env, stages)
    run_dir = RunDir(runs / "chaos")
    # Kill the first unfinished stage again and again (the whole run, or for a CPU stage now and
    # then one worker), each time at a random point of the parts still to do.
    for _ in range(15):
        todo = [s for s in stages if not run_dir.is_complete(REGISTRY[s].output_table)]
        if len(ctl.kills) >= 6 or not todo:
            break
        stage = todo[0]
        ctl.attempt(run_dir, stage, kill_worker_first=REGISTRY[stage].kind == "cpu" and ctl.rng.random() < 0.4)
    assert len(ctl.kills) >= 5, f"only {len(ctl.kills)} kills landed: {ctl.kills}"
    assert len({s for s, _, _ in ctl.kills}) >= min(2, len(stages)), f"kills in one stage only: {ctl.kills}"

    code, out = ctl.finish()
    assert code == 0, out
    assert_same_tables(run_dir, RunDir(runs / "reference"))
    assert_clean(run_dir)
    print(f"kills (stage, what, parts done): {ctl.kills}")


# ---- the teacher stages, with a flapping teacher ------------------------------------------------
class FlappingTeacher(FakeTeacherServer):
    """The fake teacher on a fixed port that, while flapping, alternates between refusing
    connections (listening socket closed) and answering every chat request with 500."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.error_500 = False
        self.flaps = {"refused": 0, "500": 0}
        self._flapping = threading.Event()
        # The first chat requests always meet a 500, whatever the timing of the flaps: on a slow
        # machine the random flaps may all fall while the run is still decoding videos.
        self.forced_500 = 3

    async def _chat(self, writer, body):
        if self.forced_500 > 0:
            self.forced_500 -= 1
            self.outcomes["flap500"] += 1
            await self._write(writer, 500, {"error": {"message": "flapping", "type": "server_error"}})
            return True
        if self.error_500:
            self.outcomes["flap500"] += 1
            await self._write(writer, 500, {"error": {"message": "flapping", "type": "server_error"}})
            return True
        return await super()._chat(writer, body)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def refuse(self, seconds: float) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()

        self._call(close())
        time.sleep(seconds)
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True, backlog=512))
        self.flaps["refused"] += 1

    def answer_500(self, seconds: float) -> None:
        self.error_500 = True
        time.sleep(seconds)
        self.error_500 = False
        self.flaps["500"] += 1

    def flap_forever(self, rng: random.Random, stop: threading.Event) -> None:
        while not stop.wait(rng.uniform(0.05, 0.3)):
            if rng.random() < 0.5:
                self.refuse(rng.uniform(0.1, 0.5))
            else:
                self.answer_500(rng.uniform(0.1, 0.5))


def teacher_recipe(base_url: str) -> dict:
    stages = [{"stage": s, **TEACHER_MODES.get(s, {})} for s in ("ingest", "segment", "perceive", "graph", "qa", "think") if s in REGISTRY]
    return {
        "name": "chaos-teacher",
        "inputs": [{"manifest": "data/samples/manifest.jsonl"}],
        "allowed_roots": ["data/samples"],
        "runner": {"kind": "local", "workers": 2, "part_size": 1},
        # Retries outlast a flap (at most 0.6 s down): the flapping must cost time, never rows.
        "teacher": {"text": {"base_url": base_url, "model": "fake-teacher", "structured_output": "json_object_schema",
                             "api_key_env": "VSTW_CHAOS_KEY"},
                    "timeout_s": 10.0, "max_retries": 12, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "concurrency": 2},
        "stages": stages,
    }


def test_teacher_stages_survive_sigkills_and_a_flapping_teacher(samples, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "VSTW_RUNS": str(runs), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0", "VSTW_CHAOS_KEY": FAKE_KEY}
    with FakeTeacherServer() as calm:
        data = teacher_recipe(calm.base_url)
        os.environ["VSTW_CHAOS_KEY"] = FAKE_KEY
        try:
            run_recipe(parse_recipe(data), "reference", ROOT, runs, progress=False, echo=lambda *_: None)
        finally:
            del os.environ["VSTW_CHAOS_KEY"]
    reference = RunDir(runs / "reference")

    with FlappingTeacher(latency_s=0.05) as teacher:  # replies take a while: the flaps meet requests
        data = teacher_recipe(teacher.base_url)
        path = tmp_path / "chaos-teacher.yaml"
        path.write_text(yaml.safe_dump(data))
        stages = [s["stage"] for s in data["stages"]]
        ctl = Controller(path, "chaos", env, stages)
        stop = threading.Event()
        flapper = threading.Thread(target=teacher.flap_forever, args=(random.Random(SEED), stop), daemon=True)
        flapper.start()
        logs = []
        run_dir = RunDir(runs / "chaos")
        try:
            for stage in ("perceive", "graph", "qa", "think", "think"):
                if run_dir.is_complete(REGISTRY[stage].output_table):
                    continue
                logs.append(ctl.attempt(run_dir, stage))
            code, out = ctl.finish()
            logs.append(out)
        finally:
            stop.set()
            flapper.join()
        assert code == 0, out
        assert teacher.flaps["refused"] >= 1 and teacher.flaps["500"] >= 1, teacher.flaps
        assert teacher.outcomes["flap500"] >= 1, "the run met the 500s"
    assert len(ctl.kills) >= 2, ctl.kills
    assert_same_tables(run_dir, reference)
    assert_clean(run_dir)
    assert FAKE_KEY not in "\n".join(logs)
    for folder in (run_dir.root, reference.root):
        for file in folder.rglob("*"):
            if file.is_file():
                assert FAKE_KEY.encode() not in file.read_bytes(), f"the API key leaked into {file}"
    print(f"kills: {ctl.kills}; flaps: {teacher.flaps}; outcomes: {dict(teacher.outcomes)}")
