"""A generated corpus for the streaming tests: benchmarks/scale.py's chains in the runner's layout,
plus what a real run has besides (failed chains, repeated questions, a reviewer's reject)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipelines.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def scale_module():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_corpus(folder: Path, chains: int) -> RunDir:
    """Generated chains in the runner's layout, plus what a real run has besides: failed chains,
    exact and near repeats of a question about the same video (dedup), a reviewer's reject."""
    scale_module().generate(folder, chains)
    run = RunDir(folder)
    from curation.schemas import CHAINS, REVIEWS, to_table

    rows = run.read_rows("chains")
    extra = []
    for i, chain in enumerate(rows[:40:4]):
        repeat = {**chain, "chain_id": "ch-zz" + chain["chain_id"][3:], "question_id": "q-zz" + chain["question_id"][3:]}
        if i % 2:
            repeat["qa"] = {**chain["qa"], "question": chain["qa"]["question"].replace("(", "( now ", 1)}
        extra.append(repeat)
    failed = [{**c, "chain_id": "ch-failed" + c["chain_id"][3:], "status": "failed", "reason": "think_failed"} for c in rows[40:43]]
    run.write_part("chains", "part-99999-extra", to_table([{**r, "run": run.name} for r in extra + failed], CHAINS))
    review = {"chain_id": rows[50]["chain_id"], "task_id": 1, "annotation_id": 1, "reviewer": "r@x", "decision": "reject",
              "reviewed_at": "2026-01-01T00:00:00Z", "status": "ok", "run": run.name}  # fmt: skip
    run.write_part("reviews", "part-00000-r", to_table([review], REVIEWS))
    return run
