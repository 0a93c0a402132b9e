"""ingest: probe every input video; bad inputs become `failed` rows with a reason code."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from curation.video.probe import probe_video
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed


class IngestParams(StageParams):
    stage: Literal["ingest"] = "ingest"
    min_duration_s: float = Field(1.0, ge=0, description="shorter videos fail with too_short")
    max_duration_s: float = Field(4 * 3600.0, gt=0, description="longer videos fail with too_long")
    rotated: Literal["upright", "reject"] = Field(
        "upright", description="a video with a rotation display matrix: re-encode an upright copy in the run folder, or fail it as rotated")

    @model_validator(mode="after")
    def _order(self):
        if self.max_duration_s <= self.min_duration_s:
            raise ValueError(f"max_duration_s ({self.max_duration_s}) must be greater than min_duration_s ({self.min_duration_s})")
        return self


def input_id(item: dict) -> str:
    """Id of an input that has no content id of its own (missing, empty, duplicate, bad row):
    derived from its place in the input listing and its path, so it is stable and unique."""
    return "x" + hashlib.sha256(f"{item['input_index']}:{item['path']}".encode()).hexdigest()[:16]


def _base(item: dict) -> dict:
    return {
        "input_index": item["input_index"],
        "path": item["path"],
        "source_id": item.get("source_id"),
        "metadata_json": item.get("metadata_json"),
        "annotations": item.get("annotations") or [],
    }


def ingest_batch(items: list[dict], params: IngestParams, ctx: StageContext) -> list[dict]:
    rows = []
    for item in items:
        base = _base(item)
        if item.get("input_error"):
            reason, message = item["input_error"]
            rows.append(failed(reason, message, video_id=input_id(item), **base))
            continue
        probed = probe_video(item["path"], params.min_duration_s, params.max_duration_s)
        probed.setdefault("video_id", input_id(item))
        if probed["status"] == "ok" and probed.get("rotation"):
            probed = _upright(probed, item["path"], params, ctx)
        rows.append({**base, **probed})
    return rows


def _upright(probed: dict, path: str, params: IngestParams, ctx: StageContext) -> dict:
    """A rotated video: its upright copy becomes the row's path (or the row fails as rotated)."""
    from curation.video.upright import UprightError, upright_copy
    from pipelines.rundir import is_uri

    turn = f"{path}: the video is rotated {probed['rotation']} degrees (a display matrix)"
    if params.rotated == "reject":
        return {**probed, "status": "failed", "reason": "rotated", "error": f"{turn}; ingest rotated: reject refuses it"}
    if is_uri(ctx.run_root):
        return {**probed, "status": "failed", "reason": "rotated", "error": f"{turn}; its upright copy needs a local run folder"}
    dst = Path(ctx.run_root) / "upright" / f"{probed['video_id']}.mp4"
    try:
        upright_copy(path, dst, probed["frame_count"])
    except UprightError as err:
        return {**probed, "status": "failed", "reason": "rotated", "error": str(err)}
    return {**probed, "path": str(dst), "source_path": path}


def ingest_failed_row(item: dict, reason: str, message: str) -> dict:
    return failed(reason, f"{item['path']}: {message}", video_id=input_id(item), **_base(item))


def mark_duplicates(run_dir: RunDir, params: IngestParams) -> None:
    """Same content twice: the first input keeps the video, later ones fail as `duplicate`.
    Idempotent: only parts whose rows change are rewritten (atomically)."""
    import posixpath

    from curation.schemas import VIDEOS, to_table

    first: dict[str, tuple[int, str]] = {}
    tables = {p: run_dir.read_part(p).to_pylist() for p in run_dir.part_files("videos")}
    for rows in tables.values():
        for row in rows:
            if row["sha256"] and (row["status"] == "ok" or row["reason"] == "duplicate"):
                key = row["sha256"]
                if key not in first or row["input_index"] < first[key][0]:
                    first[key] = (row["input_index"], row["path"])
    for part, rows in tables.items():
        changed = False
        for row in rows:
            keep = first.get(row["sha256"])
            if keep is None or not (row["status"] == "ok" or row["reason"] == "duplicate"):
                continue
            if row["input_index"] != keep[0] and row["status"] == "ok":
                again = f"listed again (input {row['input_index']}; first listed as input {keep[0]})" if row["path"] == keep[1] else f"same content as {keep[1]}"
                row.update(status="failed", reason="duplicate", error=f"{row['path']}: {again}")
                row["video_id"] = input_id(row)  # the content id belongs to the kept copy
                changed = True
        if changed:
            run_dir.write_part("videos", posixpath.basename(part).removesuffix(".parquet"), to_table(rows, VIDEOS))


STAGE = Stage(
    name="ingest",
    output_table="videos",
    fn=ingest_batch,
    params_model=IngestParams,
    key="input_index",
    input_table=None,
    kind="cpu",
    failed_row=ingest_failed_row,
    finalize=mark_duplicates,
    select=lambda item: True,
)
