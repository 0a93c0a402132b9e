"""export: checked (and reviewed) chains -> files VST's trainers load unchanged.

    exports/videos/<video_id>.<ext>            links (or copies) of the source videos
    exports/videos/<video_id>-w<ms>-<ms>.mp4   RL: cuts of the windows that are not the whole video
    exports/sft/<subset>_with_seeks.jsonl      SFT records, one file per subset (spec section 2)
    exports/sft/<subset>_seeks.jsonl           their byte-offset seek index
    exports/sft/<subset>_provenance.jsonl      line i: run, chain id, teacher, prompt versions of record i
    exports/rl/train.parquet                   RL rows with exactly VST's columns (spec section 3)
    exports/rl/train_provenance.parquet        row i: provenance of RL row i
    exports/hf/                                DatasetDict (one split per subset) + README.md card
    exports/manifest.json                      files, counts, exclusions, the dataset root

The export root (`exports/`) is the dataset root: SFT video paths are relative to it, and the RL
trainer must run from it (VST opens `video_context` from the working directory).
The inputs stream (pipelines/streaming.py), in three steps. First every chain is decided, part by
part (policy from the recipe and the verdict tables: pipelines/stages/export_policy.py): its
exclusions, and whether its options may be re-lettered; then the answer letters are balanced over
the whole run from those three short columns; then each part renders its chains' records into the
`export_decisions` table (exported or not, and why). `finalize` writes the files from that table
in one ordered pass (pipelines/stages/export_files.py), so a rerun rewrites them identically.
An RL row is about its chain's window only, so it points at a cut of that window (frame-accurate,
ffmpeg) unless the window is the whole video; `export_decisions.rl_row` holds the window's nominal
length, the Parquet the cut's probed one (they agree within a frame).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curation.formats.question import answer_letter
from curation.formats.rl import RLExportError, is_whole_video, rl_row, window_cut_name
from curation.formats.sft import PREVIOUS, dumps_record, sft_record
from curation.reviews import THOUGHT_LABELS
from pipelines.memory import gc_paused
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages import export_policy as policy_
from pipelines.streaming import Join, PartInputs, PartRows, Staging

EXPORT_VERSION = "vst-export/1"
# The chain columns an export reads (not the raw teacher replies or cache keys).
CHAIN_COLUMNS = ["chain_id", "window_id", "video_id", "video_path", "start_s", "end_s", "thoughts", "qa", "final_answer", "teacher", "prompt_versions", "status"]


class ExportParams(StageParams):
    stage: Literal["export"] = "export"
    formats: list[Literal["sft", "rl", "hf"]] = Field(default_factory=lambda: ["sft", "rl", "hf"])
    # Policy (pipelines/stages/export_policy.py; docs/formats.md "Which chains are exported").
    exclude_on: list[str] | Literal["any"] = Field("any", description="checks whose failed verdict excludes a chain: rule checks, answer, judge_teacher_forced, judge_own_thinking, judge_blind, judge_likelihood ('any': every rule check, answer, and the judge's except own_thinking when judge verdicts are used)")
    required_checks: list[str] | Literal["default"] = Field("default", description="checks every exported chain needs a verdict of ('default': every rule check + answer, + the judge's excluding ones when used)")
    allow_unchecked: list[str] = Field(default_factory=list, description="required checks a chain may lack or that may not have run, by name (e.g. [dedup])")
    judge_excludes: bool | Literal["auto"] = Field("auto", description="auto: the judge's verdicts exclude unless its model is untrained (tiny); true / false: always / never")
    rl_pass_rate_band: tuple[float, float] = Field((0.0, 1.0), description="RL rows keep chains whose own-thinking pass rate is strictly inside (low, high), when judge verdicts are used")
    exclude_review_labels: list[str] = Field(default_factory=lambda: ["hallucinated", "leaks_future", "wrong", "not_grounded"], description="reviewer thought labels that exclude a chain")
    shuffle_options: bool = Field(True, description="re-letter multiple-choice options so the correct letter is balanced over the export")
    seed: int = Field(0, description="seed of the option shuffle")
    group_by: Literal["qa_type", "video", "none"] = Field("qa_type", description="one SFT file (and HF split) per group")
    subset_names: dict[str, str] = Field(default_factory=dict, description="rename groups, e.g. {numerical: counting}")
    instruction: str = Field("", description="the user text of every clip turn")
    previous: str = Field(PREVIOUS, description="the initial text memory (VST's)")
    qa_span: Literal["window_end", "last_clip"] = "window_end"
    video_paths: Literal["relative", "absolute"] = Field("relative", description="relative: videos/<id>.<ext> under the export root")
    link_videos: Literal["symlink", "copy"] = Field("symlink", description="how videos get under exports/videos (relative paths)")
    trailing_seeks: bool = Field(False, description="also append the offsets as the JSONL's last line (old LiveCC convention)")
    dataset_name: str | None = Field(None, description="name in the dataset card (default: vst-<run>)")

    @field_validator("exclude_on", "required_checks", "allow_unchecked")
    @classmethod
    def _known_checks(cls, value):
        return value if isinstance(value, str) else policy_.normalize_checks(value)

    @field_validator("rl_pass_rate_band")
    @classmethod
    def _band(cls, value):
        low, high = value
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"rl_pass_rate_band must be [low, high] with 0 <= low < high <= 1, got {list(value)}")
        return value

    @field_validator("exclude_review_labels")
    @classmethod
    def _labels(cls, value):
        unknown = [v for v in value if v not in THOUGHT_LABELS]
        if unknown:
            raise ValueError(f"unknown review label(s) {unknown}; the labelling config has: {', '.join(THOUGHT_LABELS)}")
        return value


# ---- inputs -------------------------------------------------------------------------------------
DECISIONS, LETTERS = "decisions", "letters"  # tables the corpus-wide step writes per part
DECISIONS_SCHEMA = pa.schema([
    pa.field("chain_id", pa.string()),
    pa.field("excluded_by", pa.list_(pa.string())),
    pa.field("rl_excluded_by", pa.list_(pa.string())),
    pa.field("judge_flags", pa.list_(pa.string())),
    pa.field("subset", pa.string()),
    pa.field("letter_options", pa.int64()),  # options to re-letter over (0: the chain keeps its letters)
])  # fmt: skip


# A chain's reviews and verdicts (by its id) and its video's row (parts hold whole videos).
EXPORT_JOINS = (
    Join("reviews", on="chain_id"),
    *(Join(table, on="chain_id", columns=tuple(policy_.VERDICT_COLUMNS)) for table in policy_.VERDICT_TABLES),
    Join("videos", on="video_id", columns=("video_id", "path", "duration_s", "status")),
)


def reviewed_chains(rows: PartRows) -> tuple[list[dict], set[str]]:
    """The part's ok chains as the export sees them (reviews applied, when the run has reviews)
    and the ids of those a reviewer did not reject."""
    chains = [c for c in rows.rows("chains") if c["status"] == "ok"]
    kept_ids = {c["chain_id"] for c in chains}
    if rows.has("reviews"):
        from curation.reviews import apply_reviews

        reviewed = apply_reviews(chains, rows.rows("reviews"))
        kept_ids = {c["chain_id"] for c in reviewed}
        by_id = {c["chain_id"]: c for c in reviewed}
        chains = [by_id.get(c["chain_id"], c) for c in chains]
    return chains, kept_ids


def part_videos(rows: PartRows) -> dict[str, dict]:
    return {v["video_id"]: v for v in rows.rows("videos") if v["status"] == "ok"}


def decide_part(run_dir: RunDir, rows: PartRows, params: ExportParams, policy) -> pa.Table:
    """The decision on every ok chain of a part (DECISIONS_SCHEMA): what excludes it, whether its
    options may be re-lettered (not excluded, video known, re-letterable) and over how many."""
    chains, kept_ids = reviewed_chains(rows)
    verdicts = policy_.verdicts_by_chain({t: rows.table(t) for t in policy_.VERDICT_TABLES})
    videos = part_videos(rows)
    recheck = _recheck_inputs(run_dir, [c for c in chains if c.get("review_corrected") and c["chain_id"] in kept_ids])
    out = []
    for c in chains:
        chain_verdicts = verdicts.get(c["chain_id"], [])
        video = videos.get(c["video_id"])
        excluded, rl_excluded = decide(c, chain_verdicts, c["chain_id"] not in kept_ids, policy, recheck, video)
        reletter = params.shuffle_options and not excluded and video is not None and policy_.can_reletter(c)
        out.append({"chain_id": c["chain_id"], "excluded_by": excluded, "rl_excluded_by": rl_excluded, "judge_flags": policy_.judge_flags(chain_verdicts),
                    "subset": subset_of(c, params), "letter_options": len(c["qa"]["options"]) if reletter else 0})  # fmt: skip
    return pa.Table.from_pylist(out, schema=DECISIONS_SCHEMA)


def prepare_export(run_dir: RunDir, params: ExportParams, staging: Staging, parts: list[int]) -> None:
    """The corpus-wide step: every chain decided, part by part; then the answer letters over the
    whole run (the policy needs the global view: letters balanced over the export)."""
    policy = policy_.export_policy(run_dir, params)
    staging.write(DECISIONS, ((part, decide_part(run_dir, staging.rows(part), params, policy)) for part in parts))
    if params.shuffle_options:
        staging.write(LETTERS, letter_tables(staging, params, parts))


def letter_tables(staging: Staging, params: ExportParams, parts: list[int]):
    """(part, chain_id + target letter position) of the chains to re-letter, from the decisions."""
    chosen = []
    for part in parts:
        data = staging.rows(part).table(DECISIONS).select(["chain_id", "subset", "letter_options"])
        data = data.filter(pc.greater(data["letter_options"], 0))
        chosen.append((part, data))
    ids = [c for _, data in chosen for c in data["chain_id"].to_pylist()]
    subsets = [s for _, data in chosen for s in data["subset"].to_pylist()]
    options = [n for _, data in chosen for n in data["letter_options"].to_pylist()]
    targets = policy_.letter_targets(ids, subsets, options, params.seed)
    at = 0
    for part, data in chosen:
        yield part, pa.table({"chain_id": data["chain_id"], "target": pa.array(targets[at : at + data.num_rows], pa.int64())})
        at += data.num_rows


def build_export_records(rows: PartRows, params: ExportParams) -> list[dict]:
    """One record per ok chain of the part, with its decision (made over the whole run)."""
    chains, _ = reviewed_chains(rows)
    decisions = {d["chain_id"]: d for d in rows.rows(DECISIONS)}
    letters = {r["chain_id"]: r["target"] for r in rows.rows(LETTERS)}
    videos = part_videos(rows)
    records = []
    for c in chains:
        decision = decisions[c["chain_id"]]
        if c["chain_id"] in letters:
            c = policy_.relettered(c, letters[c["chain_id"]], params.seed)
        records.append({"chain_id": c["chain_id"], "chain": c, "excluded_by": decision["excluded_by"], "rl_excluded_by": decision["rl_excluded_by"],
                        "judge_flags": decision["judge_flags"], "video": videos.get(c["video_id"])})  # fmt: skip
    return records


EXPORT_INPUTS = PartInputs(
    table="chains",
    key="chain_id",
    group="video_id",
    build=build_export_records,
    columns=tuple(CHAIN_COLUMNS),
    joins=EXPORT_JOINS,
    prepare=prepare_export,
)


def load_export_inputs(run_dir: RunDir, params: ExportParams) -> list[dict]:
    """Every input record at once (tools and tests); the stage itself reads them part by part."""
    return list(EXPORT_INPUTS(run_dir, params))


def _recheck_inputs(run_dir: RunDir, corrected: list[dict]) -> dict:
    """The graphs of the windows and the captions of the clips of reviewer-corrected chains
    (only those rows are read): what the rule checks need to re-check a correction."""
    windows = {c["window_id"] for c in corrected}
    clips = {t.get("clip_id") for c in corrected for t in c.get("thoughts") or []}
    graphs = {g["window_id"]: g for g in policy_.rows_where(run_dir, "graphs", "window_id", windows)}
    captions = {r["clip_id"]: r for r in policy_.rows_where(run_dir, "captions", "clip_id", clips, ["clip_id", "caption", "entities", "status"])}
    return {"graphs": graphs, "captions": captions}


def decide(chain: dict, verdicts: list[dict], rejected: bool, policy, recheck: dict, video: dict | None) -> tuple[list[str], list[str]]:
    """(excluded_by, rl_excluded_by) of one chain: [] and [] when it goes everywhere."""
    if rejected:
        return ["review:reject"], []
    if chain.get("review_corrected"):
        checked = {**chain, "video_duration_s": (video or {}).get("duration_s")}  # the probed length, as the check stage uses
        clip_ids = [t.get("clip_id") for t in chain.get("thoughts") or []]
        captions = {c: recheck["captions"][c] for c in clip_ids if c in recheck["captions"]}
        verdicts = policy_.reviewed_verdicts(checked, verdicts, policy, recheck["graphs"].get(chain["window_id"]), captions)
    excluded = sorted(set(policy_.exclusions(verdicts, policy)) | set(policy_.review_exclusions(chain, policy)))
    return excluded, policy_.rl_exclusions(verdicts, policy)


# ---- per chain ----------------------------------------------------------------------------------
def subset_of(chain: dict, params: ExportParams) -> str:
    if params.group_by == "qa_type":
        group = (chain.get("qa") or {}).get("type") or "no_question"
    elif params.group_by == "video":
        group = chain["video_id"]
    else:
        group = "all"
    return params.subset_names.get(group, group)


def export_video_path(video: dict, params: ExportParams) -> str:
    if params.video_paths == "absolute":
        return str(Path(video["path"]).resolve())
    return f"videos/{video_id_file(video)}"


def video_id_file(video: dict) -> str:
    return f"{video['video_id']}{Path(video['path']).suffix.lower() or '.mp4'}"


def rl_video(chain: dict, video: dict, whole_path: str) -> tuple[str, float]:
    """(video_context, duration) of a chain's RL row: the question holds for its window only.
    The whole video when the window is the whole video; else the window's cut `videos/<name>`
    with the window's nominal length. `write_exports` makes the cut, puts its probed length in
    the row (and its absolute path, with `video_paths: absolute`)."""
    start, end = float(chain["start_s"]), float(chain["end_s"])
    if is_whole_video(start, end, video["duration_s"]):
        return whole_path, video["duration_s"]
    return f"videos/{window_cut_name(chain['video_id'], start, end)}", round(end - start, 6)


def export_one(record: dict, params: ExportParams) -> dict:
    chain, video = record["chain"], record["video"]
    qa = chain.get("qa") or {}
    base = {
        "chain_id": chain["chain_id"],
        "video_id": chain["video_id"],
        "window_id": chain.get("window_id"),
        "subset": subset_of(chain, params),
        "qa_type": qa.get("type"),
        "teacher": chain.get("teacher"),
        "prompt_versions": chain.get("prompt_versions"),
        "human_reviewed": bool(chain.get("human_reviewed")),
        "reviewer": chain.get("reviewer"),
        "options": list(qa.get("options") or []),
    }
    if video is None:
        return failed("video_unknown", f"chain {chain['chain_id']}: video {chain['video_id']} is not an ok row of the videos table", **base, exported=False)
    excluded = record["excluded_by"]  # decided over the whole run when the inputs were loaded
    path = export_video_path(video, params)
    record_line = dumps_record(sft_record(chain, path, params.instruction, params.previous, params.qa_span))
    try:
        rl_context, rl_duration = rl_video(chain, video, path)
        rl = json.dumps(rl_row(chain, rl_context, rl_duration), ensure_ascii=False)
    except RLExportError:
        rl = None  # the qa check reports why; this chain has no RL form
    if record["rl_excluded_by"]:
        rl = None  # outside the judge's pass-rate band: no RL row (SFT keeps the chain)
    policy = {"rl_excluded_by": record["rl_excluded_by"], "judge_flags": record["judge_flags"], "answer_letter": answer_letter(qa) if qa.get("type") == "multiple_choice" else None}
    return {**base, **policy, "exported": not excluded, "excluded_by": excluded, "duration_s": video["duration_s"], "sft_record": record_line, "rl_row": rl}


def export_batch(records: list[dict], params: ExportParams, ctx: StageContext) -> list[dict]:
    return [export_one(r, params) for r in records]


def export_failed_row(record: dict, reason: str, message: str) -> dict:
    return failed(reason, message, chain_id=record.get("chain_id"), exported=False)


# ---- corpus: the files ----------------------------------------------------------------------------
def write_exports(run_dir: RunDir, params: ExportParams) -> dict:
    """Write every file of the export from the `export_decisions` table; returns the manifest
    (pipelines/stages/export_files.py)."""
    from pipelines.stages.export_files import write_exports as write

    return write(run_dir, params)


def finalize_export(run_dir: RunDir, params: ExportParams) -> None:
    with gc_paused():
        write_exports(run_dir, params)


STAGE = Stage(
    name="export",
    output_table="export_decisions",
    fn=export_batch,
    params_model=ExportParams,
    key="chain_id",
    input_table="chains",
    reads=("videos",),
    reads_if_present=("reviews", *policy_.VERDICT_TABLES),
    reads_for=policy_.needed_verdict_tables,
    kind="cpu",
    failed_row=export_failed_row,
    finalize=finalize_export,
    load_inputs=EXPORT_INPUTS,
)
