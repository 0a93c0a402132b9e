"""The corpus as a Hugging Face `datasets.DatasetDict` (one split per subset) + a dataset card.

Every row carries the exact SFT record line (`sft_record`), the RL fields, and its provenance
(run, chain id, teacher, prompt versions, human review), with explicit features so the types never
depend on what the first rows happen to hold.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml


def hf_features():
    from datasets import Features, List, Value

    return Features(
        {
            "chain_id": Value("string"),
            "run": Value("string"),
            "subset": Value("string"),
            "video_id": Value("string"),
            "video": Value("string"),
            "video_start": Value("float64"),
            "video_end": Value("float64"),
            "video_duration": Value("float64"),
            "previous": Value("string"),
            "instruction": Value("string"),
            "thoughts": List({"start": Value("float64"), "end": Value("float64"), "text": Value("string")}),
            "qa_type": Value("string"),
            "question": Value("string"),
            "options": List(Value("string")),
            "prompt": Value("string"),
            "answer": Value("string"),
            "data_source": Value("string"),
            "ground_truth": List(Value("string")),
            "teacher": Value("string"),
            "prompt_versions": List({"name": Value("string"), "version": Value("string")}),
            "human_reviewed": Value("bool"),
            "reviewer": Value("string"),
            "sft_record": Value("string"),
        }
    )


def hf_row(sft_line: str, rl: dict | None, prov: dict, record: list | None = None) -> dict:
    """One dataset row from the exported SFT line (`record`: the line already parsed), the RL row
    and the provenance."""
    record = json.loads(sft_line) if record is None else record
    video, text = record[0]["content"]
    stream = record[1]["content"][0]
    qa = (stream.get("qa_stream") or [[None, None, None, None]])[0]
    return {
        "chain_id": prov["chain_id"],
        "run": prov.get("run"),
        "subset": prov.get("subset"),
        "video_id": prov.get("video_id"),
        "video": video["video"],
        "video_start": video["video_start"],
        "video_end": video["video_end"],
        "video_duration": prov.get("duration_s"),
        "previous": text.get("previous"),
        "instruction": text["text"],
        "thoughts": [{"start": s, "end": e, "text": t} for s, e, t in stream["text_stream"]],
        "qa_type": prov.get("qa_type"),
        "question": rl["question"] if rl else None,
        "options": list(prov.get("options") or []),
        "prompt": qa[2],
        "answer": qa[3],
        "data_source": rl["data_source"] if rl else None,
        "ground_truth": rl["reward_model"]["ground_truth"] if rl else [],
        "teacher": prov.get("teacher"),
        "prompt_versions": [{"name": k, "version": v} for k, v in sorted((prov.get("prompt_versions") or {}).items())],
        "human_reviewed": bool(prov.get("human_reviewed")),
        "reviewer": prov.get("reviewer"),
        "sft_record": sft_line,
    }


def build_dataset_dict(rows_by_subset: dict[str, list[dict]]):
    import pyarrow as pa
    from datasets import Dataset, DatasetDict, DatasetInfo

    features = hf_features()
    # Arrow builds the columns straight from the rows (datasets' per-example encoding is ~10x
    # slower); the features are explicit either way, so types never depend on the data.
    schema = features.arrow_schema
    return DatasetDict(
        {
            name: Dataset(pa.Table.from_pylist(rows, schema=schema), info=DatasetInfo(features=features), split=name)
            for name, rows in sorted(rows_by_subset.items())
        }
    )


class CorpusStats:
    """The dataset card's statistics, row by row (nothing but counters and one float per row)."""

    def __init__(self):
        self.subsets: dict[str, int] = {}
        self.videos: set[str] = set()
        self.thoughts: list[int] = []
        self.windows = array("d")  # summed as sum() sums a list, in row order
        self.human_reviewed = 0
        self.teachers: set[str] = set()

    def add(self, row: dict) -> None:
        self.subsets[row["subset"]] = self.subsets.get(row["subset"], 0) + 1
        self.videos.add(row["video_id"])
        self.thoughts.append(len(row["thoughts"]))
        self.windows.append(row["video_end"] - row["video_start"])
        self.human_reviewed += bool(row["human_reviewed"])
        if row["teacher"]:
            self.teachers.add(row["teacher"])

    def result(self, excluded: dict[str, int]) -> dict:
        n, windows = len(self.thoughts), self.windows
        return {
            "records": n,
            "subsets": dict(sorted(self.subsets.items())),
            "videos": len(self.videos),
            "thoughts": sum(self.thoughts),
            "thoughts_per_record_mean": round(sum(self.thoughts) / n, 2) if n else 0,
            "window_seconds_mean": round(sum(windows) / n, 2) if n else 0,
            "window_seconds_max": round(max(windows), 2) if n else 0,
            "hours_of_video_windows": round(sum(windows) / 3600, 3),
            "human_reviewed": self.human_reviewed,
            "teachers": sorted(self.teachers),
            "excluded_by_reason": dict(sorted(excluded.items())),
        }


