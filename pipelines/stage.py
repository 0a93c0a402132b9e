"""The stage contract (docs/architecture.md).

A stage is a plain function over a batch of input records (dicts) that returns output records
(dicts), one or more per input, each with `status` "ok" or "failed" (+ `reason`, `error`). It never
raises for one bad item. Runners (local, later Ray Data) decide how batches are formed and where
they run; the function does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class StageParams(BaseModel):
    """Base of every stage's parameters: unknown keys are refused (typos must not pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields holding a local path: recipe.yaml and the dataset card write them relative to the
    # project (pipelines/recipe.py portable_recipe), never as this machine's absolute path.
    path_fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class StageContext:
    """What a stage function may know about where it runs (all plain, picklable values)."""

    run: str
    run_root: str  # the run folder: a local path or a URI (pipelines/rundir.py)
    project_root: Path
    recipe: dict = field(default_factory=dict)  # the resolved recipe as plain data


StageFn = Callable[[list[dict], StageParams, StageContext], list[dict]]


@dataclass(frozen=True)
class Stage:
    name: str
    output_table: str
    fn: StageFn
    params_model: type[StageParams]
    key: str  # id column of the input records: parts are made from it
    input_table: str | None = None  # None: the stage reads the recipe's inputs (ingest)
    # The other tables the stage reads whole and cannot do without (a recipe must make them before it).
    reads: tuple[str, ...] = ()
    # Tables read when the run has them: a recipe that makes one only after the stage is refused,
    # since the stage would silently run without it.
    reads_if_present: tuple[str, ...] = ()
    # Tables that only some parameter values need: table -> why (export: the verdicts of the checks
    # it requires), for the message that refuses a recipe without them.
    reads_for: Callable[[StageParams], dict[str, str]] | None = None
    kind: Literal["cpu", "io"] = "cpu"  # cpu: processes; io: threads
    # Builds the output row recorded for an input item whose processing crashed the worker.
    failed_row: Callable[[dict, str, str], dict] | None = None
    # Run once after all parts are written (e.g. cross-item dedup); must be idempotent.
    finalize: Callable[["object", StageParams], None] | None = None
    # Which input rows the stage processes (default: status ok).
    select: Callable[[dict], bool] = lambda row: row.get("status", "ok") == "ok"
    # Builds the input records from the run folder when they are not simply the rows of
    # `input_table` (e.g. one record per window, holding its clips and captions). A
    # `pipelines.streaming.PartInputs` makes them part by part instead: the runner plans parts
    # from the input keys and each part's records are built from only the rows it needs.
    load_inputs: Callable[["object", StageParams], object] | None = None
    # "module:attribute" of a stage that is not in the registry (worker processes import it).
    ref: str | None = None

    def required_tables(self) -> tuple[str, ...]:
        """The tables that must exist before the stage runs, whatever its parameters."""
        return tuple(t for t in (self.input_table, *self.reads) if t)

    def needs(self, params: StageParams) -> dict[str, str]:
        """table -> why (or ""), for every table the stage cannot run without under `params`."""
        out = dict.fromkeys(self.required_tables(), "")
        return out | (self.reads_for(params) if self.reads_for is not None else {})


def failed(reason: str, error: str, **fields) -> dict:
    """An output row for an item that failed, with a stable reason code and a message."""
    return {**fields, "status": "failed", "reason": reason, "error": error}
