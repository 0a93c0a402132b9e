"""A test corpus for the catalog, stats, report and notebook tests.

A real demo run (`vstw run tests/recipes/fixture-demo.yaml`: real videos -> videos + clips tables),
plus the tables later stages write (captions, graphs, chains, verdicts, reviews, teacher_usage),
generated here from the run's real clips with a fixed seed, and written the way the runner writes
them (`curation.schemas.to_table` + `RunDir.write_part`), so the layout is the runner's own.
Chains/verdicts deliberately include failures with reason codes, so that every report section has
something to count.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from curation.schemas import TABLES, to_table
from pipelines.rundir import RunDir

PROJECT = Path(__file__).resolve().parents[1]
DEMO_RECIPE = PROJECT / "tests" / "recipes" / "fixture-demo.yaml"
CHECKS = ["schema", "timing", "causality", "answer_consistency"]
QA_TYPES = ["multiple_choice", "numerical", "yes_no"]
CHECK_FAIL_REASONS = {"timing": "thought_span_outside_window", "causality": "thought_leaks_future", "answer_consistency": "answer_not_in_options"}
WORDS = "a red circle moves left while the blue square stays near the center of the frame and then leaves".split()


def vstw_env(runs: Path, home: Path | None = None) -> dict:
    env = {**os.environ, "VSTW_RUNS": str(runs), "VSTW_PROGRESS": "0", "COLUMNS": "200"}
    if home is not None:
        env["VSTW_HOME"] = str(home)
    return env


def vstw(args: list[str], runs: Path, home: Path | None = None, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    """The real `vstw` command line, in a child process (exit codes and stderr as a user sees them)."""
    exe = Path(sys.executable).with_name("vstw")
    return subprocess.run([str(exe), *args], cwd=cwd, env=vstw_env(runs, home), capture_output=True, text=True, timeout=600)


def make_home(root: Path) -> Path:
    """A project home for the CLI: its own data/ (so data/catalog.duckdb lands in the test's tmp)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'test-home'\n")
    return root


@lru_cache(maxsize=None)
def demo_run_template(cache_root: str) -> Path:
    """Run the demo recipe once per test process (videos + clips), into `cache_root`/runs/demo."""
    if not (PROJECT / "data" / "samples" / "manifest.jsonl").exists():
        from pipelines.samples import make_samples

        make_samples(PROJECT)
    runs = Path(cache_root) / "runs"
    # --until segment: videos + clips only, whatever later stages the demo recipe grows
    proc = vstw(["run", str(DEMO_RECIPE), "--run", "demo", "--until", "segment"], runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return runs / "demo"


def copy_run(template: Path, dest: Path) -> Path:
    """A copy of a run folder; under another name, its rows' `run` column says the new name, as
    if the runner had made it."""
    shutil.copytree(template, dest)
    if dest.name != template.name:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pipelines.rundir import atomic_write_parquet

        for part in dest.glob("*/part-*.parquet"):
            data = pq.read_table(part)
            column = data.schema.get_field_index("run")
            data = data.set_column(column, "run", pa.array([dest.name] * data.num_rows, pa.string()))
            atomic_write_parquet(part, data)
    return dest


def add_later_stages(run_root: Path, seed: int = 5, chains_per_window: int = 3, part_size: int = 4) -> dict:
    """Write captions, graphs, chains, verdicts, reviews and teacher_usage parts for the run's
    clips. Returns what was written (the rows), for tests that want to count independently."""
    run_dir = RunDir(run_root)
    rng = random.Random(seed)
    run = run_dir.name
    clips = [c for c in run_dir.read_rows("clips") if c["status"] == "ok"]
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos")}
    windows: dict[str, list[dict]] = {}
    for clip in sorted(clips, key=lambda c: (c["video_id"], c["index"])):
        windows.setdefault(clip["window_id"], []).append(clip)

    captions, graphs, chains, verdicts, reviews, usage = [], [], [], [], [], []
    for clip in clips:
        captions.append(
            {"clip_id": clip["clip_id"], "video_id": clip["video_id"], "window_id": clip["window_id"], "start_s": clip["start_s"],
             "end_s": clip["end_s"], "caption": sentence(rng), "entities": ["circle"], "source": "gemma-3-270m", "prompt_version": "caption-v1", "status": "ok"}
        )
        usage.append(usage_row(rng, "perceive", clip["clip_id"]))
    for window_id, wclips in sorted(windows.items()):
        graphs.append(
            {"window_id": window_id, "video_id": wclips[0]["video_id"], "start_s": wclips[0]["start_s"], "end_s": wclips[-1]["end_s"],
             "clip_ids": [c["clip_id"] for c in wclips], "entities": [], "relations": [], "teacher": "gemma-3-270m", "prompt_version": "graph-v1", "status": "ok"}
        )
        usage.append(usage_row(rng, "graph", window_id))
        for q in range(chains_per_window):
            chain = make_chain(rng, run, window_id, wclips, videos[wclips[0]["video_id"]], q)
            chains.append(chain)
            usage.append(usage_row(rng, "think", chain["chain_id"]))
            if chain["status"] != "ok":
                continue
            for check in CHECKS:
                passed = check not in CHECK_FAIL_REASONS or rng.random() > 0.3
                verdicts.append(
                    {"chain_id": chain["chain_id"], "check": check, "passed": passed, "score": 1.0 if passed else 0.0,
                     "details": "{}", "checker_version": "1", "status": "ok",
                     "reason": None if passed else CHECK_FAIL_REASONS[check]}
                )
            if rng.random() < 0.5:
                accept = rng.random() < 0.7
                reviews.append(
                    {"chain_id": chain["chain_id"], "task_id": len(reviews) + 1, "annotation_id": len(reviews) + 100, "reviewer": "ann@example.org",
                     "decision": "accept" if accept else "reject", "decision_reason": None if accept else "thought_wrong",
                     "labels": ["ok"] * len(chain["thoughts"]), "lead_time_s": round(rng.uniform(20, 200), 2), "status": "ok"}
                )

    written = {"captions": captions, "graphs": graphs, "chains": chains, "verdicts": verdicts, "reviews": reviews, "teacher_usage": usage}
    for table, rows in written.items():
        for start in range(0, len(rows), part_size):
            chunk = [dict(r, run=run) for r in rows[start : start + part_size]]
            for row in chunk:
                row.setdefault("status", "ok")
            run_dir.write_part(table, f"part-{start // part_size:05d}-test", to_table(chunk, TABLES[table]))
    return written


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))


