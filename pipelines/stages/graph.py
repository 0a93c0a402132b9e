"""graph: one video knowledge graph per window (table `graphs`).

The teacher reads each clip's description and names its entities (type, attributes) and
relations; curation.graph merges them deterministically into the window's graph. Entities the
description does not support are dropped (listed in `dropped_entities`), so a teacher cannot
invent what the clip never showed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from curation.graph import ClipExtraction, ClipFacts, grounded, merge_graph
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


class GraphParams(StageParams):
    stage: Literal["graph"] = "graph"
    prompt: str = Field("graph.v1", description="prompt template (curation/prompts)")
    max_tokens: int = Field(300, ge=16, le=8192, description="per clip")
    max_caption_chars: int = Field(1200, ge=50, description="longer descriptions are cut (prompt size)")


def load_windows(run_dir: RunDir, params: GraphParams) -> list[dict]:
    """One record per window: its clips in order, each with its caption (or why it has none)."""
    captions = {c["clip_id"]: c for c in run_dir.read_rows("captions", ["clip_id", "caption", "status", "reason"])}
    windows: dict[str, dict] = {}
    for clip in sorted(run_dir.read_rows("clips"), key=lambda c: (c["video_id"], c["index"])):
        if clip["status"] != "ok":
            continue
        w = windows.setdefault(clip["window_id"], {
            "window_id": clip["window_id"], "video_id": clip["video_id"],
            "start_s": clip["window_start_s"], "end_s": clip["window_end_s"], "clips": [],
        })  # fmt: skip
        cap = captions.get(clip["clip_id"]) or {"status": "failed", "reason": "not_perceived", "caption": None}
        w["clips"].append({"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"],
                           "caption": cap["caption"], "caption_status": cap["status"], "caption_reason": cap["reason"]})  # fmt: skip
    return list(windows.values())


def _base(window: dict) -> dict:
    return {k: window.get(k) for k in ("window_id", "video_id", "start_s", "end_s")} | {"clip_ids": [c["clip_id"] for c in window.get("clips", [])]}


def extraction_call(clip: dict, params: GraphParams) -> TeacherCall:
    prompt = load_prompt(params.prompt)
    caption = clip["caption"][: params.max_caption_chars].replace('"', "'")
    return TeacherCall("graph", clip["clip_id"], prompt.messages(caption=caption), ClipExtraction, prompt.version, params.max_tokens)


def graph_window(window: dict, results: list, params: GraphParams) -> dict:
    model = results[0].model if results else None
    common = {**_base(window), "teacher": model, "prompt_version": params.prompt, "cache_keys": [r.cache_key for r in results]}
    bad = next((r for r in results if not r.ok), None)
    if bad is not None:
        return failed(bad.reason, f"{window['window_id']}: {bad.error}", **common, raw_reply=bad.raw_reply)
    facts, dropped = [], []
    for clip, result in zip(window["clips"], results):
        extraction: ClipExtraction = result.value  # type: ignore[assignment]
        kept = [e for e in extraction.entities if grounded(e.name, clip["caption"])]
        dropped += [f"{clip['clip_id']}: {e.name}" for e in extraction.entities if e not in kept]
        facts.append(ClipFacts(clip["clip_id"], clip["start_s"], ClipExtraction(entities=kept, relations=extraction.relations)))
    entities, relations = merge_graph(facts)
    if not entities:
        return failed("no_entities", f"{window['window_id']}: the teacher named no entity that the clip descriptions support", **common, dropped_entities=dropped)
    return {**common, "entities": entities, "relations": relations, "dropped_entities": dropped, "status": "ok"}


def graph_batch(windows: list[dict], params: GraphParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    todo = []
    for w in windows:
        missing = [c for c in w["clips"] if c["caption_status"] != "ok"]
        if missing:
            which = ", ".join(f"{c['clip_id']} ({c['caption_reason']})" for c in missing[:5])
            rows[w["window_id"]] = failed("clip_not_perceived", f"{w['window_id']}: no description for {len(missing)} clip(s): {which}", **_base(w))
        else:
            todo.append(w)
    if todo:
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            for w in todo:
                rows[w["window_id"]] = failed(CONFIG_ERROR, str(err), **_base(w))
            todo = []
    if todo:
        calls = [extraction_call(c, params) for w in todo for c in w["clips"]]
        results = client.complete_all(calls)
        record_usage(ctx, "graph", [w["window_id"] for w in todo], [r.usage for r in results])
        at = 0
        for w in todo:
            rows[w["window_id"]] = graph_window(w, results[at : at + len(w["clips"])], params)
            at += len(w["clips"])
    return [rows[w["window_id"]] for w in windows]


def graph_failed_row(window: dict, reason: str, message: str) -> dict:
    return failed(reason, message, **_base(window))


STAGE = Stage(
    name="graph",
    output_table="graphs",
    fn=graph_batch,
    params_model=GraphParams,
    key="window_id",
    input_table="captions",
    kind="io",
    failed_row=graph_failed_row,
    finalize=write_usage_report,
    load_inputs=load_windows,
)
