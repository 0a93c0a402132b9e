"""think: the streaming chain of a window for each question (table `chains`).

One thought per clip, in time order, each knowing only its clip and the thoughts before it.
Three modes (`mode`):
- compose (default): written by code from the window's graph and captions (curation.compose):
  what is new, what changed since the memory, at most one reference back, never anything of a
  later clip; every thought passes the gate's rule checks before it is kept. No teacher.
- rewrite: the composed thought is given to the teacher to make fluent; the rewrite is kept only
  if it names the same entities and the same events and passes the same rule checks, else the
  composed thought stays with the reason in `fallback` (a teacher error falls back the same way,
  so a flaky teacher never costs a chain).
- teacher: the teacher writes each thought from the clip's description, the entities first seen
  in it and the memory; a reply naming an entity first seen in a later clip is refused (the
  repair request says why).
Thoughts do not depend on the question, so all questions of a window share them (one teacher
call per clip, cached). The final answer is the question's ground truth in \\boxed{}.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Literal

from pydantic import BaseModel, Field

from curation.checks.text import BASE_HEADS, events_told, noun_phrases, parse
from curation.compose import COMPOSE_VERSION, caption_rows, compose_thoughts, thought_issues, window_index
from curation.graph import mentions
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall, TeacherClient
from curation.teacher.structured import InvalidReply
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


log = logging.getLogger(__name__)


class ThinkParams(StageParams):
    stage: Literal["think"] = "think"
    mode: Literal["compose", "rewrite", "teacher"] = Field(
        "compose", description="compose: thoughts written by code from the graph (no teacher); rewrite: composed, then made fluent by "
        "the teacher when the rewrite says the same things; teacher: written by the teacher from the captions",
    )  # fmt: skip
    prompt: str = Field("think.v2", description="prompt template of mode teacher (curation/prompts)")
    rewrite_prompt: str = Field("rewrite.v1", description="prompt template of mode rewrite")
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
    captions = {c["clip_id"]: c for c in run_dir.read_rows("captions", ["clip_id", "caption", "entities", "told", "source", "prompt_version", "cache_key", "status"])}
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
            "clips": [{**c, "caption": (captions.get(c["clip_id"]) or {}).get("caption"), "entities": (captions.get(c["clip_id"]) or {}).get("entities"),
                       "told": (captions.get(c["clip_id"]) or {}).get("told"), "caption_row": captions.get(c["clip_id"])} for c in clips],
        })  # fmt: skip
    return out


def chain_base(item: dict) -> dict:
    return {
        "chain_id": "ch-" + hashlib.sha1(str(item.get("question_id")).encode()).hexdigest()[:16],
        "question_id": item.get("question_id"),
        "qa_template": item.get("template"),
        **{k: item.get(k) for k in ("window_id", "video_id", "video_path", "video_duration_s", "start_s", "end_s", "qa", "evidence_span")},
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


def known_names(window: dict, k: int) -> list[str]:
    """The names of the window's entities first seen at or before clip k (what thought k may name)."""
    order = {c["clip_id"]: i for i, c in enumerate(window["clips"])}
    return [e["name"] for e in window["graph"]["entities"] if order.get(e["first_clip_id"], 1 << 30) <= k]


def thought_call(window: dict, k: int, memory: list[str], params: ThinkParams) -> tuple[TeacherCall, list[str]]:
    clips, entities = window["clips"], window["graph"]["entities"]
    clip = clips[k]
    order = {c["clip_id"]: i for i, c in enumerate(clips)}
    new = [e["name"] for e in entities if e["first_clip_id"] == clip["clip_id"]]
    known = known_names(window, k)
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
                         "entities": [n for n in known if mentions(text, n)], "source": "teacher", "fallback": None})  # fmt: skip
        memory.append(f"Time={clip['start_s']:.1f}-{clip['end_s']:.1f}s {text}")
    return thoughts, results, None


def composed_thoughts(window: dict, params: ThinkParams, captions: dict | None = None, index=None) -> list[dict]:
    """The window's thoughts written by code (mode compose; the drafts of mode rewrite)."""
    return compose_thoughts(window["clips"], window["graph"], seed=window["window_id"], max_words=params.max_words, captions=captions, index=index)


def _told(text: str) -> frozenset:
    return events_told(tuple(w for sentence in parse(text).sentences for w in sentence))


def _things_told(text: str) -> set[tuple]:
    """What a text tells of each thing it names, as the checks' parser reads it: (head, colours, events)."""
    return {(m.head, m.colours, events_told(m.segment)) for m in noun_phrases(parse(text), BASE_HEADS, frozenset())}


def _things(text: str) -> set[tuple]:
    """The things a text names: (head, colours)."""
    return {(head, colours) for head, colours, _ in _things_told(text)}


