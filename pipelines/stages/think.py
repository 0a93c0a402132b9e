"""think: the streaming chain of a window for each question (table `chains`).

One thought per clip, in time order. Each thought is written by the teacher knowing only that
clip's description, the entities first seen in it (from the window's knowledge graph) and the
memory of the earlier thoughts, so it cannot know what comes later; a reply that names an entity
first seen in a later clip is refused (the repair request says why). Thoughts do not depend on
the question, so all questions of a window share them (one teacher call per clip, cached).
The final answer is the question's ground truth in \\boxed{}.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from curation.graph import mentions
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall, TeacherClient
from curation.teacher.structured import InvalidReply
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


class ThinkParams(StageParams):
    stage: Literal["think"] = "think"
    prompt: str = Field("think.v2", description="prompt template (curation/prompts)")
    max_words: int = Field(30, ge=3, le=200, description="a thought longer than this is refused")
    max_tokens: int = Field(80, ge=8, le=4096)
    require_new_entities: bool = Field(True, description="a clip with new entities needs a thought naming at least one of them")
    max_caption_chars: int = Field(800, ge=50)


class ThoughtReply(BaseModel):
    # A sentence of words (the pattern also steers small constrained models away from digit soup).
    thought: str = Field(..., min_length=3, max_length=600, pattern=r"^[A-Z][A-Za-z0-9 ,;:'()-]+[.!]$")


def load_questions(run_dir: RunDir, params: ThinkParams) -> list[dict]:
    """One record per question: the question, its window's graph, clips + captions, video facts."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "duration_s"])}
    graphs = {g["window_id"]: g for g in run_dir.read_rows("graphs") if g["status"] == "ok"}
    captions = {c["clip_id"]: c for c in run_dir.read_rows("captions", ["clip_id", "caption", "source", "prompt_version", "cache_key", "status"])}
    clips_by_window: dict[str, list[dict]] = {}
    for clip in run_dir.read_rows("clips", ["clip_id", "window_id", "index", "start_s", "end_s", "status"]):
        if clip["status"] == "ok":
            clips_by_window.setdefault(clip["window_id"], []).append(clip)
    out = []
    for q in run_dir.read_rows("questions"):
        graph = graphs.get(q["window_id"])
        clips = sorted(clips_by_window.get(q["window_id"], []), key=lambda c: c["index"])
        video = videos.get(q["video_id"]) or {}
        out.append({
            **q,
            "video_path": video.get("path"),
            "video_duration_s": video.get("duration_s"),
            "graph": graph,
            "clips": [{**c, "caption": (captions.get(c["clip_id"]) or {}).get("caption"), "caption_row": captions.get(c["clip_id"])} for c in clips],
        })  # fmt: skip
    return out


def chain_base(item: dict) -> dict:
    return {
        "chain_id": "ch-" + hashlib.sha1(str(item.get("question_id")).encode()).hexdigest()[:16],
        "question_id": item.get("question_id"),
        "qa_template": item.get("template"),
        **{k: item.get(k) for k in ("window_id", "video_id", "video_path", "video_duration_s", "start_s", "end_s", "qa")},
    }


def check_thought(reply: ThoughtReply, new: list[str], future: list[str], params: ThinkParams) -> None:
    text = reply.thought.strip()
    if len(text.split()) > params.max_words:
        raise InvalidReply(f"the thought has {len(text.split())} words; write at most {params.max_words}")
    leaked = [name for name in future if mentions(text, name)]
    if leaked:
        raise InvalidReply(f"the thought names {', '.join(leaked)}, which is not in this clip or the memory")
    if params.require_new_entities and new and not any(mentions(text, name) for name in new):
        raise InvalidReply(f"the thought must name what is new in this clip: {', '.join(new)}")


def thought_call(window: dict, k: int, memory: list[str], params: ThinkParams) -> tuple[TeacherCall, list[str]]:
    clips, entities = window["clips"], window["graph"]["entities"]
    clip = clips[k]
    order = {c["clip_id"]: i for i, c in enumerate(clips)}
    new = [e["name"] for e in entities if e["first_clip_id"] == clip["clip_id"]]
    known = [e["name"] for e in entities if order.get(e["first_clip_id"], 1 << 30) <= k]
    # A later entity whose name is part of a known one ("triangle" vs "red triangle") cannot be told apart: not checked.
    future = [e["name"] for e in entities if order.get(e["first_clip_id"], 1 << 30) > k and not any(e["name"] in n for n in known)]
    prompt = load_prompt(params.prompt)
    messages = prompt.messages(
        memory="\n".join(memory) or "(nothing yet)",
        start_s=f"{clip['start_s']:.1f}",
        end_s=f"{clip['end_s']:.1f}",
        caption=(clip["caption"] or "")[: params.max_caption_chars],
        new_entities=", ".join(new) or "nothing new",
        max_words=params.max_words,
    )
    call = TeacherCall("think", f"{window['window_id']}/{clip['clip_id']}", messages, ThoughtReply, prompt.version, params.max_tokens,
                       check=lambda r: check_thought(r, new, future, params))  # fmt: skip
    return call, known


