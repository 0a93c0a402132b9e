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
Loading the inputs decides every chain (policy from the recipe and the verdict tables:
pipelines/stages/export_policy.py; decided over the whole run, since answer letters are balanced
over the export); the stage then renders each chain's records into the `export_decisions` table
(exported or not, and why); `finalize` writes the files from that table, so a rerun rewrites
them identically.
An RL row is about its chain's window only, so it points at a cut of that window (frame-accurate,
ffmpeg) unless the window is the whole video; `export_decisions.rl_row` holds the window's nominal
length, the Parquet the cut's probed one (they agree within a frame).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator

from curation.formats.hf import corpus_stats, dataset_card, hf_row, write_dataset
from curation.formats.rl import RLExportError, is_whole_video, rl_row, rl_table, window_cut_name
from curation.formats.question import answer_letter
from curation.formats.sft import PREVIOUS, dumps_record, sft_record, write_sft
from curation.reviews import THOUGHT_LABELS
from curation.storage import make_temp_dir, remove_stale_temps
from pipelines.rundir import RunDir, atomic_write_bytes, atomic_write_json, atomic_write_parquet
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages import export_policy as policy_

EXPORT_VERSION = "vst-export/1"
CUT_NAME = re.compile(r".+-w\d+-\d+\.mp4")  # curation.formats.rl.window_cut_name
log = logging.getLogger(__name__)
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
def load_export_inputs(run_dir: RunDir, params: ExportParams) -> list[dict]:
    if run_dir.is_complete("export_decisions"):
        return []  # the runner skips a finished stage: reading 100k chains would be wasted
    with gc_paused():
        records = _load_export_inputs(run_dir, params)
    hold_inputs()
    return records


def _load_export_inputs(run_dir: RunDir, params: ExportParams) -> list[dict]:
    """One record per ok chain, with its decision made here: the policy needs the whole run
    (letters balanced over the export), so the stage function only renders."""
    policy = policy_.export_policy(run_dir, params)
    chains = [c for c in run_dir.read_rows("chains", CHAIN_COLUMNS) if c["status"] == "ok"]
    kept_ids = {c["chain_id"] for c in chains}
    if run_dir.has_table("reviews"):
        from curation.reviews import apply_reviews

        reviewed = apply_reviews(chains, run_dir.read_rows("reviews"))
        kept_ids = {c["chain_id"] for c in reviewed}
        by_id = {c["chain_id"]: c for c in reviewed}
        chains = [by_id.get(c["chain_id"], c) for c in chains]
    verdicts = policy_.read_verdicts(run_dir, policy.tables)
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "duration_s", "status"]) if v["status"] == "ok"}
    recheck = _recheck_inputs(run_dir, [c for c in chains if c.get("review_corrected") and c["chain_id"] in kept_ids])
    records = []
    for c in chains:
        chain_verdicts = verdicts.get(c["chain_id"], [])
        excluded, rl_excluded = decide(c, chain_verdicts, c["chain_id"] not in kept_ids, policy, recheck, videos.get(c["video_id"]))
        records.append(
            {
                "chain_id": c["chain_id"],
                "chain": c,
                "excluded_by": excluded,
                "rl_excluded_by": rl_excluded,
                "judge_flags": policy_.judge_flags(chain_verdicts),
                "video": videos.get(c["video_id"]),
            }
        )
    if params.shuffle_options:
        policy_.assign_answer_letters(records, params.seed, lambda chain: subset_of(chain, params))
    return records


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
def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def link_videos(rows: list[dict], videos: dict[str, dict], root: Path, mode: str) -> None:
    folder = root / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for video_id in sorted({r["video_id"] for r in rows}):
        video = videos[video_id]
        src, dst = Path(video["path"]).resolve(), folder / video_id_file(video)
        if mode == "copy":
            if not dst.exists() or dst.is_symlink() or dst.stat().st_size != src.stat().st_size:
                dst.unlink(missing_ok=True)
                shutil.copyfile(src, dst)
        elif not (dst.is_symlink() and Path(os.readlink(dst)) == src):
            dst.unlink(missing_ok=True)
            dst.symlink_to(src)


def _window_of(row: dict) -> tuple[float, float]:
    """(video_start, video_end) of an exported chain: its SFT record holds the window."""
    video = json.loads(row["sft_record"])[0]["content"][0]
    return float(video["video_start"]), float(video["video_end"])


def _export_path(dataset_root: str, relative: str) -> str:
    """A file of the export root as an absolute path (or URI, for a run on object storage)."""
    if "://" in dataset_root:
        return dataset_root.rstrip("/") + "/" + relative
    return str(Path(dataset_root).resolve() / relative)


