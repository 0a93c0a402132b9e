"""check: rule checks on every chain -> `verdicts` (one row per chain x check).

Thresholds come from the recipe (curation.checks.ChecksConfig). Each input record is one chain
with what its checks need: the window's clips in order (from `clips`, else the graph's clip_ids:
one thought per clip is checked against them), the window's graph, the captions of all its clips
(memory and grounding read every clip, not only the thought's) and of the video's clips after the
window (what they show is the future of every thought of the window), the video's real duration and,
for dedup, the chain it duplicates.

The inputs stream (pipelines/streaming.py): a part holds whole videos, and its records are built
from the rows of its own videos only. Dedup compares a chain with the chains of its own video
(`scope: video`, the default: all of them are in the part); with `scope: corpus`, a corpus-wide
step first keeps only compact signatures of every question (curation/checks/dedup.py) and hands
each part the duplicates among its chains.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from curation.checks import ChecksConfig, build_graph_index, run_checks
from curation.checks.dedup import DedupIndex, find_duplicates
from pipelines.memory import gc_paused
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.streaming import Join, PartInputs, PartRows, Staging


class CheckParams(StageParams, ChecksConfig):
    stage: Literal["check"] = "check"


DUPLICATES = "duplicates"  # the staged table of corpus-wide dedup: chain_id -> the chain it repeats


# Parts hold whole videos: a chain's graph, captions, clips (its window's and the later ones of
# its video) and video row are among the part's own rows.
CHECK_JOINS = (
    Join("graphs", on="window_id"),
    Join("captions", on="video_id", columns=("clip_id", "caption", "entities", "status")),
    Join("clips", on="video_id", columns=("clip_id", "video_id", "window_id", "index", "status")),
    Join("videos", on="video_id", columns=("video_id", "duration_s", "status")),
)


def corpus_dedup(params: CheckParams) -> bool:
    return "dedup" in params.checks and params.dedup.scope == "corpus"


def prepare_check(run_dir: RunDir, params: CheckParams, staging: Staging, parts: list[int]) -> None:
    """Corpus-wide dedup (`scope: corpus`): compact signatures of every question, part by part;
    then each part's duplicates, written beside its rows."""
    index = DedupIndex(params.dedup)
    for part in parts:
        chains = staging.rows(part).table("chains").select(["chain_id", "video_id", "qa", "status"]).to_pylist()
        index.add([c for c in chains if c["status"] == "ok"])
    duplicate_of = index.duplicates()
    staging.write(DUPLICATES, ((part, _duplicates_table(staging.rows(part), duplicate_of)) for part in parts))


def _duplicates_table(rows: PartRows, duplicate_of: dict[str, str]) -> pa.Table:
    ids = [c for c in rows.table("chains")["chain_id"].to_pylist() if c in duplicate_of]
    return pa.table({"chain_id": pa.array(ids, pa.string()), "duplicate_of": pa.array([duplicate_of[c] for c in ids], pa.string())})


def build_check_records(rows: PartRows, params: CheckParams) -> list[dict]:
    """One record per ok chain of the part, joined against the part's own rows (module doc)."""
    chains = [c for c in rows.rows("chains") if c["status"] == "ok"]
    graphs = {g["window_id"]: g for g in rows.rows("graphs") if g["status"] == "ok"}
    captions = {row["clip_id"]: row for row in rows.rows("captions") if row["status"] == "ok"}
    window_clips: dict[str, list[tuple[int, str]]] = {}
    video_clips: dict[str, list[tuple[int, str]]] = {}
    for clip in rows.rows("clips"):
        if clip["status"] == "ok" and clip["window_id"]:
            window_clips.setdefault(clip["window_id"], []).append((clip["index"], clip["clip_id"]))
            video_clips.setdefault(clip["video_id"], []).append((clip["index"], clip["clip_id"]))
    for clips in (*window_clips.values(), *video_clips.values()):
        clips.sort()
    durations = {v["video_id"]: v["duration_s"] for v in rows.rows("videos") if v["status"] == "ok"}
    duplicate_of = part_duplicates(rows, chains, params)
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


def part_duplicates(rows: PartRows, chains: list[dict], params: CheckParams) -> dict[str, str]:
    """chain_id -> the kept chain it repeats, for the chains of this part."""
    if "dedup" not in params.checks:
        return {}
    if corpus_dedup(params):
        return {r["chain_id"]: r["duplicate_of"] for r in rows.rows(DUPLICATES)}
    return find_duplicates(chains, params.dedup)  # scope video: the video's chains are all here


CHECK_INPUTS = PartInputs(
    table="chains",
    key="chain_id",
    group="video_id",
    build=build_check_records,
    joins=CHECK_JOINS,
    prepare=prepare_check,
    prepare_when=corpus_dedup,
)


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
    load_inputs=CHECK_INPUTS,
)