def corpus_stats(rows_by_subset: dict[str, list[dict]], excluded: dict[str, int]) -> dict:
    stats = CorpusStats()
    for rows in rows_by_subset.values():
        for row in rows:
            stats.add(row)
    return stats.result(excluded)


def dataset_card(name: str, stats: dict, recipe: dict | None, run: str) -> str:
    """README.md of the exported dataset: what it is, its statistics, how it was made."""
    subsets = "\n".join(f"| `{s}` | {n} |" for s, n in stats["subsets"].items())
    excluded = "\n".join(f"| `{r}` | {n} |" for r, n in stats["excluded_by_reason"].items()) or "| (none) | 0 |"
    # The export's policy notes (judge used or not, answer-letter balance), when the export gives them.
    notes = "".join(f"- {n}\n" for n in stats.get("policy_notes") or [])
    letters = stats.get("answer_letters") or {}
    letter_row = f"| answer letters (multiple choice) | {', '.join(f'{k}: {v}' for k, v in letters.items())} |\n" if letters else ""
    return f"""---
pretty_name: {name}
task_categories:
- video-text-to-text
tags:
- video
- streaming
- chain-of-thought
- vst
size_categories:
- {"n<1K" if stats["records"] < 1000 else "1K<n<10K" if stats["records"] < 10000 else "10K<n<100K" if stats["records"] < 100000 else "100K<n<1M"}
---

# {name}

Streaming-thought training data in the format of Video Streaming Thinking (VST): each record is a
video window with one time-stamped thought per clip and a question answered at the end. Built by
the VST workbench, run `{run}`. Load it with `datasets.load_from_disk(<this folder>)`; the column
`sft_record` holds the exact line of the SFT JSONL export, and the RL columns (`prompt`,
`question`, `data_source`, `ground_truth`) are those of the RL Parquet export.

Video paths (`video`) are relative to the export root (the folder holding `videos/`, `sft/`,
`rl/` and this `hf/` folder).

## Statistics

| | |
|---|---|
| records | {stats["records"]} |
| videos | {stats["videos"]} |
| thoughts | {stats["thoughts"]} (mean {stats["thoughts_per_record_mean"]} per record) |
| window length | mean {stats["window_seconds_mean"]} s, max {stats["window_seconds_max"]} s |
| human reviewed | {stats["human_reviewed"]} |
| teachers | {", ".join(stats["teachers"]) or "-"} |
{letter_row}
| subset (split) | records |
|---|---|
{subsets}

Chains left out of the export, by reason:

| reason | chains |
|---|---|
{excluded}

{notes}
## Features

{", ".join(f"`{k}`" for k in hf_features())}

## Recipe that made it

```yaml
{yaml.safe_dump(recipe or {}, sort_keys=False).strip()}
```
"""


