"""export: checked (and reviewed) chains -> files VST's trainers load unchanged.

    exports/videos/<video_id>.<ext>            links (or copies) of the source videos
    exports/sft/<subset>_with_seeks.jsonl      SFT records, one file per subset (spec section 2)
    exports/sft/<subset>_seeks.jsonl           their byte-offset seek index
    exports/sft/<subset>_provenance.jsonl      line i: run, chain id, teacher, prompt versions of record i
    exports/rl/train.parquet                   RL rows with exactly VST's columns (spec section 3)
    exports/rl/train_provenance.parquet        row i: provenance of RL row i
    exports/hf/                                DatasetDict (one split per subset) + README.md card
    exports/manifest.json                      files, counts, exclusions, the dataset root

The export root (`exports/`) is the dataset root: SFT video paths are relative to it, and the RL
trainer must run from it (VST opens `video_context` from the working directory).
Per chain, the stage decides (policy from the recipe) and renders its records into the
`export_decisions` table (exported or not, and why); `finalize` then writes the files from that
table, so a rerun rewrites them identically.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curation.formats.hf import corpus_stats, dataset_card, hf_row, write_dataset
from curation.formats.rl import RLExportError, rl_row, rl_table
from curation.formats.sft import PREVIOUS, dumps_record, sft_record, write_sft
from pipelines.rundir import RunDir, atomic_write_bytes, atomic_write_json, atomic_write_parquet
from pipelines.stage import Stage, StageContext, StageParams, failed

EXPORT_VERSION = "vst-export/1"
# The chain columns an export reads (not the raw teacher replies or cache keys).
CHAIN_COLUMNS = ["chain_id", "window_id", "video_id", "video_path", "start_s", "end_s", "thoughts", "qa", "final_answer", "teacher", "prompt_versions", "status"]


class ExportParams(StageParams):
    stage: Literal["export"] = "export"
    formats: list[Literal["sft", "rl", "hf"]] = Field(default_factory=lambda: ["sft", "rl", "hf"])
    exclude_on: list[str] | Literal["any"] = Field("any", description="checks whose failed verdict excludes a chain ('any': every check)")
    exclude_unchecked: bool = Field(False, description="also exclude a chain when one of those checks could not run")
    group_by: Literal["qa_type", "video", "none"] = Field("qa_type", description="one SFT file (and HF split) per group")
    subset_names: dict[str, str] = Field(default_factory=dict, description="rename groups, e.g. {numerical: counting}")
    instruction: str = Field("", description="the user text of every clip turn")
    previous: str = Field(PREVIOUS, description="the initial text memory (VST's)")
    qa_span: Literal["window_end", "last_clip"] = "window_end"
    video_paths: Literal["relative", "absolute"] = Field("relative", description="relative: videos/<id>.<ext> under the export root")
    link_videos: Literal["symlink", "copy"] = Field("symlink", description="how videos get under exports/videos (relative paths)")
    trailing_seeks: bool = Field(False, description="also append the offsets as the JSONL's last line (old LiveCC convention)")
    dataset_name: str | None = Field(None, description="name in the dataset card (default: vst-<run>)")


# ---- inputs -------------------------------------------------------------------------------------
def load_export_inputs(run_dir: RunDir, params: ExportParams) -> list[dict]:
    if run_dir.is_complete("export_decisions"):
        return []  # the runner skips a finished stage: reading 100k chains would be wasted
    with gc_paused():
        records = _load_export_inputs(run_dir, params)
    hold_inputs()
    return records


def _load_export_inputs(run_dir: RunDir, params: ExportParams) -> list[dict]:
    chains = [c for c in run_dir.read_rows("chains", CHAIN_COLUMNS) if c["status"] == "ok"]
    kept_ids = {c["chain_id"] for c in chains}
    if run_dir.has_table("reviews"):
        from curation.reviews import apply_reviews

        reviewed = apply_reviews(chains, run_dir.read_rows("reviews"))
        kept_ids = {c["chain_id"] for c in reviewed}
        by_id = {c["chain_id"]: c for c in reviewed}
        chains = [by_id.get(c["chain_id"], c) for c in chains]
    verdicts: dict[str, list[dict]] = {}
    if run_dir.has_table("verdicts"):
        # Only verdicts that did not pass can exclude a chain: filter in Arrow, not in Python.
        table = run_dir.read_table("verdicts", ["chain_id", "check", "passed", "status", "reason"])
        table = table.filter(pc.invert(pc.fill_null(table["passed"], False)))
        for v in table.to_pylist():
            verdicts.setdefault(v["chain_id"], []).append(v)
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "duration_s", "status"]) if v["status"] == "ok"}
    return [
        {
            "chain_id": c["chain_id"],
            "chain": c,
            "rejected": c["chain_id"] not in kept_ids,
            "verdicts": verdicts.get(c["chain_id"], []),
            "video": videos.get(c["video_id"]),
        }
        for c in chains
    ]


# ---- per chain ----------------------------------------------------------------------------------
def exclusions(verdicts: list[dict], params: ExportParams) -> list[str]:
    """"check:reason" of every verdict that excludes the chain under the recipe's policy."""
    out = []
    for v in sorted(verdicts, key=lambda v: (v["check"], v["reason"] or "")):
        if params.exclude_on != "any" and v["check"] not in params.exclude_on:
            continue
        if v["passed"] is False:
            out.append(f"{v['check']}:{v['reason'] or 'failed'}")
        elif v["passed"] is None and params.exclude_unchecked:
            out.append(f"{v['check']}:not_run")
    return out


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
    excluded = ["review:reject"] if record["rejected"] else exclusions(record["verdicts"], params)
    path = export_video_path(video, params)
    record_line = dumps_record(sft_record(chain, path, params.instruction, params.previous, params.qa_span))
    try:
        rl = json.dumps(rl_row(chain, path, video["duration_s"]), ensure_ascii=False)
    except RLExportError:
        rl = None  # the qa check reports why; this chain has no RL form
    return {**base, "exported": not excluded, "excluded_by": excluded, "duration_s": video["duration_s"], "sft_record": record_line, "rl_row": rl}


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
    by_subset: dict[str, list[dict]] = {}
    for r in ok:
        by_subset.setdefault(r["subset"], []).append(r)
    for r in ok:
        r["prov"] = provenance(r, run) | {"subset": r["subset"], "video_id": r["video_id"], "duration_s": r["duration_s"], "qa_type": r["qa_type"], "options": r["options"]}
    files: dict[str, list[str]] = {}

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
    if "rl" in params.formats:
        rl_dir = root / "rl"
        table = rl_table([dict(rl_parsed[r["chain_id"]]) for r in rl_rows])
        atomic_write_parquet(rl_dir / "train.parquet", table)
        prov_rows = [{"index": i, **{k: v for k, v in r["prov"].items() if k != "prompt_versions"}, "prompt_versions": json.dumps(r["prov"]["prompt_versions"], sort_keys=True)} for i, r in enumerate(rl_rows)]
        atomic_write_parquet(rl_dir / "train_provenance.parquet", pa.Table.from_pylist(prov_rows) if prov_rows else pa.table({"index": pa.array([], pa.int64())}))
        files["rl"] = ["rl/train.parquet", "rl/train_provenance.parquet"]

    stats = None
    if "hf" in params.formats:
        hf_rows = {s: [hf_row(r["sft_record"], rl_parsed.get(r["chain_id"]), r["prov"]) for r in subset_rows] for s, subset_rows in by_subset.items()}
        stats = corpus_stats(hf_rows, dict(excluded))
        recipe = run_dir.read_recipe().get("recipe") if run_dir.has_recipe() else None
        card = dataset_card(params.dataset_name or f"vst-{run}", stats, recipe, run)
        _swap_dir(root / "hf", lambda tmp: write_dataset(hf_rows, tmp, card) if hf_rows else (tmp / "README.md").write_text(card))
        files["hf"] = ["hf/"]

    manifest = {
        "run": run,
        "export_version": EXPORT_VERSION,
        "dataset_root": dataset_root,
        "dataset_root_note": "SFT video paths are relative to this folder; run VST's RL trainer from it (video_context is opened from the working directory)",
        "records": len(ok),
        "rl_rows": len(rl_rows),
        "subsets": {s: len(v) for s, v in by_subset.items()},
        "excluded": dict(sorted(excluded.items())),
        "chains_considered": len(rows),
        "files": files,
        "params": params.model_dump(mode="json"),
    }
    atomic_write_json(root / "manifest.json", manifest)
    return manifest


def _swap_dir(target: Path, build) -> None:
    """Build a folder next to `target`, then put it in place (a reader never sees half of it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-hf-"))
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
    kind="cpu",
    failed_row=export_failed_row,
    finalize=finalize_export,
    load_inputs=load_export_inputs,
)