def cut_rl_windows(run_dir: RunDir, rows: list[dict], parsed: dict[str, dict], root: Path, dataset_root: str, params: ExportParams) -> tuple[list[dict], dict]:
    """Cut every window an RL row points at (once per window, skipped when already cut) into
    exports/videos/, and put the cut's probed duration (and, with `video_paths: absolute`, its
    absolute path) into those rows. Returns the rows kept (a window that cannot be cut loses its
    RL rows, never points them at the wrong span) and the summary for the manifest."""
    from curation.video.cut import CutError, cut_window, read_recorded_window

    folder = root / "videos"
    cuts: dict[str, float | str] = {}  # cut name -> probed duration, or why it failed
    kept, failed_rows = [], 0
    videos = None
    for r in rows:
        row = parsed[r["chain_id"]]
        start, end = _window_of(r)
        name = window_cut_name(r["video_id"], start, end)
        if row["video_context"] != f"videos/{name}":
            kept.append(r)  # the window is the whole video: the row keeps the source video
            continue
        if name not in cuts:
            videos = videos or {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path"])}
            try:
                cuts[name] = cut_window(videos[r["video_id"]]["path"], start, end, folder / name)
            except CutError as err:
                cuts[name] = str(err)
                log.warning("RL rows of window %s-%s s of %s left out: %s", start, end, r["video_id"], err)
        got = cuts[name]
        if isinstance(got, str):
            failed_rows += 1
            continue
        row["extra_info"] = {**row["extra_info"], "duration": round(got, 6)}
        if params.video_paths == "absolute":
            row["video_context"] = _export_path(dataset_root, f"videos/{name}")
        kept.append(r)
    wanted = set(cuts)
    if folder.is_dir():
        for stale in folder.glob("*-w*-*.mp4"):  # cuts of windows an earlier export had and this one has not
            # a source video whose id looks like a cut name is a link or a copy, never a cut
            if stale.name not in wanted and CUT_NAME.fullmatch(stale.name) and not stale.is_symlink() and read_recorded_window(stale) is not None:
                stale.unlink()
    errors = {name: err for name, err in sorted(cuts.items()) if isinstance(err, str)}
    return kept, {"windows": len(cuts) - len(errors), "rows_left_out": failed_rows, "errors": errors}


def provenance(row: dict, run: str) -> dict:
    return {
        "chain_id": row["chain_id"],
        "run": run,
        "teacher": row["teacher"],
        "prompt_versions": dict(row["prompt_versions"] or {}),
        "human_reviewed": bool(row["human_reviewed"]),
        "reviewer": row["reviewer"],
        "export_version": EXPORT_VERSION,
    }


def write_exports(run_dir: RunDir, params: ExportParams) -> dict:
    """Write every file of the export from the `export_decisions` table; returns the manifest.
    A remote run's export is built in a local temporary folder, then uploaded to <run>/exports
    (videos, with relative paths, are uploaded too, and only when they changed)."""
    if run_dir.is_local:
        return _write_exports(run_dir, params, run_dir.exports_dir, str(run_dir.exports_dir))
    with tempfile.TemporaryDirectory(prefix="vstw-export-") as staging:
        manifest = _write_exports(run_dir, params, Path(staging), run_dir.uri + "/exports")
        run_dir.upload_dir(Path(staging), "exports", skip_same_size=("videos",))
    return manifest


def _write_exports(run_dir: RunDir, params: ExportParams, root: Path, dataset_root: str) -> dict:
    run = run_dir.name
    rows = run_dir.read_rows("export_decisions")
    ok = sorted((r for r in rows if r["status"] == "ok" and r["exported"]), key=lambda r: (r["subset"], r["chain_id"]))
    excluded = Counter(reason for r in rows if r["status"] == "ok" and not r["exported"] for reason in r["excluded_by"] or [])
    excluded.update(f"failed:{r['reason']}" for r in rows if r["status"] != "ok")
    report = policy_.export_report(policy_.export_policy(run_dir, params), rows, ok, params)
    by_subset: dict[str, list[dict]] = {}
    for r in ok:
        by_subset.setdefault(r["subset"], []).append(r)
    for r in ok:
        r["prov"] = provenance(r, run) | {"subset": r["subset"], "video_id": r["video_id"], "duration_s": r["duration_s"], "qa_type": r["qa_type"], "options": r["options"]}
    files: dict[str, list[str]] = {}
    for folder in (root, root / "sft", root / "rl"):
        remove_stale_temps(folder)  # what a killed export left: never part of the dataset

    if params.video_paths == "relative" and ok:
        videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path"])}
        link_videos(ok, videos, root, params.link_videos)

    if "sft" in params.formats:
        sft_dir = root / "sft"
        sft_dir.mkdir(parents=True, exist_ok=True)
        wanted = set()
        for subset, subset_rows in by_subset.items():
            jsonl, seeks, _ = write_sft([r["sft_record"] for r in subset_rows], sft_dir / f"{subset}_with_seeks.jsonl", params.trailing_seeks, write=_write)
            prov = sft_dir / f"{subset}_provenance.jsonl"
            _write(prov, "".join(json.dumps({"line": i, **r["prov"]}, ensure_ascii=False) + "\n" for i, r in enumerate(subset_rows)).encode())
            wanted |= {jsonl.name, seeks.name, prov.name}
            files.setdefault("sft", []).extend(str(p.relative_to(root)) for p in (jsonl, seeks, prov))
        for stale in sft_dir.glob("*.jsonl"):  # subsets of an earlier export that no longer exist
            if stale.name not in wanted:
                stale.unlink()

    rl_rows = [r for r in ok if r["rl_row"]]
    rl_parsed = {r["chain_id"]: json.loads(r["rl_row"]) for r in rl_rows}
    rl_cuts: dict = {}
    if "rl" in params.formats:
        rl_rows, rl_cuts = cut_rl_windows(run_dir, rl_rows, rl_parsed, root, dataset_root, params)
        rl_dir = root / "rl"
        table = rl_table([dict(rl_parsed[r["chain_id"]]) for r in rl_rows])
        atomic_write_parquet(rl_dir / "train.parquet", table)
        prov_rows = [{"index": i, **{k: v for k, v in r["prov"].items() if k != "prompt_versions"}, "prompt_versions": json.dumps(r["prov"]["prompt_versions"], sort_keys=True)} for i, r in enumerate(rl_rows)]
        atomic_write_parquet(rl_dir / "train_provenance.parquet", pa.Table.from_pylist(prov_rows) if prov_rows else pa.table({"index": pa.array([], pa.int64())}))
        files["rl"] = ["rl/train.parquet", "rl/train_provenance.parquet"]

    stats = None
    if "hf" in params.formats:
        hf_rows = {s: [hf_row(r["sft_record"], rl_parsed.get(r["chain_id"]), r["prov"]) for r in subset_rows] for s, subset_rows in by_subset.items()}
        stats = corpus_stats(hf_rows, dict(excluded)) | {"answer_letters": report["answer_letters"]["all"], "policy_notes": report["notes"]}
        recipe = run_dir.read_recipe().get("recipe") if run_dir.has_recipe() else None
        card = dataset_card(params.dataset_name or f"vst-{run}", stats, recipe, run)
        _swap_dir(root / "hf", lambda tmp: write_dataset(hf_rows, tmp, card) if hf_rows else (tmp / "README.md").write_text(card))
        files["hf"] = ["hf/"]

    manifest = {
        "run": run,
        "export_version": EXPORT_VERSION,
        # "." is this manifest's folder: a shared dataset names no folder of the machine that made it
        "dataset_root": dataset_root if "://" in dataset_root else ".",
        "dataset_root_note": "SFT video paths are relative to this folder; run VST's RL trainer from it (video_context is opened from the working directory)",
        "records": len(ok),
        "rl_rows": len(rl_rows),
        "rl_window_cuts": rl_cuts,
        "subsets": {s: len(v) for s, v in by_subset.items()},
        "excluded": dict(sorted(excluded.items())),
        "chains_considered": len(rows),
        **report,  # verdict tables read, the policy, judge flags, RL band exclusions, answer letters
        "files": files,
        "params": params.model_dump(mode="json"),
    }
    atomic_write_json(root / "manifest.json", manifest)
    return manifest


def _swap_dir(target: Path, build) -> None:
    """Build a folder next to `target`, then put it in place (a reader never sees half of it).
    The folder is named after this process and made with the umask's mode (mkdtemp's 0700
    would hide the dataset from the team)."""
    tmp = make_temp_dir(target.parent, f"-{target.name}")
    try:
        build(tmp)
        old = target.with_name(target.name + ".old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def hold_inputs() -> None:
    """The input records live until the stage's parts are written: move them out of the cyclic
    GC's reach (reference counting still frees them; they hold no cycles). Without this the GC
    rescans them on every few thousand allocations: a quarter of the time at 100k chains.
    `release_inputs` (the stage's finalize) undoes it."""
    gc.freeze()


def release_inputs() -> None:
    gc.unfreeze()


@contextmanager
def gc_paused():
    """Hundreds of thousands of small row dicts make Python's cyclic GC rescan them again and
    again (half the export time at 100k chains); rows hold no cycles, so pause it meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def finalize_export(run_dir: RunDir, params: ExportParams) -> None:
    release_inputs()
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
    load_inputs=load_export_inputs,
)
