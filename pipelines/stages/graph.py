"""graph: one video knowledge graph per window (table `graphs`).

Per clip, the entities (type, attributes) and relations come from one of two places:
- the clip's caption carries `facts` (perceive `source: signals` writes them): they are used as
  they are, by code, no teacher call;
- otherwise the teacher reads the clip's description and names them.
curation.graph merges them deterministically into the window's graph, by the same rules whatever
their origin. Entities the description does not support are dropped (listed in
`dropped_entities`), so neither a teacher nor a fact can name what the clip's caption never said.
A window whose clips all carry facts needs no teacher at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError

from curation.graph import ClipExtraction, ClipFacts, grounded, merge_graph
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


class GraphParams(StageParams):
    stage: Literal["graph"] = "graph"
    source: Literal["auto", "teacher", "facts"] = Field(
        "auto", description="auto: clips whose caption carries facts are extracted from them, the others by the teacher; "
        "teacher: every clip by the teacher; facts: facts only (a window with a clip without facts fails, no_clip_facts)",
    )  # fmt: skip
    prompt: str = Field("graph.v1", description="prompt template (curation/prompts)")
    max_tokens: int = Field(300, ge=16, le=8192, description="per clip")
    max_caption_chars: int = Field(1200, ge=50, description="longer descriptions are cut (prompt size)")


def load_windows(run_dir: RunDir, params: GraphParams) -> list[dict]:
    """One record per window: its clips in order, each with its caption (or why it has none)."""
    captions = {c["clip_id"]: c for c in run_dir.read_rows("captions", ["clip_id", "caption", "facts", "status", "reason"])}
    windows: dict[str, dict] = {}
    for clip in sorted(run_dir.read_rows("clips"), key=lambda c: (c["video_id"], c["index"])):
        if clip["status"] != "ok":
            continue
        w = windows.setdefault(clip["window_id"], {
            "window_id": clip["window_id"], "video_id": clip["video_id"],
            "start_s": clip["window_start_s"], "end_s": clip["window_end_s"], "clips": [],
        })  # fmt: skip
        cap = captions.get(clip["clip_id"]) or {"status": "failed", "reason": "not_perceived", "caption": None, "facts": None}
        w["clips"].append({"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"], "caption": cap["caption"],
                           "facts": cap["facts"], "caption_status": cap["status"], "caption_reason": cap["reason"]})  # fmt: skip
    return list(windows.values())


def _base(window: dict) -> dict:
    return {k: window.get(k) for k in ("window_id", "video_id", "start_s", "end_s")} | {"clip_ids": [c["clip_id"] for c in window.get("clips", [])]}


def extraction_call(clip: dict, params: GraphParams) -> TeacherCall:
    prompt = load_prompt(params.prompt)
    caption = clip["caption"][: params.max_caption_chars].replace('"', "'")
    return TeacherCall("graph", clip["clip_id"], prompt.messages(caption=caption), ClipExtraction, prompt.version, params.max_tokens)


FACTS_VERSION = "facts"  # graphs.prompt_version of a window extracted from its captions' facts only


def uses_facts(clip: dict, params: GraphParams) -> bool:
    return params.source != "teacher" and bool(clip.get("facts"))


def teacher_clips(window: dict, params: GraphParams) -> list[dict]:
    return [c for c in window["clips"] if not uses_facts(c, params)]


def graph_window(window: dict, results: list, params: GraphParams) -> dict:
    """The window's graph from its clips' extractions: `results` are the teacher's replies for
    the clips without facts (teacher_clips), in order."""
    model = results[0].model if results else None
    version = FACTS_VERSION if not results else params.prompt if len(results) == len(window["clips"]) else f"{params.prompt}+{FACTS_VERSION}"
    common = {**_base(window), "teacher": model, "prompt_version": version, "cache_keys": [r.cache_key for r in results]}
    bad = next((r for r in results if not r.ok), None)
    if bad is not None:
        return failed(bad.reason, f"{window['window_id']}: {bad.error}", **common, raw_reply=bad.raw_reply)
    replies = iter(results)
    facts, dropped = [], []
    for clip in window["clips"]:
        if uses_facts(clip, params):
            try:
                extraction = ClipExtraction.model_validate_json(clip["facts"])
            except ValidationError as err:
                return failed("invalid_clip_facts", f"{window['window_id']}: the facts of {clip['clip_id']} are not a ClipExtraction: {str(err)[:300]}", **common)
        else:
            extraction = next(replies).value  # type: ignore[assignment]
        kept = [e for e in extraction.entities if grounded(e.name, clip["caption"])]
        dropped += [f"{clip['clip_id']}: {e.name}" for e in extraction.entities if e not in kept]
        facts.append(ClipFacts(clip["clip_id"], clip["start_s"], ClipExtraction(entities=kept, relations=extraction.relations)))
    entities, relations = merge_graph(facts)
    if not entities:
        who = "the teacher named" if results else "the clips' facts name"
        return failed("no_entities", f"{window['window_id']}: {who} no entity that the clip descriptions support", **common, dropped_entities=dropped)
    return {**common, "entities": entities, "relations": relations, "dropped_entities": dropped, "status": "ok"}


def _ready(window: dict, params: GraphParams) -> dict | None:
    """The failed row of a window that cannot be extracted yet, else None."""
    missing = [c for c in window["clips"] if c["caption_status"] != "ok"]
    if missing:
        which = ", ".join(f"{c['clip_id']} ({c['caption_reason']})" for c in missing[:5])
        return failed("clip_not_perceived", f"{window['window_id']}: no description for {len(missing)} clip(s): {which}", **_base(window))
    if params.source == "facts":
        without = [c["clip_id"] for c in window["clips"] if not c.get("facts")]
        if without:
            return failed("no_clip_facts", f"{window['window_id']}: graph source `facts`, but the captions of {len(without)} clip(s) carry none "
                          f"(perceive `source: signals` writes them): {', '.join(without[:5])}", **_base(window))  # fmt: skip
    return None


def graph_batch(windows: list[dict], params: GraphParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    todo = []
    for w in windows:
        not_ready = _ready(w, params)
        if not_ready is not None:
            rows[w["window_id"]] = not_ready
        else:
            todo.append(w)
    asking = [w for w in todo if teacher_clips(w, params)]  # windows that need the teacher
    client = None
    if asking:
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            for w in asking:
                rows[w["window_id"]] = failed(CONFIG_ERROR, str(err), **_base(w))
            todo = [w for w in todo if w["window_id"] not in rows]
            asking = []
    results = []
    if asking:
        calls = [extraction_call(c, params) for w in asking for c in teacher_clips(w, params)]
        results = client.complete_all(calls)
        record_usage(ctx, "graph", [w["window_id"] for w in asking], [r.usage for r in results])
    at = 0
    for w in todo:
        n = len(teacher_clips(w, params))
        rows[w["window_id"]] = graph_window(w, results[at : at + n], params)
        at += n
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
    reads=("clips",),
    kind="io",
    failed_row=graph_failed_row,
    finalize=write_usage_report,
    load_inputs=load_windows,
)
