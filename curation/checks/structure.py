"""structure: the window and the thought spans are what VST's loader needs to stay aligned.

Every rule here is a silent-misalignment case of spec section 2: the loader would not fail, it
would train on thoughts paired with the wrong frames (or with none).
"""

from __future__ import annotations

from pydantic import Field

from curation.checks.base import CheckConfig, Issue, verdict
from curation.video.segment import VST_FPS, VST_MAX_FRAMES, vst_frame_count


class StructureConfig(CheckConfig):
    max_frames: int = Field(VST_MAX_FRAMES, ge=2, description="the trainer's FPS_MAX_FRAMES; window limit = max_frames / 2 fps")
    min_clip_s: float = Field(0.5, ge=0, description="shorter thought spans fail with clip_too_short")
    tolerance_s: float = Field(0.05, ge=0, description="slack for float timestamps (gaps, overlaps, ends)")
    require_contiguous: bool = Field(True, description="a gap between consecutive thoughts fails with thoughts_not_contiguous")


def clip_frame_slice(n: int, vs: float, ve: float, s: float, e: float) -> tuple[int, int]:
    """VST's slice of the window's N frames for the span [s, e] (spec section 2, step 2)."""
    span = ve - vs
    return int(n * (s - vs) / span), int(n * (e - vs) / span)


def check_structure(chain: dict, cfg: StructureConfig = StructureConfig()) -> dict:
    chain_id = chain["chain_id"]
    vs, ve = chain.get("start_s"), chain.get("end_s")
    duration = chain.get("video_duration_s")
    thoughts = chain.get("thoughts") or []
    tol = cfg.tolerance_s
    issues: list[Issue] = []

    if vs is None or ve is None:
        return verdict(chain_id, "structure", [Issue("window_missing", f"chain {chain_id}: window start/end missing")])
    if ve <= vs:
        issues.append(Issue("window_empty", f"window end {ve:.3f}s is not after its start {vs:.3f}s"))
    max_window_s = cfg.max_frames / VST_FPS
    if ve - vs > max_window_s + 1e-9:
        issues.append(Issue("window_too_long", f"window {vs:.1f}-{ve:.1f}s lasts {ve - vs:.1f}s > {max_window_s:.0f}s: the trainer keeps {cfg.max_frames} frames and every later thought is misaligned"))
    if duration is None or duration <= 0:
        issues.append(Issue("video_duration_unknown", f"video duration is {duration!r}; the window cannot be checked against the real video"))
    else:
        if vs >= duration:
            issues.append(Issue("window_start_past_video_end", f"window starts at {vs:.2f}s, the video ends at {duration:.2f}s"))
        elif ve > duration + tol:
            issues.append(Issue("window_past_video_end", f"window ends at {ve:.2f}s, past the video's real end {duration:.2f}s"))
    if not thoughts:
        issues.append(Issue("no_thoughts", "the chain has no thoughts"))

    window_ok = ve > vs
    n = vst_frame_count(vs, ve, cfg.max_frames) if window_ok else 0
    prev_s = prev_e = None
    for i, t in enumerate(thoughts):
        s, e = t.get("start_s"), t.get("end_s")
        where = {"thought": i}
        if s is None or e is None:
            issues.append(Issue("thought_span_missing", f"thought {i}: start/end missing", where))
            continue
        if e <= s:
            issues.append(Issue("thought_span_empty", f"thought {i}: span {s:.2f}-{e:.2f}s is empty", where))
        if s < vs - tol or e > ve + tol:
            issues.append(Issue("thought_outside_window", f"thought {i}: span {s:.2f}-{e:.2f}s is outside the window {vs:.2f}-{ve:.2f}s", where))
        if prev_s is not None:
            if s < prev_s - tol:
                issues.append(Issue("thoughts_out_of_order", f"thought {i} starts at {s:.2f}s, before thought {i - 1} ({prev_s:.2f}s)", where))
            elif s < prev_e - tol:
                issues.append(Issue("thoughts_overlap", f"thought {i} starts at {s:.2f}s, before thought {i - 1} ends ({prev_e:.2f}s)", where))
            elif cfg.require_contiguous and s > prev_e + tol:
                issues.append(Issue("thoughts_not_contiguous", f"gap of {s - prev_e:.2f}s between thought {i - 1} and thought {i}", where))
        if e - s < cfg.min_clip_s and e > s:
            issues.append(Issue("clip_too_short", f"thought {i}: clip of {e - s:.2f}s < {cfg.min_clip_s}s", where))
        if window_ok and e > s:
            lo, hi = clip_frame_slice(n, vs, ve, max(s, vs), min(e, ve))
            if hi <= lo:
                issues.append(Issue("clip_gets_no_frames", f"thought {i}: span {s:.2f}-{e:.2f}s gets no frame at 2 fps (slice {lo}:{hi} of {n})", where))
        prev_s, prev_e = s, e
    # Score: the share of thoughts without an issue; 0 when the window itself is wrong.
    bad = {i.where["thought"] for i in issues if "thought" in i.where}
    window_wrong = any("thought" not in i.where for i in issues)
    score = 0.0 if window_wrong else (len(thoughts) - len(bad)) / max(1, len(thoughts))
    return verdict(chain_id, "structure", issues, score=score, frames=n)
