"""The corpus as a Hugging Face `datasets.DatasetDict` (one split per subset) + a dataset card.

Every row carries the exact SFT record line (`sft_record`), the RL fields, and its provenance
(run, chain id, teacher, prompt versions, human review), with explicit features so the types never
depend on what the first rows happen to hold.
"""

from __future__ import annotations

import json
from pathlib import Path

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


def hf_row(sft_line: str, rl: dict | None, prov: dict) -> dict:
    """One dataset row from the exported SFT line, the RL row and the provenance."""
    record = json.loads(sft_line)
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


def corpus_stats(rows_by_subset: dict[str, list[dict]], excluded: dict[str, int]) -> dict:
    all_rows = [r for rows in rows_by_subset.values() for r in rows]
    n = len(all_rows)
    thoughts = [len(r["thoughts"]) for r in all_rows]
    windows = [r["video_end"] - r["video_start"] for r in all_rows]
    return {
        "records": n,
        "subsets": {k: len(v) for k, v in sorted(rows_by_subset.items())},
        "videos": len({r["video_id"] for r in all_rows}),
        "thoughts": sum(thoughts),
        "thoughts_per_record_mean": round(sum(thoughts) / n, 2) if n else 0,
        "window_seconds_mean": round(sum(windows) / n, 2) if n else 0,
        "window_seconds_max": round(max(windows), 2) if n else 0,
        "hours_of_video_windows": round(sum(windows) / 3600, 3),
        "human_reviewed": sum(1 for r in all_rows if r["human_reviewed"]),
        "teachers": sorted({r["teacher"] for r in all_rows if r["teacher"]}),
        "excluded_by_reason": dict(sorted(excluded.items())),
    }


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


def write_dataset(rows_by_subset: dict[str, list[dict]], out_dir: Path, card: str) -> Path:
    import datasets

    datasets.disable_progress_bars()  # run logs stay readable
    dd = build_dataset_dict(rows_by_subset)
    dd.save_to_disk(str(out_dir))
    (Path(out_dir) / "README.md").write_text(card, encoding="utf-8")
    return Path(out_dir)