# ---- written row by row ---------------------------------------------------------------------------
@dataclass
class _ColumnSize:
    length: int = 0
    nulls: int = 0
    value_bytes: int = 0
    offsets: bool = False  # strings and lists: 4 bytes an item
    bits: bool = False  # booleans: a bit an item

    @property
    def nbytes(self) -> int:
        bitmap = -(-self.length // 8)
        return self.value_bytes + (bitmap if self.nulls else 0) + (4 * self.length if self.offsets else 0) + (bitmap if self.bits else 0)


class OneChunkSize:
    """`nbytes` of one table holding every row added (as `Table.from_pylist` of all the rows has
    it), summed over tables of a few rows each: per column (and nested child) the lengths, nulls
    and value bytes add up; a validity bitmap is ceil(length / 8) bytes when the column has a null."""

    def __init__(self):
        self.columns: dict[tuple, _ColumnSize] = {}

    def add(self, table: pa.Table) -> None:
        for name in table.column_names:
            for chunk in table[name].chunks:
                self._add((name,), chunk)

    def _add(self, path: tuple, arr: pa.Array) -> None:
        t = arr.type
        size = self.columns.setdefault(path, _ColumnSize())
        size.length += len(arr)
        size.nulls += 0 if pa.types.is_null(t) else arr.null_count
        if pa.types.is_struct(t):
            for j in range(t.num_fields):
                self._add((*path, t.field(j).name), arr.field(j))
        elif pa.types.is_list(t):
            size.offsets = True
            start, end = arr.offsets[0].as_py(), arr.offsets[-1].as_py()
            self._add((*path, "[]"), arr.values.slice(start, end - start))
        elif pa.types.is_string(t) or pa.types.is_binary(t):
            size.offsets = True
            size.value_bytes += pc.sum(pc.binary_length(arr)).as_py() or 0
        elif pa.types.is_boolean(t):
            size.bits = True
        elif not pa.types.is_null(t):
            size.value_bytes += len(arr) * (t.bit_width // 8)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.columns.values())


class _SplitWriter:
    """One split: its rows written through datasets' ArrowWriter in 1,000-row batches, as
    `save_to_disk` writes them, while their in-memory size is summed (`OneChunkSize`); at the end
    the split is sharded as `save_to_disk` would shard it (the file is re-cut past 500 MB) and its
    state.json and dataset_info.json are written."""

    def __init__(self, folder: Path, name: str):
        from datasets.arrow_writer import ArrowWriter

        self.folder, self.name = folder / name, name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.features = hf_features()
        self.schema = self.features.arrow_schema
        self.path = self.folder / "data.arrow.partial"
        self.writer = ArrowWriter(features=self.features, path=str(self.path), embed_local_files=True)
        self.size = OneChunkSize()
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) == 1000:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=self.schema)
            self.size.add(table)
            self.writer.write_table(table)
            self.count += len(self.rows)
            self.rows = []

    def close(self) -> None:
        from datasets import config
        from datasets.arrow_writer import get_writer_batch_size_from_data_size
        from datasets.utils.py_utils import convert_file_size_to_int

        self._flush()
        self.writer.finalize()
        self.writer.close()
        nbytes = self.size.nbytes
        shards = min(self.count, int(nbytes / convert_file_size_to_int(config.MAX_SHARD_SIZE)) + 1)
        batch = config.DEFAULT_MAX_BATCH_SIZE
        if nbytes > 0:
            batch = min(batch, get_writer_batch_size_from_data_size(self.count, nbytes))
        names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
        if shards == 1 and batch == config.DEFAULT_MAX_BATCH_SIZE:
            self.path.rename(self.folder / names[0])
        else:
            self._reshard(names, batch)
        self._write_state(names)

    def _reshard(self, names: list[str], batch: int) -> None:
        """Re-cut the written rows into `names` as `Dataset.shard(contiguous=True)` cuts them, each
        written in `batch`-row tables (`save_to_disk` past 500 MB, or with very large rows)."""
        from datasets.arrow_writer import ArrowWriter

        div, mod = divmod(self.count, len(names))
        sizes = [div + (1 if i < mod else 0) for i in range(len(names))]
        with pa.OSFile(str(self.path), "rb") as source:  # read, not mapped: the split may be GBs
            reader = pa.ipc.open_stream(source)
            pending = pa.Table.from_batches([], schema=reader.schema)
            for name, size in zip(names, sizes):
                writer = ArrowWriter(features=self.features, path=str(self.folder / name), embed_local_files=True)
                left = size
                while left:
                    while pending.num_rows < min(batch, left):
                        pending = pa.concat_tables([pending, pa.Table.from_batches([reader.read_next_batch()])])
                    take = min(batch, left)
                    writer.write_table(pending.slice(0, take))
                    pending, left = pending.slice(take), left - take
                writer.finalize()
                writer.close()
        self.path.unlink()

    def _write_state(self, names: list[str]) -> None:
        from datasets import DatasetInfo
        from datasets.utils.py_utils import asdict

        digest = hashlib.blake2b(digest_size=8)
        for name in names:
            with open(self.folder / name, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": digest.hexdigest(), "_format_columns": None,
                 "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": self.name}  # fmt: skip
        with open(self.folder / "state.json", "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
        info = asdict(DatasetInfo(features=self.features))
        with open(self.folder / "dataset_info.json", "w", encoding="utf-8") as fh:
            json.dump({key: info[key] for key in sorted(info)}, fh, indent=2)


class DatasetDictWriter:
    """A DatasetDict written row by row, split after split (rows come in split order): the files
    `DatasetDict.save_to_disk` writes for all the rows at once (one folder per split, sharded
    alike, dataset_dict.json, the card as README.md), except state.json's fingerprint, a hash of
    the split's data where `save_to_disk` hashes the pickled in-memory table."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.split: _SplitWriter | None = None
        self.splits: list[str] = []

    def add(self, split: str, row: dict) -> None:
        if self.split is None or self.split.name != split:
            self._close_split()
            self.split = _SplitWriter(self.folder, split)
            self.splits.append(split)
        self.split.add(row)

    def _close_split(self) -> None:
        if self.split is not None:
            self.split.close()
            self.split = None

    def close(self, card: str) -> None:
        self._close_split()
        if self.splits:
            with open(self.folder / "dataset_dict.json", "w", encoding="utf-8") as fh:
                json.dump({"splits": self.splits}, fh)
            (self.folder / "README.md").write_text(card, encoding="utf-8")
        else:
            (self.folder / "README.md").write_text(card)


def write_dataset(rows_by_subset: dict[str, list[dict]], out_dir: Path, card: str) -> Path:
    import datasets

    datasets.disable_progress_bars()  # run logs stay readable
    dd = build_dataset_dict(rows_by_subset)
    dd.save_to_disk(str(out_dir))
    (Path(out_dir) / "README.md").write_text(card, encoding="utf-8")
    return Path(out_dir)
