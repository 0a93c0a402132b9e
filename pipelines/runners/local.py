"""The local runner: every stage of a recipe on this machine, part by part, resumable.

CPU stages run in a process pool (decoding is CPU-bound and a decoder may crash: a crashed worker
costs only the items it held, each recorded `failed` with reason `worker_crashed`); I/O stages run
in a thread pool. Parts already on disk are skipped, so a killed run resumes where it stopped and a
finished run does no work.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import time
import traceback
from collections import Counter
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import pyarrow.compute as pc
from tqdm.auto import tqdm

from curation.schemas import TABLES, to_table
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.streaming import Part, StreamedInputs, load_part, part_name

log = logging.getLogger(__name__)


def plan_parts(rows: list[dict], key: str, part_size: int) -> list[Part]:
    """Deterministic partition: same input rows -> same part names, whatever the run order."""
    ordered = sorted(rows, key=lambda r: (str(type(r[key])), r[key]))
    parts = []
    for start in range(0, len(ordered), part_size):
        chunk = ordered[start : start + part_size]
        parts.append(Part(part_name(start // part_size, (r[key] for r in chunk)), chunk, len(chunk)))
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


def stage_by_ref(ref: str) -> Stage:
    """Stages are looked up by name or "module:attribute" in workers (a Stage holds lambdas,
    which do not pickle)."""
    if ":" in ref:
        module, attr = ref.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    # only this stage's module: importing the whole registry (teacher client, models) would
    # cost every worker a second of start-up
    return importlib.import_module(f"pipelines.stages.{ref}").STAGE


def call_stage_by_ref(ref: str, payload, params: StageParams, ctx: StageContext) -> list[dict]:
    """Entry point in worker processes: `payload` is a part's input rows, or the staged part its
    rows are read from here (streamed inputs: the driver never holds them)."""
    stage = stage_by_ref(ref)
    return call_stage(stage, load_part(stage, payload, params), params, ctx)


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
    def run_stage(self, stage: Stage, params: StageParams, run_dir: RunDir, ctx: StageContext, inputs) -> dict:
        """Run one stage to completion; returns its summary (also written as _SUCCESS.json).
        `inputs`: the input records, or `StreamedInputs` (pipelines/streaming.py), which are
        planned from their keys and read part by part."""
        table = stage.output_table
        if run_dir.is_complete(table):
            return run_dir.read_success(table) | {"skipped": True}

        streamed = isinstance(inputs, StreamedInputs)
        if streamed:
            parts = inputs.parts(self.part_size)
            items = inputs.items
        else:
            selected = [r for r in inputs if stage.select(r)]
            parts, items = plan_parts(selected, stage.key, self.part_size), len(selected)
        plan = {p.name: p.size for p in parts}
        run_dir.write_plan(table, {"stage": stage.name, "parts": plan})
        run_dir.remove_stale_parts(table, set(plan))
        done = run_dir.existing_parts(table)
        pending = [p for p in parts if p.name not in done]

        started = time.monotonic()
        bar = tqdm(
            total=items,
            initial=sum(plan[name] for name in done if name in plan),
            desc=f"{stage.name:>9}",
            unit="item",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            if streamed:
                pending = inputs.stage(parts, pending, table)
            for part, rows in self._execute(stage, pending, params, ctx):
                rows = finish_rows(rows, ctx.run)
                run_dir.write_part(table, part.name, to_table(rows, TABLES[table]))
                bar.update(part.size)
        finally:
            bar.close()
            if streamed:
                inputs.close()

        if not parts:  # an empty stage still leaves a readable (empty) table behind
            run_dir.write_part(table, "part-00000-empty", TABLES[table].empty_table())
        if stage.finalize is not None:
            stage.finalize(run_dir, params)
        summary = summarize(run_dir, table)
        summary |= {
            "stage": stage.name,
            "parts": len(parts),
            "parts_computed": len(pending),
            "items": items,
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
            futures: dict[Future, Part] = {executor.submit(call_stage_by_ref, stage_ref(stage), p.payload, params, ctx): p for p in parts}
            for future in as_completed(futures):
                part = futures.pop(future)  # a finished part's rows are not kept once written
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    retry.append(part)
                    continue
                yield part, rows
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        # A worker died: parts it took down with it are retried alone, and a part that still
        # crashes is split item by item, so only the item that crashes is lost (recorded failed).
        for part in retry:
            yield part, rows_despite_crashes(stage, part, lambda payload: self._isolated(stage, payload, params, ctx), params)

    @staticmethod
    def _isolated(stage: Stage, payload, params: StageParams, ctx: StageContext) -> list[dict] | None:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                return pool.submit(call_stage_by_ref, stage_ref(stage), payload, params, ctx).result()
            except BrokenProcessPool:
                return None


CRASH_MESSAGE = "the worker process died while processing this item (decoder crash or out of memory)"


def rows_despite_crashes(stage: Stage, part: Part, run_isolated, params: StageParams) -> list[dict]:
    """A part whose worker died: run it alone; if it still crashes, item by item, so that only the
    crashing item is lost (recorded `worker_crashed`). `run_isolated(payload)` returns the rows, or
    None when its worker died. Shared by every runner."""
    rows = run_isolated(part.payload)
    if rows is not None:
        return rows
    rows = []
    for item in load_part(stage, part.payload, params):  # a staged part's items, read here
        one = run_isolated([item])
        rows.extend(one if one is not None else [_crash_row(stage, item, "worker_crashed", CRASH_MESSAGE)])
    return rows


def summarize(run_dir: RunDir, table: str) -> dict:
    """Rows ok / failed (by reason) of a table, counted part by part from two columns."""
    rows, by_reason = 0, Counter()
    for path in run_dir.part_files(table):
        data = run_dir.read_part(path, ["status", "reason"])
        rows += data.num_rows
        failed = data.filter(pc.invert(pc.fill_null(pc.equal(data["status"], "ok"), False)))
        reasons = pc.if_else(pc.fill_null(pc.equal(failed["reason"], ""), True), "unknown", failed["reason"])
        values, counts = pc.value_counts(reasons).flatten()
        by_reason.update(dict(zip(values.to_pylist(), counts.to_pylist())))
    n_failed = sum(by_reason.values())
    return {"rows": rows, "ok": rows - n_failed, "failed": n_failed, "failed_by_reason": dict(sorted(by_reason.items()))}
