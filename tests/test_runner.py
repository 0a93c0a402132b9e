"""The local runner's promises: a crashing worker or a raising stage costs only its own item."""

from __future__ import annotations

import os

from pipelines.rundir import RunDir
from pipelines.runners.local import LocalRunner, plan_parts
from pipelines.stage import Stage, StageContext, StageParams


def _crashy(rows, params, ctx):
    out = []
    for row in rows:
        if row["video_id"] == "crash":
            os._exit(139)  # what a segfaulting decoder looks like from outside
        if row["video_id"] == "raise":
            raise RuntimeError("a bug in the stage")
        out.append({"clip_id": row["video_id"] + "-c0000", "video_id": row["video_id"], "index": 0})
    return out


class Params(StageParams):
    stage: str = "crashy"


CRASHY = Stage(
    name="crashy", output_table="clips", fn=_crashy, params_model=Params, key="video_id",
    input_table="videos", kind="cpu", ref="test_runner:CRASHY",
    failed_row=lambda item, reason, msg: {"clip_id": item["video_id"] + "-none", "video_id": item["video_id"],
                                          "status": "failed", "reason": reason, "error": msg},
)


def test_crashing_and_raising_items_fail_alone(tmp_path, project_root):
    run_dir = RunDir(tmp_path / "run")
    ctx = StageContext(run="r", run_root=run_dir.root, project_root=project_root)
    inputs = [{"video_id": v} for v in ("a", "b", "crash", "c", "raise", "d", "e")]
    summary = LocalRunner(workers=2, part_size=3, progress=False).run_stage(CRASHY, Params(), run_dir, ctx, inputs)
    rows = {r["video_id"]: r for r in run_dir.read_rows("clips")}
    assert sorted(rows) == ["a", "b", "c", "crash", "d", "e", "raise"]
    assert rows["crash"]["reason"] == "worker_crashed" and "worker process died" in rows["crash"]["error"]
    assert rows["raise"]["reason"] == "stage_error" and "a bug in the stage" in rows["raise"]["error"]
    assert all(rows[v]["status"] == "ok" for v in "abcde")
    assert summary["failed_by_reason"] == {"stage_error": 1, "worker_crashed": 1}


def test_parts_are_deterministic_whatever_the_input_order():
    rows = [{"k": i} for i in range(10)]
    a = plan_parts(rows, "k", 4)
    b = plan_parts(list(reversed(rows)), "k", 4)
    assert [p.name for p in a] == [p.name for p in b]
    assert [len(p.rows) for p in a] == [4, 4, 2]