async def window_thoughts(client: TeacherClient, window: dict, params: ThinkParams) -> tuple[list[dict], list, object | None]:
    """(thoughts, results, first failed result): clip by clip, each call seeing only the memory so far."""
    thoughts, results, memory = [], [], []
    for k, clip in enumerate(window["clips"]):
        call, known = thought_call(window, k, memory, params)
        result = await client.complete(call)
        results.append(result)
        if not result.ok:
            return thoughts, results, result
        text = " ".join(result.value.thought.split())  # type: ignore[union-attr]
        thoughts.append({"clip_id": clip["clip_id"], "start_s": clip["start_s"], "end_s": clip["end_s"], "text": text,
                         "entities": [n for n in known if mentions(text, n)]})  # fmt: skip
        memory.append(f"Time={clip['start_s']:.1f}-{clip['end_s']:.1f}s {text}")
    return thoughts, results, None


def prompt_versions(item: dict, think_version: str) -> dict:
    perceive = sorted({(c["caption_row"] or {}).get("prompt_version") or (c["caption_row"] or {}).get("source") or "?" for c in item["clips"]})
    return {"perceive": ",".join(perceive), "graph": item["graph"]["prompt_version"], "qa": item.get("prompt_version") or "template", "think": think_version}


def chain_row(item: dict, thoughts: list[dict], results: list, failure, params: ThinkParams) -> dict:
    keys = [(c["caption_row"] or {}).get("cache_key") for c in item["clips"]] + list(item["graph"]["cache_keys"] or []) + [item.get("cache_key")]
    keys = [k for k in keys + [r.cache_key for r in results] if k]
    base = chain_base(item) | {"teacher": results[0].model if results else None, "prompt_versions": prompt_versions(item, params.prompt), "cache_keys": keys}
    if failure is not None:
        return failed(failure.reason, f"{item['question_id']}: {failure.error}", **base, raw_reply=failure.raw_reply)
    texts = json.dumps([t["text"] for t in thoughts])
    base["chain_id"] = "ch-" + hashlib.sha1(f"{item['question_id']}|{texts}".encode()).hexdigest()[:16]
    return {**base, "thoughts": thoughts, "final_answer": "\\boxed{" + item["qa"]["answer"] + "}", "status": "ok"}


def think_batch(items: list[dict], params: ThinkParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    windows: dict[str, dict] = {}
    for item in items:
        if item["graph"] is None or not item["clips"] or any(c["caption"] is None for c in item["clips"]):
            rows[item["question_id"]] = failed("window_incomplete", f"{item['question_id']}: the window {item['window_id']} has no graph or a clip without description", **chain_base(item))
        else:
            windows.setdefault(item["window_id"], item)
    if windows:
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            return [rows.get(i["question_id"]) or failed(CONFIG_ERROR, str(err), **chain_base(i)) for i in items]

        async def all_windows():
            return await asyncio.gather(*(window_thoughts(client, w, params) for w in windows.values()))

        done = dict(zip(windows, client.run(all_windows())))
        record_usage(ctx, "think", [i["question_id"] for i in items], [r.usage for _, results, _ in done.values() for r in results])
        for item in items:
            if item["question_id"] not in rows:
                thoughts, results, failure = done[item["window_id"]]
                rows[item["question_id"]] = chain_row(item, thoughts, results, failure, params)
    return [rows[i["question_id"]] for i in items]


def think_failed_row(item: dict, reason: str, message: str) -> dict:
    return failed(reason, message, **chain_base(item))


STAGE = Stage(
    name="think",
    output_table="chains",
    fn=think_batch,
    params_model=ThinkParams,
    key="question_id",
    input_table="questions",
    kind="io",
    failed_row=think_failed_row,
    finalize=write_usage_report,
    load_inputs=load_questions,
)
