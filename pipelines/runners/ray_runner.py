"""The Ray runner: the same stage functions, the same run folder, on a Ray cluster (Ray Data).

Only *where a part is computed* changes; everything else is the local runner's
(`LocalRunner.run_stage`): the deterministic parts (`plan_parts`), `_parts.json`, skipping parts
already on disk (resume), atomic part writes, `finalize`, `_SUCCESS.json` and the summary. So a run
can be started under one runner and resumed under the other, and both give the same tables.

How a stage is mapped onto Ray Data (`Dataset.map_batches`, one batch = one part):
- kind "cpu" (decoding, checks): Ray tasks, `num_cpus` each (default 1);
- kind "io" (teacher calls): a fixed pool of actors, each running up to `threads` parts at once
  in threads, so the teacher sees at most actors x threads concurrent parts;
- kind "model" (a model held in memory, e.g. a VST judge): a pool of actors that keep the model
  loaded between parts, with `num_gpus=1` each when the cluster has GPUs.
Per-stage overrides come from the recipe: `runner.resources.<stage>`.

Parts travel as pickled bytes (input rows in, output rows out) so that any row shape passes
through Ray Data unchanged; the driver writes each part as soon as it comes back, so a killed run
keeps every finished part. A stage whose inputs stream (pipelines/streaming.py) sends each task
only its `StagedPart`: the task reads its rows from the run's staging folder, so the driver never
gathers a table. Only the driver writes the run folder's tables: workers need the input videos
(same paths on every node), the run's staging folder (streamed stages) and, for teacher stages,
the run's teacher cache.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipelines.runners.local import LocalRunner, Part, call_stage_by_ref, rows_despite_crashes, stage_ref
from pipelines.stage import Stage, StageContext, StageParams

log = logging.getLogger(__name__)

DEFAULT_IO_ACTORS = 2
DEFAULT_IO_THREADS = 4


class RayRunnerError(RuntimeError):
    """Ray is missing or the cluster cannot be reached; the message is meant for the user."""


def _run_part(batch: dict, stage_ref_: str, params: StageParams, ctx: StageContext) -> dict:
    """The map_batches function (tasks): each input row is one part, pickled."""
    outputs = [pickle.dumps(call_stage_by_ref(stage_ref_, pickle.loads(payload), params, ctx)) for payload in batch["payload"]]
    return {"part": list(batch["part"]), "payload": outputs}


class _PartWorker:
    """The map_batches class (actor pools): the process lives on between parts, so whatever a
    stage keeps per process (a loaded model, an HTTP client) is reused."""

    def __init__(self, stage_ref_: str, params: StageParams, ctx: StageContext):
        self.args = (stage_ref_, params, ctx)

    def __call__(self, batch: dict) -> dict:
        return _run_part(batch, *self.args)


@contextmanager
def loopback_only():
    """While a local Ray starts: keep its node on 127.0.0.1, so that every server it starts (GCS,
    raylet, workers, agents) listens on loopback only. Ray turns a node address of 127.0.0.1
    into the machine's network address unless it runs in its single-machine mode (the one it
    uses on macOS and Windows, switched by RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when Ray is
    imported; hence the constant itself). tests/test_bind.py checks the sockets from the OS."""
    import ray._private.ray_constants as constants

    saved = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved


def start_local_ray(**kwargs) -> None:
    """ray.init for a Ray on this machine only (no address), on 127.0.0.1."""
    import ray

    with loopback_only():
        ray.init(_node_ip_address="127.0.0.1", **kwargs)


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayRunnerError('the Ray runner needs Ray Data: pip install "ray[data]==2.60.0"') from None
    return ray


class RayRunner(LocalRunner):
    """`run_stage` is LocalRunner's; only `_execute` (where parts are computed) differs."""

    def __init__(
        self,
        address: str | None = None,
        workers: int = 2,
        part_size: int = 8,
        progress: bool = True,
        resources: dict[str, dict] | None = None,
        project_root: Path | None = None,
        object_store_mb: int | None = None,
    ):
        super().__init__(workers=workers, part_size=part_size, progress=progress)
        self.address = address
        self.resources = resources or {}
        self.project_root = project_root
        self.object_store_mb = object_store_mb
        self._started_ray = False

    # ---- the Ray session ----------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster at `address` ("auto" = the one `ray start` made on this machine), or
        start a local Ray with `workers` CPUs; an already initialised Ray is used as it is."""
        ray = _import_ray()
        if ray.is_initialized():
            self._configure_progress()
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address:
            kwargs["address"] = self.address
            if self.project_root is not None:
                # Ship our own packages to the cluster's workers (their dependencies must be
                # installed there: same image or same `pip install`).
                kwargs["runtime_env"] = {"py_modules": [str(self.project_root / "curation"), str(self.project_root / "pipelines")]}
        else:
            kwargs["num_cpus"] = self.workers
            if self.object_store_mb:
                kwargs["object_store_memory"] = self.object_store_mb * 1024 * 1024
        try:
            if self.address:
                ray.init(**kwargs)
            else:  # a local Ray is for this machine only
                start_local_ray(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or "a local Ray"
            raise RayRunnerError(f"cannot start or reach Ray at {where}: {str(err).splitlines()[0]}") from None
        self._started_ray = True
        self._configure_progress()

    def _configure_progress(self) -> None:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = self.progress
        if not self.progress:  # quiet runs (tests, CI): Ray Data's per-dataset log lines too
            logging.getLogger("ray.data").setLevel(logging.WARNING)

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> "RayRunner":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- where parts run ----------------------------------------------------------------
    def map_options(self, stage: Stage) -> dict:
        """map_batches keyword arguments for a stage: its kind, then the recipe's overrides."""
        import ray
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        spec = dict(self.resources.get(stage.name) or {})
        kind = getattr(stage, "kind", "cpu")
        if kind == "model":
            has_gpus = ray.cluster_resources().get("GPU", 0) > 0
            num_gpus = spec.get("num_gpus", 1 if has_gpus else 0)
            actors = spec.get("concurrency") or (int(ray.cluster_resources().get("GPU", 1)) if has_gpus else 1)
            return {"compute": ActorPoolStrategy(size=actors), "num_cpus": spec.get("num_cpus", 1), "num_gpus": num_gpus, "cls": True}
        if kind == "io":
            threads = spec.get("threads") or DEFAULT_IO_THREADS
            strategy = ActorPoolStrategy(
                size=spec.get("concurrency") or DEFAULT_IO_ACTORS,
                max_concurrent_calls_per_actor=threads,
                enable_true_multi_threading=True,
                max_tasks_in_flight_per_actor=threads,
            )
            return {"compute": strategy, "num_cpus": spec.get("num_cpus", 0.25), "num_gpus": spec.get("num_gpus", 0), "cls": True}
        size = spec.get("concurrency")
        return {"compute": TaskPoolStrategy(size=size) if size else None, "num_cpus": spec.get("num_cpus", 1),
                "num_gpus": spec.get("num_gpus", 0), "cls": False}

    def _execute(self, stage: Stage, parts: list[Part], params: StageParams, ctx: StageContext) -> Iterator[tuple[Part, list[dict]]]:
        if not parts:
            return
        self.connect()
        import ray

        by_name = {p.name: p for p in parts}
        opts = self.map_options(stage)
        # A part of streamed inputs travels as its StagedPart (a few numbers): the worker reads its
        # rows from the run's staging folder, so the driver never gathers a table.
        items = [{"part": p.name, "payload": pickle.dumps(p.payload)} for p in parts]
        # One block per part: every part can be scheduled on its own worker.
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        common = {"batch_size": 1, "batch_format": "numpy", "num_cpus": opts["num_cpus"], "num_gpus": opts["num_gpus"]}
        if opts["compute"] is not None:
            common["compute"] = opts["compute"]
        args = (stage_ref(stage), params, ctx)
        # No retries: Ray would retry a part whose item kills its worker forever (an actor pool
        # restarts and retries without end); a dead worker stops the dataset and is handled below.
        with warnings.catch_warnings():  # these options are still ray_remote_args in Ray 2.60
            warnings.simplefilter("ignore", DeprecationWarning)
            if opts["cls"]:
                ds = ds.map_batches(_PartWorker, fn_constructor_args=args, max_restarts=0, **common)
            else:
                ds = ds.map_batches(_run_part, fn_args=args, max_retries=0, **common)

        written: set[str] = set()
        try:
            for row in ds.iter_rows():
                name = str(row["part"])
                written.add(name)
                yield by_name[name], pickle.loads(row["payload"])
        except (ray.exceptions.RayError, RuntimeError) as err:
            # A worker died (decoder crash, out of memory, node lost): Ray Data stops the whole
            # dataset. Parts already written are kept; the others are redone one by one, and a
            # part that still kills its worker is split, so only the item that crashes is lost.
            log.warning("stage %s: Ray Data stopped (%s); redoing %d part(s) one by one", stage.name,
                        str(err).splitlines()[0][:200], len(parts) - len(written))
            for part in parts:
                if part.name in written:
                    continue
                yield part, rows_despite_crashes(stage, part, lambda payload: self._isolated_remote(stage, payload, params, ctx), params)

    def _isolated_remote(self, stage: Stage, payload, params: StageParams, ctx: StageContext) -> list[dict] | None:
        """Run a part (its rows or its staged part) as one Ray task that is not retried; None
        when its worker dies."""
        import ray

        opts = self.map_options(stage)
        task = ray.remote(max_retries=0, num_cpus=opts["num_cpus"], num_gpus=opts["num_gpus"])(call_stage_by_ref)
        try:
            return ray.get(task.remote(stage_ref(stage), payload, params, ctx))
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError):
            return None


def runner_from_spec(spec, project_root: Path | None = None, progress: bool = True) -> LocalRunner:
    """The runner a recipe's `runner:` block asks for (RunnerSpec, pipelines/recipe.py)."""
    if getattr(spec, "kind", "local") != "ray":
        return LocalRunner(workers=spec.workers, part_size=spec.part_size, progress=progress)
    resources = {name: r.model_dump(exclude_none=True) for name, r in (spec.resources or {}).items()}
    address = spec.address or os.environ.get("RAY_ADDRESS") or None
    return RayRunner(address=address, workers=spec.workers, part_size=spec.part_size, progress=progress,
                     resources=resources, project_root=project_root, object_store_mb=spec.object_store_mb)
