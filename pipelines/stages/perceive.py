"""perceive: one dense description per clip (table `captions`).

Three sources, chosen per clip:
- annotation: the input came with timestamped annotations (e.g. the synthetic samples' ground
  truth, dense-caption datasets): their texts are mapped onto clips by time overlap, no model call,
  and the things and events they name are read by rules into `facts` (curation.extract);
- teacher: a vision teacher sees a few keyframes of the clip (decord, resized, JPEG data URLs);
- signals: the clip's `clip_signals` row (stage `signals`: OCR text, people and faces, camera
  motion, brightness, colour) said in plain English by curation.perception, with graph facts
  (`facts`) the graph stage merges without a teacher.
`auto` takes the first of these the clip has: annotations, a vision teacher if the recipe names
one, signals. A clip with none fails with `no_perception_source`. A clip the signals stage
excluded (a recipe threshold) fails with `clip_excluded`, whatever the source: its window then
stops at graph (`clip_not_perceived`), since a streaming window needs every clip.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, Field

from curation.extract import extract_facts
from curation.importers.cues import KINDS as PROSE_KINDS
from curation.perception import SIGNALS_PROMPT_VERSION, perceive_signals
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall
from curation.video.clock import EPS_S
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


class PerceiveParams(StageParams):
    stage: Literal["perceive"] = "perceive"
    source: Literal["auto", "annotation", "teacher", "signals"] = Field(
        "auto", description="auto: annotations when the video has them, else the vision teacher (teacher.vision), else the clip's signals"
    )
    annotation_facts: bool = Field(
        True, description="annotation captions also carry the facts read from them by rules (curation.extract): the graph then needs no teacher"
    )
    skip_excluded: bool = Field(True, description="clips the signals stage excluded get no caption (clip_excluded), whatever the source")
    prompt: str = Field("caption.v1", description="prompt template (curation/prompts)")
    frames_per_clip: int = Field(3, ge=1, le=16)
    frame_width: int = Field(384, ge=32, le=2048, description="keyframes are resized to at most this width")
    jpeg_quality: int = Field(85, ge=10, le=100)
    max_tokens: int = Field(400, ge=16, le=8192)


class CaptionReply(BaseModel):
    caption: str = Field(..., min_length=3, max_length=1200)
    entities: list[str] = Field(..., max_length=16)
    actions: list[str] = Field(..., max_length=16)
    on_screen_text: list[str] = Field(..., max_length=8)


# What a signals caption reads from `clip_signals` (the rest of the row stays on disk).
SIGNAL_COLUMNS = [
    "clip_id", "brightness", "blur", "motion", "camera_direction", "ocr_text", "ocr_lines", "ocr_confidence",
    "people", "faces", "people_positions", "face_positions", "dominant_colour", "exclude_reasons", "status", "reason", "error",
]  # fmt: skip


def load_clips(run_dir: RunDir, params: PerceiveParams) -> list[dict]:
    """Clips with what perception needs: their video (path, fps, annotations), their signals row
    and the signals row of the clip before them in the same window (to say what changed)."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "fps", "annotations", "status"])}
    signals = {s["clip_id"]: s for s in run_dir.read_rows("clip_signals", SIGNAL_COLUMNS)} if run_dir.has_table("clip_signals") else {}
    clips = run_dir.read_rows("clips")
    by_position = {(c["video_id"], c["index"]): c for c in clips}
    out = []
    for clip in clips:
        video = videos.get(clip["video_id"]) or {}
        before = by_position.get((clip["video_id"], clip["index"] - 1))
        previous = signals.get(before["clip_id"]) if before is not None and before["window_id"] == clip["window_id"] else None
        out.append({**clip, "video_path": video.get("path"), "annotations": video.get("annotations") or [],
                    "signals": signals.get(clip["clip_id"]), "previous_signals": previous})  # fmt: skip
    return out


def _base(clip: dict) -> dict:
    return {k: clip.get(k) for k in ("clip_id", "video_id", "window_id", "start_s", "end_s")}


