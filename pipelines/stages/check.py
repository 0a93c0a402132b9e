"""check: rule checks on every chain -> `verdicts` (one row per chain x check).

Thresholds come from the recipe (curation.checks.ChecksConfig). Each input record is one chain
with what its checks need: the window's graph, the clips' captions, the video's real duration and,
for the corpus-wide dedup, the chain it duplicates (computed once over all chains up front).
"""

from __future__ import annotations

from typing import Literal

from curation.checks import ChecksConfig, build_graph_index, find_duplicates, run_checks
from pipelines.rundir import RunDir
from pipelines.stages.export import gc_paused, hold_inputs, release_inputs
from pipelines.stage import Stage, StageContext, StageParams, failed


class CheckParams(StageParams, ChecksConfig):
    stage: Literal["check"] = "check"


def load_check_inputs(run_dir: RunDir, params: CheckParams) -> list[dict]:
    if run_dir.is_complete("verdicts"):
        return []  # the runner skips a finished stage
    with gc_paused():
        records = _load_check_inputs(run_dir, params)
    hold_inputs()
    return records


def finalize_check(run_dir: RunDir, params: CheckParams) -> None:
    release_inputs()


def _load_check_inputs(run_dir: RunDir, params: CheckParams) -> list[dict]:
    chains = [c for c in run_dir.read_rows("chains") if c["status"] == "ok"]
    graphs = {g["window_id"]: g for g in run_dir.read_rows("graphs") if g["status"] == "ok"} if run_dir.has_table("graphs") else {}
    captions: dict[str, dict] = {}
    if run_dir.has_table("captions"):
        for row in run_dir.read_rows("captions", ["clip_id", "caption", "entities", "status"]):
            if row["status"] == "ok":
                captions[row["clip_id"]] = row
    durations = {}
    if run_dir.has_table("videos"):
        durations = {v["video_id"]: v["duration_s"] for v in run_dir.read_rows("videos", ["video_id", "duration_s", "status"]) if v["status"] == "ok"}
    duplicate_of = find_duplicates(chains, params.dedup) if "dedup" in params.checks else {}
    records = []
    for chain in chains:
        # The probed duration of the file is the truth; the chain's copy may be stale.
        if durations.get(chain["video_id"]) is not None:
            chain["video_duration_s"] = durations[chain["video_id"]]
        clip_ids = [t.get("clip_id") for t in chain.get("thoughts") or []]
        records.append(
            {
                "chain_id": chain["chain_id"],
                "chain": chain,
                "graph": graphs.get(chain["window_id"]),
                "captions": {c: captions[c] for c in clip_ids if c in captions},
                "duplicate_of": duplicate_of.get(chain["chain_id"]),
            }
        )
    return records


def check_batch(records: list[dict], params: CheckParams, ctx: StageContext) -> list[dict]:
    with gc_paused():  # checks allocate many small tuples and create no cycles
        return _check_records(records, params)


def _check_records(records: list[dict], params: CheckParams) -> list[dict]:
    rows = []
    indexes: dict[str, object] = {}  # the chains of one window share its graph index
    for record in records:
        chain = record["chain"]
        index = None
        if record["graph"] is not None:
            key = chain["window_id"]
            if key not in indexes:
                indexes[key] = build_graph_index(record["graph"], [t.get("clip_id") for t in chain.get("thoughts") or []])
            index = indexes[key]
        dup = {record["chain_id"]: record["duplicate_of"]} if record["duplicate_of"] else {}
        rows.extend(run_checks(chain, params, index, record["captions"], dup if "dedup" in params.checks else None))
    return rows


def check_failed_row(record: dict, reason: str, message: str) -> dict:
    return failed(reason, message, chain_id=record.get("chain_id"), check="all")


STAGE = Stage(
    name="check",
    output_table="verdicts",
    fn=check_batch,
    params_model=CheckParams,
    key="chain_id",
    input_table="chains",
    kind="cpu",
    failed_row=check_failed_row,
    load_inputs=load_check_inputs,
    finalize=finalize_check,
)
