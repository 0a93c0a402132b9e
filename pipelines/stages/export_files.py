"""export's files, written from the `export_decisions` table in one ordered pass (the stage's
`finalize`): SFT JSON-Lines + seek index + provenance, RL Parquet + provenance, the HF dataset,
the video links and window cuts, manifest.json. The same files, byte for byte, as writing each
from all of its rows at once, without holding the rows.

Every file lists the exported chains in (subset, chain id) order. That order is made from the
short columns only: one pass over the table counts what the manifest says (`ExportTally`) and
keeps each exported row's subset and chain id; the keys are sorted, and the rows are routed in
that order into buckets of BUCKET_ROWS (pipelines/streaming.py), read back one bucket at a time.
Each row then goes to every writer:
- SFT: a subset's JSONL and provenance lines are appended as they come (subsets come one after
  the other), the seek index made from the byte offsets as they are written;
- RL: rows are spilled to a scratch Arrow file, then written through a ParquetWriter one row group
  of 1,048,576 rows (pyarrow's default: the groups of one `write_table`) at a time, so at most one
  row group is in memory; the provenance file's column types are inferred over all its rows, as
  `Table.from_pylist` infers them;
- HF: each split is written through datasets' own ArrowWriter in its 1,000-row batches while its
  size is summed as one in-memory table would have it; past `save_to_disk`'s 500 MB a split is then
  re-cut into the same shards. `state.json` holds a hash of the split's data as its fingerprint
  (`save_to_disk` would hash the pickled in-memory table, which a stream never has).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.formats.hf import CorpusStats, DatasetDictWriter, dataset_card, hf_row
from curation.formats.parquet import RowGroupParquetWriter
from curation.formats.rl import RL_SCHEMA, window_cut_name
from curation.formats.sft import SftFileWriter
from curation.storage import AtomicFile, make_temp_dir, remove_stale_temps
from pipelines.rundir import RunDir, atomic_write_json
from pipelines.stages import export_policy as policy_
from pipelines.stages.export import EXPORT_VERSION, ExportParams, video_id_file
from pipelines.streaming import Router, Staging

log = logging.getLogger(__name__)
CUT_NAME = re.compile(r".+-w\d+-\d+\.mp4")  # curation.formats.rl.window_cut_name
BUCKET_ROWS = 5000  # rows read back at once, in file order
SCAN_COLUMNS = ["chain_id", "video_id", "subset", "status", "reason", "exported", "excluded_by", "judge_flags", "rl_excluded_by", "answer_letter"]
ROW_COLUMNS = ["chain_id", "video_id", "subset", "status", "exported", "qa_type", "teacher", "prompt_versions", "human_reviewed", "reviewer",
               "duration_s", "options", "sft_record", "rl_row"]  # fmt: skip


# ---- the exported rows, in order ----------------------------------------------------------------
def scan_decisions(run_dir: RunDir) -> tuple[policy_.ExportTally, pa.Table]:
    """The manifest's counts, and (subset, chain_id, video_id) of every exported row sorted by
    (subset, chain_id): one pass over the table's short columns, a part at a time."""
    tally = policy_.ExportTally()
    keys = []
    for path in run_dir.part_files("export_decisions"):
        data = run_dir.read_part(path, SCAN_COLUMNS)
        for row in data.to_pylist():
            tally.add(row)
        exported = data.filter(pc.and_(pc.equal(data["status"], "ok"), data["exported"]))
        keys.append(exported.select(["subset", "chain_id", "video_id"]))
    if not keys:
        return tally, pa.table({"subset": pa.array([], pa.string()), "chain_id": pa.array([], pa.string()), "video_id": pa.array([], pa.string())})
    return tally, pa.concat_tables(keys).sort_by([("subset", "ascending"), ("chain_id", "ascending")])


