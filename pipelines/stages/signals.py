"""signals: clips -> clip_signals (what cheap local detectors measure on a few keyframes per clip).

Each ok clip gets one row: brightness, blur, motion and camera direction, on-screen text (RapidOCR),
people and faces (OpenCV), the scene's colour (curation/video/signals.py). Recipe thresholds turn a
clip outside the bars into a `failed` row whose `reason` is the first exclusion code and whose
`exclude_reasons` lists them all; its measurements are kept, so a threshold can be re-judged in SQL
without decoding again. Units, defaults and their sources: docs/signals.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curation.video.signals import SignalConfig, measure_clip
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed


class SignalsParams(StageParams):
    stage: Literal["signals"] = "signals"
    keyframes: int = Field(3, ge=1, le=16, description="frames measured per clip, spread over it")
    ocr: bool = Field(True, description="read on-screen text (RapidOCR, about 0.2-0.8 s per frame on a CPU)")
    ocr_frames: int = Field(1, ge=0, le=16, description="keyframes OCR reads (the slowest signal: fewer than the others)")
    people: bool = Field(True, description="count upright people (OpenCV HOG)")
    faces: bool = Field(True, description="count frontal faces (OpenCV Haar cascade)")
    analysis_width: int = Field(576, ge=64, le=4096, description="frames are measured this wide (Open-Sora's flow scorer width)")
    flow_gaps_s: list[float] = Field(
        [0.04, 0.2], min_length=1, max_length=4,
        description="flow between each keyframe and the frames this long after it (at least 1 frame): a short gap sees chaos, a longer one slow motion",
    )
    # Thresholds: null disables one. Sources in docs/signals.md.
    min_brightness: float | None = Field(20.0, ge=0, le=255, description="DataFlow-MM lum_min")
    max_brightness: float | None = Field(140.0, ge=0, le=255, description="DataFlow-MM lum_max")
    max_text_area: float | None = Field(0.3, ge=0, le=1, description="DataFlow-MM ocr_max (share of the frame under text)")
    min_motion: float | None = Field(0.03, ge=0, description="px/s at analysis_width; below: too_static")
    max_motion: float | None = Field(150.0, gt=0, description="px/s at analysis_width; above: too_chaotic")
    min_blur: float | None = Field(None, ge=0, description="variance of the Laplacian; below: too_blurry (off by default)")

    @model_validator(mode="after")
    def _bounds(self):
        if any(g <= 0 or g > 2.0 for g in self.flow_gaps_s):
            raise ValueError(f"flow_gaps_s ({self.flow_gaps_s}) must be in (0, 2] seconds")
        for low, high in (("min_brightness", "max_brightness"), ("min_motion", "max_motion")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo >= hi:
                raise ValueError(f"{low} ({lo}) must be below {high} ({hi})")
        return self

    def config(self) -> SignalConfig:
        return SignalConfig(self.keyframes, self.ocr, self.ocr_frames, self.analysis_width, tuple(self.flow_gaps_s), self.people, self.faces)


def load_clips(run_dir: RunDir, params: SignalsParams) -> list[dict]:
    """Clips with what decoding needs from their video (path, fps)."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos", ["video_id", "path", "fps"])}
    out = []
    for clip in run_dir.read_rows("clips"):
        video = videos.get(clip["video_id"]) or {}
        out.append({**clip, "video_path": video.get("path"), "fps": video.get("fps")})
    return out


def _base(clip: dict) -> dict:
    return {k: clip.get(k) for k in ("clip_id", "video_id", "window_id", "start_s", "end_s")}


def exclusions(row: dict, params: SignalsParams) -> list[str]:
    """The exclusion codes of a measured clip, in a fixed order (the first is the row's reason).
    A measure that was not taken (null) excludes nothing."""
    def below(value, bar):
        return value is not None and bar is not None and value < bar

    def above(value, bar):
        return value is not None and bar is not None and value > bar

    checks = [
        ("too_dark", below(row["brightness"], params.min_brightness)),
        ("too_bright", above(row["brightness"], params.max_brightness)),
        ("too_much_text", above(row["text_area"], params.max_text_area)),
        ("too_static", below(row["motion"], params.min_motion)),
        ("too_chaotic", above(row["motion"], params.max_motion)),
        ("too_blurry", below(row["blur"], params.min_blur)),
    ]
    return [code for code, hit in checks if hit]


MESSAGES = {
    "too_dark": lambda r, p: f"brightness {r['brightness']:.1f} < min_brightness {p.min_brightness}",
    "too_bright": lambda r, p: f"brightness {r['brightness']:.1f} > max_brightness {p.max_brightness}",
    "too_much_text": lambda r, p: f"text_area {r['text_area']:.3f} > max_text_area {p.max_text_area}",
    "too_static": lambda r, p: f"motion {r['motion']:.3f} px/s < min_motion {p.min_motion}",
    "too_chaotic": lambda r, p: f"motion {r['motion']:.1f} px/s > max_motion {p.max_motion}",
    "too_blurry": lambda r, p: f"blur {r['blur']:.1f} < min_blur {p.min_blur}",
}


def clip_rate(clip: dict) -> float:
    """The clip's own frame rate (its frames over its real length): flow is per second of the
    clip, and a variable-rate video's average rate is not the rate inside one of its scenes."""
    frames, seconds = clip["end_frame"] - clip["start_frame"], (clip.get("end_s") or 0) - (clip.get("start_s") or 0)
    return frames / seconds if frames > 0 and seconds > 0 else clip["fps"]


def signals_row(clip: dict, params: SignalsParams) -> dict:
    if not clip.get("video_path") or not clip.get("fps"):
        return failed("decode_error", f"{clip['clip_id']}: its video has no path or frame rate in `videos`", **_base(clip))
    try:
        measured = measure_clip(clip["video_path"], clip["start_frame"], clip["end_frame"], clip_rate(clip), params.config())
    except Exception as err:  # one unreadable clip must not cost the others
        message = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        return failed("decode_error", f"{clip['clip_id']}: frames {clip['start_frame']}-{clip['end_frame']} of {clip['video_path']}: {message}", **_base(clip))
    row = {**_base(clip), **measured.columns()}
    codes = exclusions(row, params)
    row["exclude_reasons"] = codes
    if codes:
        error = f"{clip['clip_id']}: " + "; ".join(MESSAGES[c](row, params) for c in codes)
        return {**row, "status": "failed", "reason": codes[0], "error": error}
    return {**row, "status": "ok"}


def signals_batch(clips: list[dict], params: SignalsParams, ctx: StageContext) -> list[dict]:
    return [signals_row(clip, params) for clip in clips]


def signals_failed_row(clip: dict, reason: str, message: str) -> dict:
    return failed(reason, message, **_base(clip))


STAGE = Stage(
    name="signals",
    output_table="clip_signals",
    fn=signals_batch,
    params_model=SignalsParams,
    key="clip_id",
    input_table="clips",
    reads=("videos",),
    kind="cpu",
    failed_row=signals_failed_row,
    load_inputs=load_clips,
)
