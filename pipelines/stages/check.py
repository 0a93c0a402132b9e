"""check: rule checks on every chain -> `verdicts` (one row per chain x check).

Thresholds come from the recipe (curation.checks.ChecksConfig). Each input record is one chain
with what its checks need: the window's clips in order (from `clips`, else the graph's clip_ids:
one thought per clip is checked against them), the window's graph, the captions of all its clips
(memory and grounding read every clip, not only the thought's) and of the video's clips after the
window (what they show is the future of every thought of the window), the video's real duration and,
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
    window_clips: dict[str, list[tuple[int, str]]] = {}
    video_clips: dict[str, list[tuple[int, str]]] = {}
    if run_dir.has_table("clips"):
        for clip in run_dir.read_rows("clips", ["clip_id", "video_id", "window_id", "index", "status"]):
            if clip["status"] == "ok" and clip["window_id"]:
                window_clips.setdefault(clip["window_id"], []).append((clip["index"], clip["clip_id"]))
                video_clips.setdefault(clip["video_id"], []).append((clip["index"], clip["clip_id"]))
    for clips in (*window_clips.values(), *video_clips.values()):
        clips.sort()
    durations = {}
    if run_dir.has_table("videos"):
        durations = {v["video_id"]: v["duration_s"] for v in run_dir.read_rows("videos", ["video_id", "duration_s", "status"]) if v["status"] == "ok"}
    duplicate_of = find_duplicates(chains, params.dedup) if "dedup" in params.checks else {}
    records = []
    for chain in chains:
        # The probed duration of the file is the truth; the chain's copy may be stale.
        if durations.get(chain["video_id"]) is not None:
            chain["video_duration_s"] = durations[chain["video_id"]]
        graph = graphs.get(chain["window_id"])
        in_window = window_clips.get(chain["window_id"], [])
        window = [c for _, c in in_window] or list((graph or {}).get("clip_ids") or [])
        # The video's clips after the window are the future of every thought of the window: what
        # they show is a leak, not an unknown thing.
        last = in_window[-1][0] if in_window else None
        later = [c for i, c in video_clips.get(chain["video_id"], []) if last is not None and i > last]
        clip_ids = list(dict.fromkeys(window + [t.get("clip_id") for t in chain.get("thoughts") or []] + later))
        records.append(
            {
                "chain_id": chain["chain_id"],
                "chain": chain,
                "graph": graph,
                "captions": {c: captions[c] for c in clip_ids if c in captions},
                "clip_ids": window or None,
                "later_clip_ids": later,
                "duplicate_of": duplicate_of.get(chain["chain_id"]),
            }
        )
    return records


def check_batch(records: list[dict], params: CheckParams, ctx: StageContext) -> list[dict]:
    with gc_paused():  # checks allocate many small tuples and create no cycles
        return _check_records(records, params)


def _check_records(records: list[dict], params: CheckParams) -> list[dict]:
    rows = []
    indexes: dict[str, object] = {}  # the chains of one window share its index (graph + captions)
    for record in records:
        chain = record["chain"]
        clip_ids = record.get("clip_ids")
        key = chain["window_id"]
        if key not in indexes:
            order = (clip_ids or [t.get("clip_id") for t in chain.get("thoughts") or []]) + list(record.get("later_clip_ids") or [])
            indexes[key] = build_graph_index(record["graph"], order, record["captions"])
        index = indexes[key]
        dup = {record["chain_id"]: record["duplicate_of"]} if record["duplicate_of"] else {}
        rows.extend(run_checks(chain, params, index, record["captions"], dup if "dedup" in params.checks else None, clip_ids=clip_ids))
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
    reads_if_present=("graphs", "captions", "clips", "videos"),
    kind="cpu",
    failed_row=check_failed_row,
    load_inputs=load_check_inputs,
    finalize=finalize_check,
)