def make_chain(rng: random.Random, run: str, window_id: str, wclips: list[dict], video: dict, q: int) -> dict:
    chain_id = f"{window_id}-q{q}"
    base = {"chain_id": chain_id, "window_id": window_id, "video_id": video["video_id"], "video_path": video["path"],
            "video_duration_s": video["duration_s"], "start_s": wclips[0]["start_s"], "end_s": wclips[-1]["end_s"], "teacher": "gemma-3-270m"}
    if rng.random() < 0.15:
        return {**base, "status": "failed", "reason": rng.choice(["teacher_invalid_json", "no_evidence"]), "error": "synthetic failure"}
    qa_type = QA_TYPES[q % len(QA_TYPES)]
    if qa_type == "multiple_choice":
        options = [f"{letter}. option {letter}" for letter in "ABCD"[: rng.randint(2, 4)]]
        answer = rng.choice("ABCD"[: len(options)])
        qa = {"type": qa_type, "question": "Which shape appeared first?", "options": options, "answer": answer, "evidence_clip_ids": [wclips[0]["clip_id"]]}
    elif qa_type == "numerical":
        qa = {"type": qa_type, "question": "How many shapes appeared?", "options": [], "answer": str(rng.randint(0, 5)), "evidence_clip_ids": []}
    else:
        qa = {"type": qa_type, "question": "Did a red circle appear?", "options": [], "answer": rng.choice(["Yes", "No"]), "evidence_clip_ids": []}
    thoughts = [{"clip_id": c["clip_id"], "start_s": c["start_s"], "end_s": c["end_s"], "text": sentence(rng), "entities": ["circle"]} for c in wclips]
    return {**base, "thoughts": thoughts, "qa": qa, "final_answer": f"\\boxed{{{qa['answer']}}}", "prompt_versions": {"think": "think-v1"}, "status": "ok"}


def usage_row(rng: random.Random, stage: str, item_id: str) -> dict:
    cached = rng.random() < 0.25
    failed = not cached and rng.random() < 0.05
    row = {"stage": stage, "item_id": item_id, "model": "gemma-3-270m", "cached": cached, "prompt_tokens": 0 if cached else rng.randint(100, 900),
           "completion_tokens": 0 if cached else rng.randint(20, 300), "retries": 0 if cached else rng.choice([0, 0, 0, 1, 2]),
           "latency_s": 0.001 if cached else round(rng.uniform(0.5, 4.0), 3), "cost_usd": 0.0 if cached else round(rng.uniform(0.0001, 0.002), 6), "status": "ok"}
    row["requests"] = 0 if cached else 1 + row["retries"]
    if failed:
        row.update(status="failed", reason="teacher_timeout", error="synthetic timeout")
    return row


@lru_cache(maxsize=None)
def full_corpus_template(cache_root: str) -> Path:
    """The demo run plus generated later-stage tables (built once per test process)."""
    demo = demo_run_template(cache_root)
    full = Path(cache_root) / "full-runs" / demo.name  # same name: the `run` column stays consistent
    if not full.exists():
        copy_run(demo, full)
        add_later_stages(full)
    return full