def annotation_caption(clip: dict, with_facts: bool = True) -> dict:
    """The texts of the annotations that overlap the clip (point events inside it), in time order,
    and (`told`) the prose sentences that end in it."""
    start, end = clip["start_s"], clip["end_s"]
    overlapping = [
        a for a in clip["annotations"]
        if ((a["start_s"] < end and a["end_s"] > start) or (a["start_s"] == a["end_s"] and start <= a["start_s"] < end)) and a["text"].strip()
    ]  # fmt: skip
    if not overlapping:
        return failed("no_annotation_in_clip", f"{clip['clip_id']}: no annotation overlaps {start:.2f}-{end:.2f} s", **_base(clip), source="annotation")
    caption = " ".join(a["text"].strip() for a in overlapping)
    facts = extract_facts(caption).model_dump_json() if with_facts else None
    # A sentence is stated where it ends: by then the whole of what it says has been seen.
    # (A point annotation is in the one clip the overlap rule gives it.)
    told = [a["text"].strip() for a in overlapping
            if a.get("kind") in PROSE_KINDS and (a["start_s"] == a["end_s"] or start < a["end_s"] <= end + EPS_S)]  # fmt: skip
    return {**_base(clip), "caption": caption, "entities": [], "actions": [], "on_screen_text": [], "facts": facts, "told": told,
            "source": "annotation", "status": "ok"}  # fmt: skip


def excluded(clip: dict) -> dict | None:
    """The failed caption of a clip the signals stage excluded (a threshold), else None."""
    sig = clip.get("signals")
    if sig is None or sig["status"] == "ok" or not sig.get("exclude_reasons"):
        return None
    codes = ", ".join(sig["exclude_reasons"])
    why = f": {sig['error']}" if sig.get("error") else ""
    return failed("clip_excluded", f"{clip['clip_id']}: excluded by the signals stage ({codes}){why}", **_base(clip))


def measured(sig: dict | None) -> bool:
    """A signals row with measurements: ok, or excluded by a threshold (measured, then judged)."""
    return sig is not None and (sig["status"] == "ok" or bool(sig.get("exclude_reasons")))


def signals_caption(clip: dict) -> dict:
    """The caption and graph facts of the clip's signals row (curation.perception)."""
    sig = clip.get("signals")
    if not measured(sig):
        why = "no clip_signals row: add the `signals` stage before perceive" if sig is None else f"its signals failed ({sig['reason']}: {sig.get('error')})"
        return failed("no_clip_signals", f"{clip['clip_id']}: {why}", **_base(clip), source="signals")
    previous = clip.get("previous_signals")
    seen = perceive_signals(sig, previous if measured(previous) else None)  # type: ignore[arg-type]
    return {**_base(clip), "caption": seen.caption, "entities": seen.entities, "actions": seen.actions, "on_screen_text": seen.on_screen_text,
            "source": "signals", "facts": seen.facts.model_dump_json(), "prompt_version": SIGNALS_PROMPT_VERSION, "status": "ok"}  # fmt: skip