def ordered_rows(run_dir: RunDir, keys: pa.Table) -> Iterator[dict]:
    """The exported rows of `export_decisions` in the order of `keys`, a bucket at a time."""
    if not keys.num_rows:
        return
    buckets = -(-keys.num_rows // BUCKET_ROWS)
    router = Router(keys["chain_id"], (np.arange(keys.num_rows) // BUCKET_ROWS).astype(np.int32))
    staging = Staging(run_dir, "export-files", buckets)
    try:
        staging.route("export_decisions", router, "chain_id", ROW_COLUMNS)
        for bucket in range(buckets):
            data = staging.rows(bucket).table("export_decisions")
            _, position = router.lookup(data["chain_id"])
            for row in data.take(pa.array(np.argsort(position, kind="stable"))).to_pylist():
                if row["status"] == "ok" and row["exported"]:
                    yield row
    finally:
        staging.remove()


def video_paths(run_dir: RunDir, video_ids: set[str]) -> dict[str, str]:
    """video_id -> path of the given videos (rows of any status; the last row wins, as a dict of
    the whole table would have it)."""
    wanted = pa.array(sorted(video_ids), pa.string())
    out: dict[str, str] = {}
    for path in run_dir.part_files("videos"):
        data = run_dir.read_part(path, ["video_id", "path"])
        for row in data.filter(pc.is_in(data["video_id"], value_set=wanted)).to_pylist():
            out[row["video_id"]] = row["path"]
    return out


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


# ---- videos ---------------------------------------------------------------------------------------
def link_videos(video_ids: list[str], videos: dict[str, str], root: Path, mode: str) -> None:
    folder = root / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for video_id in video_ids:
        video = {"video_id": video_id, "path": videos[video_id]}
        src, dst = Path(video["path"]).resolve(), folder / video_id_file(video)
        if mode == "copy":
            if not dst.exists() or dst.is_symlink() or dst.stat().st_size != src.stat().st_size:
                dst.unlink(missing_ok=True)
                shutil.copyfile(src, dst)
        elif not (dst.is_symlink() and Path(os.readlink(dst)) == src):
            dst.unlink(missing_ok=True)
            dst.symlink_to(src)


def _export_path(dataset_root: str, relative: str) -> str:
    """A file of the export root as an absolute path (or URI, for a run on object storage)."""
    if "://" in dataset_root:
        return dataset_root.rstrip("/") + "/" + relative
    return str(Path(dataset_root).resolve() / relative)


class WindowCuts:
    """The cuts of the windows RL rows point at (once per window, skipped when already cut) in
    exports/videos/; a row gets its cut's probed duration (and, with `video_paths: absolute`, its
    absolute path). A window that cannot be cut loses its RL rows: never pointed at the wrong span."""

    def __init__(self, root: Path, videos: dict[str, str], dataset_root: str, params: ExportParams):
        self.folder, self.videos, self.dataset_root, self.params = root / "videos", videos, dataset_root, params
        self.cuts: dict[str, float | str] = {}  # cut name -> probed duration, or why it failed
        self.rows_left_out = 0

    def keep(self, video_id: str, window: tuple[float, float], row: dict) -> bool:
        """Whether the RL row stays (its cut made, or none needed); updates it in place."""
        from curation.video.cut import CutError, cut_window

        start, end = window
        name = window_cut_name(video_id, start, end)
        if row["video_context"] != f"videos/{name}":
            return True  # the window is the whole video: the row keeps the source video
        if name not in self.cuts:
            try:
                self.cuts[name] = cut_window(self.videos[video_id], start, end, self.folder / name)
            except CutError as err:
                self.cuts[name] = str(err)
                log.warning("RL rows of window %s-%s s of %s left out: %s", start, end, video_id, err)
        got = self.cuts[name]
        if isinstance(got, str):
            self.rows_left_out += 1
            return False
        row["extra_info"] = {**row["extra_info"], "duration": round(got, 6)}
        if self.params.video_paths == "absolute":
            row["video_context"] = _export_path(self.dataset_root, f"videos/{name}")
        return True

    def finish(self) -> dict:
        """Remove the cuts of windows an earlier export had and this one has not; the summary."""
        from curation.video.cut import read_recorded_window

        if self.folder.is_dir():
            for stale in self.folder.glob("*-w*-*.mp4"):
                # a source video whose id looks like a cut name is a link or a copy, never a cut
                if stale.name not in self.cuts and CUT_NAME.fullmatch(stale.name) and not stale.is_symlink() and read_recorded_window(stale) is not None:
                    stale.unlink()
        errors = {name: err for name, err in sorted(self.cuts.items()) if isinstance(err, str)}
        return {"windows": len(self.cuts) - len(errors), "rows_left_out": self.rows_left_out, "errors": errors}


# ---- SFT ------------------------------------------------------------------------------------------
class SftWriter:
    """exports/sft: rows come subset after subset; each subset's JSONL (with its seek index) and
    provenance lines are appended as they come and put in place when the subset ends."""

    def __init__(self, folder: Path, trailing_seeks: bool):
        self.folder, self.trailing_seeks = folder, trailing_seeks
        folder.mkdir(parents=True, exist_ok=True)
        self.subset: str | None = None
        self.files: list[str] = []  # relative to the export root, as the manifest lists them
        self.jsonl: SftFileWriter | None = None
        self.prov: AtomicFile | None = None

    def add(self, subset: str, line: str, prov: dict) -> None:
        if subset != self.subset:
            self._close_subset()
            self.subset = subset
            self.jsonl = SftFileWriter(self.folder / f"{subset}_with_seeks.jsonl", self.trailing_seeks)
            self.prov = AtomicFile(self.folder / f"{subset}_provenance.jsonl")
        number = self.jsonl.add(line)
        self.prov.write((json.dumps({"line": number, **prov}, ensure_ascii=False) + "\n").encode())

    def _close_subset(self) -> None:
        if self.jsonl is None:
            return
        seeks = self.jsonl.commit()
        self.prov.commit()
        self.files += [f"sft/{p.name}" for p in (self.jsonl.path, seeks, self.prov.path)]
        self.jsonl = self.prov = None

    def close(self) -> list[str]:
        """Close the last subset, remove the files of subsets an earlier export had; the file list."""
        self._close_subset()
        wanted = {Path(f).name for f in self.files}
        for stale in self.folder.glob("*.jsonl"):
            if stale.name not in wanted:
                stale.unlink()
        return self.files

    def discard(self) -> None:
        """The export failed: the subset being written leaves nothing behind."""
        for out in (self.jsonl, self.prov):
            if out is not None:
                out.discard()
        self.jsonl = self.prov = None


# The provenance row of an RL row, each column in the type it takes once it holds a value.
RL_PROVENANCE = pa.schema([
    ("index", pa.int64()), ("chain_id", pa.string()), ("run", pa.string()), ("teacher", pa.string()), ("human_reviewed", pa.bool_()),
    ("reviewer", pa.string()), ("export_version", pa.string()), ("subset", pa.string()), ("video_id", pa.string()),
    ("duration_s", pa.float64()), ("qa_type", pa.string()), ("options", pa.list_(pa.string())), ("prompt_versions", pa.string()),
])  # fmt: skip


class RlWriter:
    """exports/rl/train.parquet (exactly RL_SCHEMA; extra_info.index is the row's position) and
    train_provenance.parquet (row i: the provenance of RL row i)."""

    def __init__(self, folder: Path, scratch: Path):
        self.folder = folder
        self.rows = RowGroupParquetWriter(scratch / "rl.arrow", RL_SCHEMA)
        self.prov = RowGroupParquetWriter(scratch / "rl-provenance.arrow", RL_PROVENANCE, infer=True)
        self.batch: list[dict] = []
        self.prov_batch: list[dict] = []
        self.count = 0

    def add(self, row: dict, prov: dict) -> None:
        row["extra_info"] = {**row["extra_info"], "index": self.count}
        self.batch.append(row)
        self.prov_batch.append({"index": self.count, **{k: v for k, v in prov.items() if k != "prompt_versions"},
                                "prompt_versions": json.dumps(prov["prompt_versions"], sort_keys=True)})  # fmt: skip
        self.count += 1
        if len(self.batch) >= BUCKET_ROWS:
            self._flush()

    def _flush(self) -> None:
        self.rows.add(self.batch)
        self.prov.add(self.prov_batch)
        self.batch, self.prov_batch = [], []

    def close(self) -> list[str]:
        self._flush()
        self.rows.write(self.folder / "train.parquet", RL_SCHEMA.empty_table())
        self.prov.write(self.folder / "train_provenance.parquet", pa.table({"index": pa.array([], pa.int64())}))
        return ["rl/train.parquet", "rl/train_provenance.parquet"]


# ---- HF -------------------------------------------------------------------------------------------
@contextmanager
def swapped_dir(target: Path):
    """A folder built next to `target`, put in its place when the block ends without an error
    (a reader never sees half of it). Named after this process, made with the umask's mode
    (mkdtemp's 0700 would hide the dataset from the team)."""
    tmp = make_temp_dir(target.parent, f"-{target.name}")
    try:
        yield tmp
        old = target.with_name(target.name + ".old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- the export -------------------------------------------------------------------------------------
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
    tally, keys = scan_decisions(run_dir)
    report = policy_.export_report(policy_.export_policy(run_dir, params), tally, params)
    for folder in (root, root / "sft", root / "rl"):
        remove_stale_temps(folder)  # what a killed export left: never part of the dataset
    exported_videos = set(keys["video_id"].to_pylist())
    videos = video_paths(run_dir, exported_videos) if exported_videos else {}
    if params.video_paths == "relative" and keys.num_rows:
        link_videos(sorted(exported_videos), videos, root, params.link_videos)

    def card(stats: dict) -> str:
        stats |= {"answer_letters": report["answer_letters"]["all"], "policy_notes": report["notes"]}
        recipe = run_dir.read_recipe().get("recipe") if run_dir.has_recipe() else None
        return dataset_card(params.dataset_name or f"vst-{run}", stats, recipe, run)

    with ExitStack() as stack:
        files = ExportFiles(stack, root, params, videos, dataset_root)
        for row in ordered_rows(run_dir, keys):
            files.add(row, provenance(row, run) | {k: row[k] for k in ("subset", "video_id", "duration_s", "qa_type", "options")})
        written = files.close(card, dict(tally.excluded))

    manifest = {
        "run": run,
        "export_version": EXPORT_VERSION,
        # "." is this manifest's folder: a shared dataset names no folder of the machine that made it
        "dataset_root": dataset_root if "://" in dataset_root else ".",
        "dataset_root_note": "SFT video paths are relative to this folder; run VST's RL trainer from it (video_context is opened from the working directory)",
        "records": keys.num_rows,
        "rl_rows": files.rl_rows,
        "rl_window_cuts": written["rl_window_cuts"],
        "subsets": files.subsets,
        "excluded": dict(sorted(tally.excluded.items())),
        "chains_considered": tally.considered,
        **report,  # verdict tables read, the policy, judge flags, RL band exclusions, answer letters
        "files": written["files"],
        "params": params.model_dump(mode="json"),
    }
    atomic_write_json(root / "manifest.json", manifest)
    return manifest


class ExportFiles:
    """Every file of the export (the formats the params ask for), fed one exported row at a time
    in file order. Whatever is half written when the export fails is removed (`stack`)."""

    def __init__(self, stack: ExitStack, root: Path, params: ExportParams, videos: dict[str, str], dataset_root: str):
        root.mkdir(parents=True, exist_ok=True)
        scratch = make_temp_dir(root, "-scratch")
        stack.callback(shutil.rmtree, scratch, True)
        self.sft = SftWriter(root / "sft", params.trailing_seeks) if "sft" in params.formats else None
        if self.sft is not None:
            stack.callback(self.sft.discard)
        self.rl = RlWriter(root / "rl", scratch) if "rl" in params.formats else None
        self.cuts = WindowCuts(root, videos, dataset_root, params) if self.rl is not None else None
        self.hf = DatasetDictWriter(stack.enter_context(swapped_dir(root / "hf"))) if "hf" in params.formats else None
        self.stats = CorpusStats()
        self.subsets: dict[str, int] = {}  # records per subset, in file order
        self.rl_rows = 0

    def add(self, row: dict, prov: dict) -> None:
        self.subsets[row["subset"]] = self.subsets.get(row["subset"], 0) + 1
        if self.sft is not None:
            self.sft.add(row["subset"], row["sft_record"], prov)
        record = json.loads(row["sft_record"])
        rl_row = json.loads(row["rl_row"]) if row["rl_row"] else None
        if rl_row is not None and (self.rl is None or self.cuts.keep(row["video_id"], _window_of(record), rl_row)):
            self.rl_rows += 1  # without the RL files, the rows that have an RL form
            if self.rl is not None:
                self.rl.add(rl_row, prov)
        if self.hf is not None:
            hf_record = hf_row(row["sft_record"], rl_row, prov, record)
            self.hf.add(row["subset"], hf_record)
            self.stats.add(hf_record)

    def close(self, card, excluded: dict[str, int]) -> dict:
        """Put every file in place; `card(stats)` makes the dataset card from the statistics."""
        files: dict[str, list[str]] = {}
        cuts: dict = {}
        if self.sft is not None:
            files["sft"] = self.sft.close()
        if self.rl is not None:
            cuts = self.cuts.finish()
            files["rl"] = self.rl.close()
        if self.hf is not None:
            self.hf.close(card(self.stats.result(excluded)))
            files["hf"] = ["hf/"]
        return {"files": files, "rl_window_cuts": cuts}


def _window_of(record: list[dict]) -> tuple[float, float]:
    """(video_start, video_end) of an exported chain: its SFT record holds the window."""
    video = record[0]["content"][0]
    return float(video["video_start"]), float(video["video_end"])
