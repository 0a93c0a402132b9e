"""segment: videos -> clips (scene cuts, normalised lengths) grouped into windows."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curation.video.segment import (
    MIN_WINDOW_S,
    VST_MAX_FRAMES,
    WINDOW_TAIL_S,
    DetectorConfig,
    detect_cuts,
    group_windows,
    normalise_clips,
    vst_frame_indices,
)
from curation.video.clock import FrameClock
from pipelines.stage import Stage, StageContext, StageParams, failed


class SegmentParams(StageParams):
    stage: Literal["segment"] = "segment"
    detector: Literal["content", "adaptive", "transnetv2"] = "content"
    threshold: float = Field(27.0, ge=0, le=255, description="ContentDetector threshold (transnetv2: the content jump its flash and pan check looks at)")
    adaptive_threshold: float = Field(3.0, gt=0, description="AdaptiveDetector threshold")
    transnet_threshold: float = Field(0.4, gt=0, lt=1, description="TransNetV2 cut probability (NeMo Curator's tutorials: 0.4)")
    min_scene_len_s: float = Field(0.6, ge=0, description="seconds; a cut this close after the previous one is not a new scene")
    filter_mode: Literal["auto", "merge", "suppress"] = Field("auto", description="how PySceneDetect's FlashFilter drops cuts closer than min_scene_len_s")
    flash_max_s: float = Field(0.2, ge=0, le=2, description="a spike whose picture returns within this is a flash, not a cut (0: off)")
    pan_filter: bool = Field(True, description="a spike explained by a global camera translation (a whip pan) is not a cut")
    detect_width: int = Field(128, ge=16, le=4096, description="content/adaptive detection runs on frames this wide")
    range_workers: int = Field(2, ge=1, le=64, description="content/adaptive: a video of at least range_min_s is decoded in this many time ranges at once (processes)")
    range_min_s: float = Field(60.0, ge=0, description="videos this long or longer are split into range_workers time ranges")
    min_clip_s: float = Field(2.0, gt=0, description="shorter scenes are merged into a neighbour")
    max_clip_s: float = Field(10.0, gt=0, description="longer scenes are split")
    split: Literal["quietest", "even"] = "quietest"
    window_max_s: float = Field(192.0, gt=0, le=VST_MAX_FRAMES / 2, description="VST keeps at most 192 s of a window")
    window_tail_s: float = Field(WINDOW_TAIL_S, ge=0, description="a window ends at a scene cut within this many seconds before the cap")
    min_window_s: float = Field(MIN_WINDOW_S, ge=0, description="no shorter last window (at most window_max_s / 2 is used): one RL thinking chunk")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and "min_scene_len" in data:
            raise ValueError("min_scene_len (frames) was replaced by min_scene_len_s, in seconds (0.6 = 15 frames at 25 fps)")
        return data

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_clip_s < 2 * self.min_clip_s:
            raise ValueError(f"max_clip_s ({self.max_clip_s}) must be at least twice min_clip_s ({self.min_clip_s})")
        if self.window_max_s < self.max_clip_s:
            raise ValueError(f"window_max_s ({self.window_max_s}) must be at least max_clip_s ({self.max_clip_s})")
        return self

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(
            kind=self.detector,
            threshold=self.threshold,
            adaptive_threshold=self.adaptive_threshold,
            min_scene_len_s=self.min_scene_len_s,
            detect_width=self.detect_width,
            transnet_threshold=self.transnet_threshold,
            filter_mode=self.filter_mode,
            flash_max_s=self.flash_max_s,
            pan_filter=self.pan_filter,
        )


def segment_video(video: dict, params: SegmentParams) -> list[dict]:
    size = (video["width"], video["height"]) if video.get("width") and video.get("height") else None
    clock = FrameClock.of_path(video["path"])
    detection = detect_cuts(video["path"], params.detector_config(), fps=video["fps"], size=size, clock=clock,
                            range_workers=params.range_workers, range_min_s=params.range_min_s)  # fmt: skip
    if detection.frame_count == 0:
        return [failed("no_frames", f"{video['path']}: no frames decoded", clip_id=f"{video['video_id']}-none", video_id=video["video_id"])]
    if detection.times is None:  # the decoder gave another frame count than the index: times would be guesses
        raise RuntimeError(f"decoded {detection.frame_count} frames but the index lists {clock.frame_count}")
    times = detection.times
    clips = normalise_clips(detection, params.min_clip_s, params.max_clip_s, params.split)
    rows, index = [], 0
    windows = group_windows(clips, detection.fps, params.window_max_s, times=times, tail_s=params.window_tail_s, min_window_s=params.min_window_s)
    for w, window in enumerate(windows):
        window_id = f"{video['video_id']}-w{w:03d}"
        ws, we = float(times[window[0].start_frame]), float(times[window[-1].end_frame])
        for k, clip in enumerate(window):
            start_s, end_s = float(times[clip.start_frame]), float(times[clip.end_frame])
            rows.append(
                {
                    "clip_id": f"{video['video_id']}-c{index:04d}",
                    "video_id": video["video_id"],
                    "window_id": window_id,
                    "index": index,
                    "index_in_window": k,
                    "start_s": round(start_s, 6),
                    "end_s": round(end_s, 6),
                    "start_frame": clip.start_frame,
                    "end_frame": clip.end_frame,
                    "window_start_s": round(ws, 6),
                    "window_end_s": round(we, 6),
                    "cut_score": round(clip.cut_score, 4),
                    "boundary": clip.boundary,
                    "vst_frame_indices": vst_frame_indices(ws, we, start_s, end_s, clock.fps, clock.frame_count, frame_times=clock.ends),
                    "status": "ok",
                }
            )
            index += 1
    return rows


def segment_batch(videos: list[dict], params: SegmentParams, ctx: StageContext) -> list[dict]:
    rows = []
    for video in videos:
        try:
            rows.extend(segment_video(video, params))
        except Exception as err:  # a decoder error on one video must not cost the others
            rows.append(segment_failed_row(video, "decode_error", f"{video['path']}: {str(err).splitlines()[0][:300]}"))
    return rows


def segment_failed_row(video: dict, reason: str, message: str) -> dict:
    return failed(reason, message, clip_id=f"{video['video_id']}-none", video_id=video["video_id"], index=-1)


STAGE = Stage(
    name="segment",
    output_table="clips",
    fn=segment_batch,
    params_model=SegmentParams,
    key="video_id",
    input_table="videos",
    kind="cpu",
    failed_row=segment_failed_row,
)