def keyframe_urls(clip: dict, params: PerceiveParams) -> list[str]:
    """A few frames spread over the clip, as JPEG data URLs."""
    import cv2

    from curation.video.decode import read_frames

    first, last = clip["start_frame"], max(clip["start_frame"], clip["end_frame"] - 1)
    n = params.frames_per_clip
    indices = sorted({first + round((last - first) * (i + 0.5) / n) for i in range(n)})
    frames = read_frames(clip["video_path"], indices, target_width=params.frame_width)
    urls = []
    for frame in frames:
        ok, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        urls.append("data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode())
    return urls


def caption_call(clip: dict, urls: list[str], params: PerceiveParams) -> TeacherCall:
    prompt = load_prompt(params.prompt)
    messages = prompt.messages(n_frames=len(urls), start_s=f"{clip['start_s']:.1f}", end_s=f"{clip['end_s']:.1f}")
    text = messages[-1]["content"]
    messages[-1] = {"role": "user", "content": [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}
    return TeacherCall("perceive", clip["clip_id"], messages, CaptionReply, prompt.version, params.max_tokens, role="vision")


def _has_vision(ctx: StageContext) -> bool:
    return (ctx.recipe.get("teacher") or {}).get("vision") is not None


def _vision_client(ctx: StageContext):
    """(client, None) or (None, (reason, message)) when clips without annotations cannot be seen."""
    if not _has_vision(ctx):
        return None, ("no_perception_source", "perceive source `teacher`, but the recipe has no vision teacher (teacher.vision)")
    try:
        return teacher_client(ctx), None
    except TeacherConfigError as err:
        return None, (CONFIG_ERROR, str(err))


NO_SOURCE = ("the video has no annotations, the recipe has no vision teacher (teacher.vision) and the clip has no clip_signals row: "
             "add the `signals` stage before perceive, a teacher.vision endpoint, or annotations")  # fmt: skip


def choose_source(clip: dict, params: PerceiveParams, ctx: StageContext) -> str | None:
    """annotation, teacher or signals for this clip; None when `auto` finds none of them."""
    if params.source != "auto":
        return params.source
    if clip["annotations"]:
        return "annotation"
    if _has_vision(ctx):
        return "teacher"
    return "signals" if clip.get("signals") is not None else None


def perceive_batch(clips: list[dict], params: PerceiveParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    pending: list[tuple[dict, TeacherCall]] = []
    client, client_error = None, None
    for clip in clips:
        out = excluded(clip) if params.skip_excluded else None
        if out is not None:
            rows[clip["clip_id"]] = out
            continue
        source = choose_source(clip, params, ctx)
        if source is None:
            rows[clip["clip_id"]] = failed("no_perception_source", f"{clip['clip_id']}: {NO_SOURCE}", **_base(clip))
            continue
        if source == "annotation":
            rows[clip["clip_id"]] = annotation_caption(clip, params.annotation_facts)
            continue
        if source == "signals":
            rows[clip["clip_id"]] = signals_caption(clip)
            continue
        if client is None and client_error is None:
            client, client_error = _vision_client(ctx)
        if client_error is not None:
            reason, why = client_error
            rows[clip["clip_id"]] = failed(reason, f"{clip['clip_id']}: {why}", **_base(clip))
            continue
        try:
            urls = keyframe_urls(clip, params)
        except Exception as err:  # one unreadable video must not cost the other clips
            rows[clip["clip_id"]] = failed("decode_error", f"{clip['clip_id']}: keyframes of {clip['video_path']}: {str(err)[:300]}", **_base(clip))
            continue
        pending.append((clip, caption_call(clip, urls, params)))

    if pending:
        results = client.complete_all([call for _, call in pending])
        record_usage(ctx, "perceive", [c["clip_id"] for c, _ in pending], [r.usage for r in results])
        for (clip, call), result in zip(pending, results):
            common = {**_base(clip), "source": result.model, "prompt_version": call.prompt_version, "cache_key": result.cache_key}
            if not result.ok:
                rows[clip["clip_id"]] = failed(result.reason, result.error, **common, raw_reply=result.raw_reply)
                continue
            reply: CaptionReply = result.value  # type: ignore[assignment]
            rows[clip["clip_id"]] = {**common, "caption": reply.caption.strip(), "entities": reply.entities, "actions": reply.actions,
                                     "on_screen_text": reply.on_screen_text, "status": "ok"}  # fmt: skip
    return [rows[c["clip_id"]] for c in clips]


def perceive_failed_row(clip: dict, reason: str, message: str) -> dict:
    return failed(reason, message, **_base(clip))


STAGE = Stage(
    name="perceive",
    output_table="captions",
    fn=perceive_batch,
    params_model=PerceiveParams,
    key="clip_id",
    input_table="clips",
    reads=("videos",),
    reads_if_present=("clip_signals",),
    kind="io",
    failed_row=perceive_failed_row,
    finalize=write_usage_report,
    load_inputs=load_clips,
)