def rewrite_problem(rewrite: str, composed: dict, names: list[str], earlier: list[dict], k: int, index, captions: dict) -> str | None:
    """Why a rewrite of thought k cannot replace the composed one (a reason code), or None.
    `names` are the window's entity names known by clip k; `earlier` the thoughts kept before."""
    said = {n for n in names if mentions(composed["text"], n)}
    now = {n for n in names if mentions(rewrite, n)}
    if now - said or _things(rewrite) - _things(composed["text"]):
        return "rewrite_adds_entity"
    if said - now:
        return "rewrite_drops_entity"
    if _told(rewrite) != _told(composed["text"]) or _things_told(rewrite) != _things_told(composed["text"]):
        return "rewrite_changes_events"
    candidate = {**composed, "text": rewrite, "entities": sorted(now, key=names.index), "source": "rewritten", "fallback": None}
    issues = thought_issues([*earlier, candidate], k, index, captions)
    return "rewrite_fails_check:" + issues[0].code if issues else None


async def window_rewrites(client: TeacherClient, window: dict, params: ThinkParams) -> tuple[list[dict], list]:
    """(thoughts, results): each composed thought rewritten by the teacher, clip by clip, the
    rewrite kept only when rewrite_problem finds nothing (else the composed one, with why)."""
    clips = window["clips"]
    captions = caption_rows(clips)
    index = window_index(clips, window["graph"], captions)
    prompt = load_prompt(params.rewrite_prompt)
    thoughts, results = [], []
    for k, composed in enumerate(composed_thoughts(window, params, captions, index)):
        names = known_names(window, k)
        memory = "\n".join(t["text"] for t in thoughts) or "(nothing yet)"
        messages = prompt.messages(composed=composed["text"], memory=memory, max_words=params.max_words)
        call = TeacherCall("think", f"{window['window_id']}/{composed['clip_id']}/rewrite", messages, ThoughtReply, prompt.version, params.max_tokens)
        result = await client.complete(call)
        results.append(result)
        if not result.ok:
            thoughts.append({**composed, "fallback": f"rewrite_{result.reason or 'failed'}"})
            continue
        text = " ".join(result.value.thought.split())  # type: ignore[union-attr]
        problem = rewrite_problem(text, composed, names, thoughts, k, index, captions) or ("rewrite_too_long" if len(text.split()) > params.max_words else None)
        if problem:
            thoughts.append({**composed, "fallback": problem})
        else:
            thoughts.append({**composed, "text": text, "entities": [n for n in names if mentions(text, n)], "source": "rewritten"})
    return thoughts, results


def think_version(params: ThinkParams) -> str:
    return {"compose": COMPOSE_VERSION, "rewrite": f"{COMPOSE_VERSION}+{params.rewrite_prompt}", "teacher": params.prompt}[params.mode]


def prompt_versions(item: dict, think_version: str) -> dict:
    perceive = sorted({(c["caption_row"] or {}).get("prompt_version") or (c["caption_row"] or {}).get("source") or "?" for c in item["clips"]})
    return {"perceive": ",".join(perceive), "graph": item["graph"]["prompt_version"], "qa": item.get("prompt_version") or "template", "think": think_version}


def chain_row(item: dict, thoughts: list[dict], results: list, failure, params: ThinkParams) -> dict:
    keys = [(c["caption_row"] or {}).get("cache_key") for c in item["clips"]] + list(item["graph"]["cache_keys"] or []) + [item.get("cache_key")]
    keys = [k for k in keys + [r.cache_key for r in results] if k]
    base = chain_base(item) | {"teacher": results[0].model if results else None, "prompt_versions": prompt_versions(item, think_version(params)), "cache_keys": keys}
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
    if windows and params.mode == "compose":
        composed = {window_id: composed_thoughts(w, params) for window_id, w in windows.items()}
        for item in items:
            if item["question_id"] not in rows:
                rows[item["question_id"]] = chain_row(item, composed[item["window_id"]], [], None, params)
    elif windows:
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            if params.mode == "rewrite":  # the composed thoughts stand without a teacher: say why on each
                log.warning("think rewrite: no teacher (%s); the composed thoughts are kept", err)
                composed = {w: [{**t, "fallback": f"rewrite_{CONFIG_ERROR}"} for t in composed_thoughts(win, params)] for w, win in windows.items()}
                return [rows.get(i["question_id"]) or chain_row(i, composed[i["window_id"]], [], None, params) for i in items]
            return [rows.get(i["question_id"]) or failed(CONFIG_ERROR, str(err), **chain_base(i)) for i in items]

        async def all_windows():
            if params.mode == "rewrite":
                return [(*r, None) for r in await asyncio.gather(*(window_rewrites(client, w, params) for w in windows.values()))]
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
    reads=("videos", "graphs", "captions", "clips"),
    kind="io",
    failed_row=think_failed_row,
    finalize=write_usage_report,
    load_inputs=load_questions,
)
