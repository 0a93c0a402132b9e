"""Chain rows for the review tests, built from a real demo run's videos and clips.

The chain-producing stages are not needed: one chain per window with at least two clips, one
thought per clip, a multiple-choice question; written as a real `chains` part of the run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from curation.schemas import CHAINS, VERDICTS, to_table
from pipelines.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
TEACHER = "fixture-teacher"
PROMPT_VERSIONS = {"qa": "qa-v1", "think": "think-v1"}


def make_demo_run(runs_root: Path, name: str = "review") -> RunDir:
    """Run the demo recipe (ingest + segment) into runs_root/name: real videos and clips."""
    env = {**os.environ, "VSTW_RUNS": str(runs_root), "VSTW_PROGRESS": "0", "VSTW_HOME": str(REPO)}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", str(REPO / "tests/recipes/fixture-demo.yaml"), "--run", name, "--until", "segment"]
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return RunDir(runs_root / name)


def chain_rows(run_dir: RunDir, limit: int | None = None) -> list[dict]:
    """One chain per window of >= 2 clips, thoughts naming each clip's span."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos") if v["status"] == "ok"}
    windows: dict[str, list[dict]] = {}
    for clip in run_dir.read_rows("clips"):
        if clip["status"] == "ok":
            windows.setdefault(clip["window_id"], []).append(clip)
    rows = []
    for window_id in sorted(windows):
        clips = sorted(windows[window_id], key=lambda c: c["index"])
        if len(clips) < 2:
            continue
        video = videos[clips[0]["video_id"]]
        thoughts = [
            {
                "clip_id": c["clip_id"],
                "start_s": c["start_s"],
                "end_s": c["end_s"],
                "text": f"Clip {k + 1} ({c['start_s']:.1f}-{c['end_s']:.1f}s): a scene of {Path(video['path']).stem}.",
                "entities": [f"e{k}"],
            }
            for k, c in enumerate(clips)
        ]
        question = f"How many scenes does {Path(video['path']).stem} show?"
        rows.append(
            {
                "chain_id": "ch-" + hashlib.sha1(f"{window_id}|{question}".encode()).hexdigest()[:12],
                "window_id": window_id,
                "video_id": video["video_id"],
                "video_path": video["path"],
                "video_duration_s": video["duration_s"],
                "start_s": clips[0]["window_start_s"],
                "end_s": clips[0]["window_end_s"],
                "thoughts": thoughts,
                "qa": {
                    "type": "multiple_choice",
                    "question": question,
                    "options": ["A. 1", "B. 2", f"C. {len(clips)}", "D. 9"],
                    "answer": "C",
                    "evidence_clip_ids": [c["clip_id"] for c in clips],
                },
                "final_answer": "\\boxed{C}",
                "teacher": TEACHER,
                "prompt_versions": PROMPT_VERSIONS,
                "cache_keys": [],
                "raw_reply": None,
                "run": run_dir.name,
                "status": "ok",
                "reason": None,
                "error": None,
            }
        )
    return rows[:limit] if limit else rows


def write_chains(run_dir: RunDir, rows: list[dict]) -> None:
    run_dir.write_part("chains", "part-00000-x", to_table(rows, CHAINS))


def write_verdicts(run_dir: RunDir, rows: list[dict]) -> None:
    """Automatic-check verdicts (chain_id, check, passed), for the agreement numbers."""
    full = [{"score": 1.0 if r["passed"] else 0.0, "details": "{}", "checker_version": "test", "run": run_dir.name, "status": "ok", **r} for r in rows]
    run_dir.write_part("verdicts", "part-00000-x", to_table(full, VERDICTS))
