"""The local runner: every stage of a recipe on this machine, part by part, resumable.

CPU stages run in a process pool (decoding is CPU-bound and a decoder may crash: a crashed worker
costs only the items it held, each recorded `failed` with reason `worker_crashed`); I/O stages run
in a thread pool. Parts already on disk are skipped, so a killed run resumes where it stopped and a
finished run does no work.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import multiprocessing
import time
import traceback
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from tqdm.auto import tqdm

from curation.schemas import TABLES, to_table
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    name: str
    rows: list[dict]


def plan_parts(rows: list[dict], key: str, part_size: int) -> list[Part]:
    """Deterministic partition: same input rows -> same part names, whatever the run order."""
    ordered = sorted(rows, key=lambda r: (str(type(r[key])), r[key]))
    parts = []
    for start in range(0, len(ordered), part_size):
        chunk = ordered[start : start + part_size]
        digest = hashlib.sha1("\n".join(str(r[key]) for r in chunk).encode()).hexdigest()[:10]
        parts.append(Part(f"part-{start // part_size:05d}-{digest}", chunk))
    return parts


def _crash_row(stage: Stage, item: dict, reason: str, message: str) -> dict:
    if stage.failed_row is not None:
        return stage.failed_row(item, reason, message)
    return failed(reason, message, **{stage.key: item.get(stage.key)})


def call_stage(stage: Stage, rows: list[dict], params: StageParams, ctx: StageContext) -> list[dict]:
    """Run the stage function on a batch; if it raises (a bug, not a bad item), isolate the
    item(s) that raise so that the others are kept."""
    try:
        return stage.fn(rows, params, ctx)
    except Exception:
        if len(rows) == 1:
            err = traceback.format_exc(limit=3)
            return [_crash_row(stage, rows[0], "stage_error", err.strip().splitlines()[-1] + "\n" + err)]
    out: list[dict] = []
    for row in rows:
        out.extend(call_stage(stage, [row], params, ctx))
    return out


def stage_ref(stage: Stage) -> str:
    return stage.ref or stage.name


def call_stage_by_ref(ref: str, rows: list[dict], params: StageParams, ctx: StageContext) -> list[dict]:
    """Entry point in worker processes: stages are looked up by name or "module:attribute"
    (a Stage holds lambdas, which do not pickle)."""
    if ":" in ref:
        module, attr = ref.split(":", 1)
        stage = getattr(importlib.import_module(module), attr)
    else:
        # only this stage's module: importing the whole registry (teacher client, models) would
        # cost every worker a second of start-up
        stage = importlib.import_module(f"pipelines.stages.{ref}").STAGE
    return call_stage(stage, rows, params, ctx)


def finish_rows(rows: list[dict], run: str) -> list[dict]:
    for row in rows:
        row["run"] = run
        row.setdefault("status", "ok")
        row.setdefault("reason", None)
        row.setdefault("error", None)
    return rows


class LocalRunner:
    def __init__(self, workers: int = 2, part_size: int = 8, progress: bool = True):
        self.workers = max(1, workers)
        self.part_size = max(1, part_size)
        self.progress = progress

    # -------------------------------------------------------------------------------------
    def run_stage(self, stage: Stage, params: StageParams, run_dir: RunDir, ctx: StageContext, inputs: list[dict]) -> dict:
        """Run one stage to completion; returns its summary (also written as _SUCCESS.json)."""
        table = stage.output_table
        if run_dir.is_complete(table):
            return run_dir.read_success(table) | {"skipped": True}

        selected = [r for r in inputs if stage.select(r)]
        parts = plan_parts(selected, stage.key, self.part_size)
        plan = {p.name: len(p.rows) for p in parts}
        run_dir.write_plan(table, {"stage": stage.name, "parts": plan})
        run_dir.remove_stale_parts(table, set(plan))
        done = run_dir.existing_parts(table)
        pending = [p for p in parts if p.name not in done]

        started = time.monotonic()
        bar = tqdm(
            total=len(selected),
            initial=sum(plan[name] for name in done if name in plan),
            desc=f"{stage.name:>9}",
            unit="item",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            for part, rows in self._execute(stage, pending, params, ctx):
                rows = finish_rows(rows, ctx.run)
                run_dir.write_part(table, part.name, to_table(rows, TABLES[table]))
                bar.update(len(part.rows))
        finally:
            bar.close()

        if not parts:  # an empty stage still leaves a readable (empty) table behind
            run_dir.write_part(table, "part-00000-empty", TABLES[table].empty_table())
        if stage.finalize is not None:
            stage.finalize(run_dir, params)
        summary = summarize(run_dir, table)
        summary |= {
            "stage": stage.name,
            "parts": len(parts),
            "parts_computed": len(pending),
            "items": len(selected),
            "seconds": round(time.monotonic() - started, 3),
        }
        run_dir.write_success(table, summary)
        return summary

    # -------------------------------------------------------------------------------------
    def _executor(self, stage: Stage) -> Executor:
        if stage.kind == "cpu" and self.workers > 1:
            # spawn, not fork: workers must not inherit threads or open decoders of the parent.
            return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return ThreadPoolExecutor(self.workers if stage.kind == "io" else 1)

    def _execute(self, stage: Stage, parts: list[Part], params: StageParams, ctx: StageContext):
        """Yield (part, output rows) as parts finish, surviving worker crashes."""
        if not parts:
            return
        retry: list[Part] = []
        executor = self._executor(stage)
        try:
            futures: dict[Future, Part] = {executor.submit(call_stage_by_ref, stage_ref(stage), p.rows, params, ctx): p for p in parts}
            for future in as_completed(futures):
                part = futures[future]
                try:
                    yield part, future.result()
                except BrokenProcessPool:
                    retry.append(part)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        # A worker died: parts it took down with it are retried alone, and a part that still
        # crashes is split item by item, so only the item that crashes is lost (recorded failed).
        for part in retry:
            yield part, rows_despite_crashes(stage, part, lambda items: self._isolated(stage, items, params, ctx))

    @staticmethod
    def _isolated(stage: Stage, items: list[dict], params: StageParams, ctx: StageContext) -> list[dict] | None:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                return pool.submit(call_stage_by_ref, stage_ref(stage), items, params, ctx).result()
            except BrokenProcessPool:
                return None


CRASH_MESSAGE = "the worker process died while processing this item (decoder crash or out of memory)"


def rows_despite_crashes(stage: Stage, part: Part, run_isolated) -> list[dict]:
    """A part whose worker died: run it alone; if it still crashes, item by item, so that only the
    crashing item is lost (recorded `worker_crashed`). `run_isolated(items)` returns the rows, or
    None when its worker died. Shared by every runner."""
    rows = run_isolated(part.rows)
    if rows is not None:
        return rows
    rows = []
    for item in part.rows:
        one = run_isolated([item])
        rows.extend(one if one is not None else [_crash_row(stage, item, "worker_crashed", CRASH_MESSAGE)])
    return rows


def summarize(run_dir: RunDir, table: str) -> dict:
    """Rows ok / failed (by reason) of a table, read back from its parts."""
    if not run_dir.has_table(table):
        return {"rows": 0, "ok": 0, "failed": 0, "failed_by_reason": {}}
    data = run_dir.read_table(table, ["status", "reason"]).to_pylist()
    by_reason: dict[str, int] = {}
    for row in data:
        if row["status"] != "ok":
            by_reason[row["reason"] or "unknown"] = by_reason.get(row["reason"] or "unknown", 0) + 1
    n_failed = sum(by_reason.values())
    return {"rows": len(data), "ok": len(data) - n_failed, "failed": n_failed, "failed_by_reason": dict(sorted(by_reason.items()))}
