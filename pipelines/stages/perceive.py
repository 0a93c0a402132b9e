"""perceive: one dense description per clip (table `captions`).

Two sources, chosen per video:
- annotation: the input came with timestamped annotations (e.g. the synthetic samples' ground
  truth, dense-caption datasets): their texts are mapped onto clips by time overlap, no model call;
- teacher: a vision teacher sees a few keyframes of the clip (decord, resized, JPEG data URLs).
A video with neither fails with `no_perception_source`.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, Field

from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report


class PerceiveParams(StageParams):
    stage: Literal["perceive"] = "perceive"
    source: Literal["auto", "annotation", "teacher"] = Field("auto", description="auto: annotations when the video has them, else the vision teacher")
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


def load_clips(run_dir: RunDir, params: PerceiveParams) -> list[dict]:
    """Clips with what perception needs from their video (path, fps, annotations)."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "fps", "annotations", "status"])}
    out = []
    for clip in run_dir.read_rows("clips"):
        video = videos.get(clip["video_id"]) or {}
        out.append({**clip, "video_path": video.get("path"), "annotations": video.get("annotations") or []})
    return out


def _base(clip: dict) -> dict:
    return {k: clip.get(k) for k in ("clip_id", "video_id", "window_id", "start_s", "end_s")}


def annotation_caption(clip: dict) -> dict:
    """The texts of the annotations that overlap the clip (point events inside it), in time order."""
    start, end = clip["start_s"], clip["end_s"]
    texts = [
        a["text"].strip()
        for a in clip["annotations"]
        if (a["start_s"] < end and a["end_s"] > start) or (a["start_s"] == a["end_s"] and start <= a["start_s"] < end)
    ]
    texts = [t for t in texts if t]
    if not texts:
        return failed("no_annotation_in_clip", f"{clip['clip_id']}: no annotation overlaps {start:.2f}-{end:.2f} s", **_base(clip), source="annotation")
    return {**_base(clip), "caption": " ".join(texts), "entities": [], "actions": [], "on_screen_text": [], "source": "annotation", "status": "ok"}


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


def _vision_client(ctx: StageContext):
    """(client, None) or (None, (reason, message)) when clips without annotations cannot be seen."""
    if ctx.recipe.get("teacher") is None or ctx.recipe["teacher"].get("vision") is None:
        return None, ("no_perception_source", "the video has no annotations and the recipe has no vision teacher (teacher.vision)")
    try:
        return teacher_client(ctx), None
    except TeacherConfigError as err:
        return None, (CONFIG_ERROR, str(err))


def perceive_batch(clips: list[dict], params: PerceiveParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    pending: list[tuple[dict, TeacherCall]] = []
    client, client_error = None, None
    for clip in clips:
        use_annotations = params.source == "annotation" or (params.source == "auto" and clip["annotations"])
        if use_annotations:
            rows[clip["clip_id"]] = annotation_caption(clip)
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
    kind="io",
    failed_row=perceive_failed_row,
    finalize=write_usage_report,
    load_inputs=load_clips,
)
