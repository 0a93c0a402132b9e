"""Scene segmentation into the clips that streaming thoughts are written for.

Three steps, each a plain function:
1. `detect_cuts`: PySceneDetect's own detectors (content or adaptive) fed with frames that
   decord decodes already downscaled (the expensive part of the CLI is full-size decoding), their
   flashes and camera moves dropped; or TransNetV2 (`transnet.py`), which also finds dissolves
   and fades;
2. `normalise_clips`: merge scenes shorter than `min_clip_s`, split those longer than
   `max_clip_s` into the fewest pieces that fit (each cut at the quietest frame that keeps the
   rest feasible, or evenly);
3. `group_windows`: consecutive clips grouped into windows of at most `window_max_s`, cut only
   at clip boundaries (VST's loader keeps at most 192 s of a window at 2 fps), preferring shot
   boundaries near the cap, with no short last window.
`vst_frame_indices` says which source frames VST's loader takes for a clip (spec section 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector
from scenedetect.common import FrameTimecode
from scenedetect.detector import FlashFilter

from curation.video.clock import EPS_S, FrameClock, decord_frame_times
from curation.video.decode import iter_frames
from curation.video.spikes import SpikeCheck, content_distance

VST_FPS = 2.0
VST_MAX_FRAMES = 384  # FPS_MAX_FRAMES in VST's recipe: 192 s at 2 fps
# Content-score units a split may trade for being one max-length away from the even split point.
QUIET_DISTANCE_WEIGHT = 1.0
# A window that does not reach the video's end ends at a shot boundary found this close to the cap.
WINDOW_TAIL_S = 30.0
# No last window shorter than this: VST's RL rollouts think once per chunk of 5,000-6,000 visual
# tokens, at most ~24 s of video (at least 256 tokens a second at 2 fps: 20-23 s; 280-384 frames
# over 8 turns: 17-24 s); a window shorter than a chunk gets no thinking turn (spec section 3).
MIN_WINDOW_S = 30.0
DetectorKind = Literal["content", "adaptive", "transnetv2"]
FilterMode = Literal["auto", "merge", "suppress"]


@dataclass(frozen=True)
class DetectorConfig:
    kind: DetectorKind = "content"
    threshold: float = 27.0  # ContentDetector threshold (PySceneDetect's default)
    adaptive_threshold: float = 3.0  # AdaptiveDetector's first parameter (not `threshold`)
    min_scene_len_s: float = 0.6  # seconds (the scenedetect CLI's default), frames = round(s * fps)
    detect_width: int = 128  # frames are decoded at most this wide for detection (content/adaptive)
    transnet_threshold: float = 0.4  # TransNetV2 cut probability (NeMo Curator's tutorials)
    # How PySceneDetect's FlashFilter enforces min_scene_len: "auto" = what the library's own
    # detector does (content and transnetv2 merge; adaptive suppresses, as AdaptiveDetector does).
    filter_mode: FilterMode = "auto"
    flash_max_s: float = 0.2  # a spike whose picture returns within this is a flash, not a cut; 0 = off
    pan_filter: bool = True  # a spike explained by a global camera translation (a whip pan) is no cut

    def min_scene_frames(self, fps: float) -> int:
        return max(0, int(round(self.min_scene_len_s * fps)))

    def flash_frames(self, fps: float) -> int:
        return max(0, int(round(self.flash_max_s * fps)))

    def resolved_filter_mode(self) -> str:
        if self.filter_mode != "auto":
            return self.filter_mode
        return "suppress" if self.kind == "adaptive" else "merge"

    def build(self):
        """PySceneDetect's own detector with its minimum scene length OFF: it proposes every frame
        above its threshold; `detect_cuts` checks the proposals, then enforces the minimum length
        with PySceneDetect's FlashFilter (the same filter the detector would have used)."""
        if self.kind == "adaptive":
            return AdaptiveDetector(adaptive_threshold=self.adaptive_threshold, min_scene_len=0)
        if self.kind == "content":
            return ContentDetector(threshold=self.threshold, min_scene_len=0)
        raise ValueError(f"{self.kind} is not a PySceneDetect frame-score detector")


@dataclass(frozen=True)
class Detection:
    fps: float
    frame_count: int
    cuts: list[int]  # frame numbers where a new scene starts (never 0)
    # per-frame score of a cut starting at that frame: the content score (difference to the previous
    # frame, 0-255) for content/adaptive, the probability (0-1) for transnetv2
    scores: np.ndarray
    times: np.ndarray | None = None  # time of each frame boundary 0..n (FrameClock.boundary_times)
    # proposed cuts found not to be cuts: frame -> "flash" or "camera_motion"
    suppressed: dict[int, str] = field(default_factory=dict)

    def boundary_times(self) -> np.ndarray:
        if self.times is not None:
            return self.times
        return np.arange(self.frame_count + 1, dtype=np.float64) / self.fps


def detect_cuts(
    path: str | Path,
    config: DetectorConfig = DetectorConfig(),
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    clock: FrameClock | None = None,
    range_workers: int = 1,
    range_min_s: float = 60.0,
) -> Detection:
    """Cuts by frame number; `clock` (default: read from the file) gives the frames' real times.

    content/adaptive: PySceneDetect's detector proposes the frames above its threshold, each
    proposal is dropped if it is a flash or a camera move (`SpikeCheck`), and PySceneDetect's
    FlashFilter then enforces `min_scene_len_s` on what is left. transnetv2: one proposal per run of
    frames above `transnet_threshold` (curation/video/transnet.py), dropped if it falls on a flash or
    a camera move (the same check on the network's own 48x27 frames), then the same FlashFilter.

    `range_workers` > 1: a content/adaptive video of at least `range_min_s` is decoded in that many
    time ranges at once (processes), so that one long file does not keep one core busy while the
    other waits; the result is the same as one pass (`_content_proposals`, `own`)."""
    clock = clock or FrameClock.of_path(path)
    fps = fps or clock.fps
    if config.kind == "transnetv2":
        scores, proposed, suppressed = _transnet_proposals(path, config, fps)
    elif range_workers > 1 and clock.duration_s >= range_min_s and clock.frame_count >= 4 * range_workers * RANGE_PRE_FRAMES:
        scores, proposed, suppressed = _content_proposals_in_ranges(path, config, fps, size, clock.frame_count, range_workers)
    else:
        scores, proposed, suppressed = _content_proposals(path, config, fps, size)
    frame_count = len(scores)
    cuts = min_scene_len_filter(proposed, frame_count, fps, config.min_scene_frames(fps), config.resolved_filter_mode())
    cuts = sorted({c for c in cuts if 0 < c < frame_count})
    times = clock.boundary_times() if clock.frame_count == frame_count else None
    return Detection(fps=fps, frame_count=frame_count, cuts=cuts, scores=np.asarray(scores, dtype=np.float64), times=times, suppressed=suppressed)


# A time range is decoded with this many frames before it (the previous frame of a score,
# AdaptiveDetector's rolling window) and `_range_after` frames after it (a cut proposed late,
# SpikeCheck's look-ahead), so that each frame it owns is scored and judged as in one pass.
RANGE_PRE_FRAMES = 16


def _range_after(config: DetectorConfig, fps: float) -> int:
    return config.flash_frames(fps) + SpikeCheck.MARGIN + RANGE_PRE_FRAMES


def _content_proposals(path, config: DetectorConfig, fps: float, size, own: tuple[int, int] | None = None) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """(scores, kept proposals, suppressed proposals) of the frames `own` = [first, stop) (default:
    the whole video); scores of a range are those of its own frames only."""
    detector = config.build()
    check = SpikeCheck(config.flash_frames(fps), config.pan_filter)
    start, stop = (0, None) if own is None else (max(0, own[0] - RANGE_PRE_FRAMES), own[1] + _range_after(config, fps))
    scores: list[float] = [0.0] * start  # indexed by frame number, as SpikeCheck reads them
    last = None
    for index, frame in iter_frames(path, target_width=config.detect_width, size=size, start=start, stop=stop):
        timecode = FrameTimecode(index, fps)
        proposed = [tc.frame_num for tc in detector.process_frame(timecode, frame)]
        # The per-frame score is kept on the detector; PySceneDetect exposes it publicly only
        # through a StatsManager, which would also compute edges we do not use.
        scores.append(float(getattr(detector, "_frame_score", None) or 0.0))
        check.push(index, frame, proposed, scores)
        last = timecode
    if last is not None:
        check.push(None, None, [tc.frame_num for tc in detector.post_process(last)], scores)
    kept, suppressed = check.finish(scores)
    if own is None:
        return np.asarray(scores, dtype=np.float64), kept, suppressed
    a, b = own
    return (np.asarray(scores[a:b], dtype=np.float64), [c for c in kept if a <= c < b],
            {c: why for c, why in suppressed.items() if a <= c < b})  # fmt: skip


def _content_proposals_in_ranges(path, config: DetectorConfig, fps: float, size, frame_count: int, workers: int) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """`_content_proposals` over `workers` equal ranges of frames, the first in this process and
    the others in spawned ones (a fork would copy the decoder's threads), joined in order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    edges = np.linspace(0, frame_count, workers + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in zip(edges, edges[1:])]
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        later = [pool.submit(_content_proposals, str(path), config, fps, size, r) for r in ranges[1:]]
        parts = [_content_proposals(path, config, fps, size, ranges[0]), *(f.result() for f in later)]
    scores = np.concatenate([p[0] for p in parts])
    kept = sorted(c for p in parts for c in p[1])
    suppressed = {c: why for p in parts for c, why in p[2].items()}
    return scores, kept, suppressed


def _transnet_proposals(path, config: DetectorConfig, fps: float) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """TransNetV2 fires on some flashes and whip pans too (it did on this project's test video):
    while the network's frames are decoded, every frame whose content jump (ContentDetector's
    score, on the 48x27 frames) reaches `threshold` is put through `SpikeCheck`, and a proposal
    on a frame found to be a flash or a camera move is dropped. Gradual transitions (dissolves,
    fades) have no such jump and are never checked."""
    from curation.video import transnet  # imports torch: only when asked for

    check = SpikeCheck(config.flash_frames(fps), config.pan_filter)
    jumps: list[float] = []
    previous: list[np.ndarray] = []

    def on_chunk(start: int, frames_rgb: np.ndarray) -> None:
        for offset, rgb in enumerate(frames_rgb):
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            hsv = check.hsv_of(start + offset, bgr)
            jumps.append(content_distance(previous[0], hsv) if previous else 0.0)
            previous[:] = [hsv]
            index = start + offset
            check.push(index, bgr, [index] if index > 0 and jumps[-1] >= config.threshold else [], jumps)

    probabilities, _ = transnet.frame_probabilities(path, on_chunk=on_chunk if check.active else None)
    _, spikes = check.finish(jumps)
    scores = transnet.boundary_scores(probabilities)
    proposed = transnet.transnet_cuts(scores, config.transnet_threshold)
    suppressed = {c: spikes[c] for c in proposed if c in spikes}
    return scores, [c for c in proposed if c not in suppressed], suppressed


def min_scene_len_filter(proposed: list[int], frame_count: int, fps: float, min_frames: int, mode: str) -> list[int]:
    """PySceneDetect's own FlashFilter (MERGE or SUPPRESS) over the proposed cut frames, fed frame
    by frame exactly as its detectors feed it."""
    if not proposed:
        return []
    flt = FlashFilter(mode=FlashFilter.Mode.SUPPRESS if mode == "suppress" else FlashFilter.Mode.MERGE, length=int(min_frames))
    marked = set(proposed)
    cuts: list[int] = []
    for i in range(frame_count):
        cuts.extend(tc.frame_num for tc in flt.filter(FrameTimecode(i, fps), i in marked))
    return cuts


@dataclass(frozen=True)
class ClipSpan:
    start_frame: int
    end_frame: int  # exclusive
    boundary: str  # why the clip starts here: video_start, scene_cut, split
    cut_score: float


def normalise_clips(
    detection: Detection,
    min_clip_s: float,
    max_clip_s: float,
    split: Literal["quietest", "even"] = "quietest",
) -> list[ClipSpan]:
    """Lengths are measured in the frames' own time (a variable-rate video's frames differ in length)."""
    n, scores, times = detection.frame_count, detection.scores, detection.boundary_times()
    if n == 0:
        return []

    # 1. merge: drop the weaker boundary of the shortest too-short scene until none is left.
    bounds = [0, *detection.cuts, n]
    while len(bounds) > 2:
        lengths = [times[b] - times[a] for a, b in zip(bounds, bounds[1:])]
        shortest = min(range(len(lengths)), key=lambda i: (lengths[i], i))
        if lengths[shortest] >= min_clip_s - EPS_S:
            break
        left, right = shortest, shortest + 1  # indices into bounds
        candidates = [i for i in (left, right) if 0 < i < len(bounds) - 1]
        drop = min(candidates, key=lambda i: (scores[bounds[i]], i))
        del bounds[drop]

    spans = [
        ClipSpan(a, b, "video_start" if a == 0 else "scene_cut", float(scores[a]) if a else 0.0)
        for a, b in zip(bounds, bounds[1:])
    ]
    # 2. split: scenes longer than max_clip_s.
    out: list[ClipSpan] = []
    for span in spans:
        out.extend(_split(span, scores, times, min_clip_s, max_clip_s, split))
    return out


def _split(span: ClipSpan, scores: np.ndarray, times: np.ndarray, min_s: float, max_s: float, mode: str) -> list[ClipSpan]:
    """A scene longer than max_s in the fewest pieces that fit: ceil(length / max_s)."""
    a, b = span.start_frame, span.end_frame
    if times[b] - times[a] <= max_s + EPS_S or b - a < 2:
        return [span]
    pieces = min(math.ceil((times[b] - times[a]) / max_s - EPS_S), b - a)
    if mode == "even":
        targets = [times[a] + i * (times[b] - times[a]) / pieces for i in range(1, pieces)]
        inner = [a + 1 + int(np.argmin(np.abs(times[a + 1 : b] - t))) for t in targets]
        edges = [a, *sorted(set(inner)), b]
    else:
        edges = _quietest_edges(a, b, scores, times, min_s, max_s, pieces)
    out = []
    for i, (x, y) in enumerate(zip(edges, edges[1:])):
        if i == 0:
            out.append(ClipSpan(x, y, span.boundary, span.cut_score))
        else:
            out.append(ClipSpan(x, y, "split", float(scores[x])))
    return out


def _quietest_edges(a: int, b: int, scores: np.ndarray, times: np.ndarray, min_s: float, max_s: float, pieces: int) -> list[int]:
    """Frame boundaries a, c1 .. c(pieces-1), b. Each cut is the quietest frame (lowest content
    score; QUIET_DISTANCE_WEIGHT breaks near-ties towards the even split) among those that keep
    the rest feasible: with p pieces left, the piece is in [min_s, max_s] and the remainder in
    [(p - 1) * min_s, (p - 1) * max_s], so every later cut has a range too (max_s >= 2 * min_s,
    as the recipe enforces, makes ceil(length / max_s) pieces of at least min_s possible). When
    the range holds no frame boundary (narrower than a frame) the nearest boundary that keeps the
    rest feasible is taken: that piece is then off its bound by less than one frame, and the
    error does not add up over the pieces that follow."""
    edges = [a]
    for left in range(pieces, 1, -1):  # pieces left, the one being cut included
        e = edges[-1]
        lo_t = max(times[e] + min_s, times[b] - (left - 1) * max_s)
        hi_t = min(times[e] + max_s, times[b] - (left - 1) * min_s)
        lo = int(np.searchsorted(times, lo_t - EPS_S, side="left"))  # first boundary >= lo_t
        hi = int(np.searchsorted(times, hi_t + EPS_S, side="right")) - 1  # last boundary <= hi_t
        first, last = e + 1, b - (left - 1)  # every piece keeps at least one frame
        lo, hi = min(max(lo, first), last), max(min(hi, last), first)
        if lo > hi:  # no boundary in the range: the nearest one that keeps the rest feasible
            rest_lo, rest_hi = times[b] - (left - 1) * max_s, times[b] - (left - 1) * min_s

            def off(c: int) -> tuple[float, float]:
                rest = max(rest_lo - EPS_S - times[c], times[c] - rest_hi - EPS_S, 0.0)
                return rest, max(lo_t - times[c], times[c] - hi_t, 0.0)

            edges.append(min((hi, lo), key=off))
            continue
        ideal = times[e] + (times[b] - times[e]) / left
        candidates = np.arange(lo, hi + 1)
        cost = scores[lo : hi + 1] + QUIET_DISTANCE_WEIGHT * np.abs(times[candidates] - ideal) / max_s
        edges.append(lo + int(np.argmin(cost)))
    edges.append(b)
    return edges


def group_windows(
    clips: list[ClipSpan],
    fps: float,
    window_max_s: float,
    times: np.ndarray | None = None,
    *,
    tail_s: float = WINDOW_TAIL_S,
    min_window_s: float = MIN_WINDOW_S,
) -> list[list[ClipSpan]]:
    """Consecutive clips in windows of at most window_max_s, cut only at clip boundaries. `times`:
    the frame boundary times (Detection.boundary_times); without them, a constant `fps`.

    A window takes clips while it fits; if it does not reach the end of the video it ends at the
    last shot boundary (a clip whose boundary is "scene_cut") within its last `tail_s` seconds
    before the cap, if there is one. A last window shorter than `min_window_s` (taken as at most
    half of window_max_s) shares the clips of the one before so that both are at least
    min_window_s: split at a shot boundary if one allows it, else as evenly as the clips allow.
    (A last window never fits together with the one before: a window ends before the video does
    only when the rest does not fit in it.)"""
    if not clips:
        return []
    if times is None:
        times = np.arange(clips[-1].end_frame + 1, dtype=np.float64) / fps
    starts = [float(times[c.start_frame]) for c in clips]
    ends = [float(times[c.end_frame]) for c in clips]
    min_w = min(min_window_s, window_max_s / 2)
    windows: list[list[ClipSpan]] = []
    i, n = 0, len(clips)
    while i < n:
        ws, j = starts[i], i
        while j + 1 < n and ends[j + 1] - ws <= window_max_s + EPS_S:
            j += 1
        if j + 1 < n:
            earliest = ws + max(window_max_s - tail_s, min_w) - EPS_S
            for k in range(j, i - 1, -1):  # k: the window's last clip
                if ends[k] < earliest:
                    break
                if clips[k + 1].boundary == "scene_cut":
                    j = k
                    break
        windows.append(clips[i : j + 1])
        i = j + 1
    if len(windows) >= 2:
        last = windows[-1]
        if times[last[-1].end_frame] - times[last[0].start_frame] < min_w - EPS_S:
            windows[-2:] = _share_last_windows(windows[-2], last, times, window_max_s, min_w)
    return windows


def _share_last_windows(
    prev: list[ClipSpan], last: list[ClipSpan], times: np.ndarray, window_max_s: float, min_w: float
) -> list[list[ClipSpan]]:
    """The clips of the last two windows shared by two windows that are both within [min_w,
    window_max_s]: split at the shot boundary nearest the middle, else at the clip boundary
    nearest the middle. If no split allows both bounds (clips too long for them), the split that
    keeps both within window_max_s and the shorter window longest. (The two never fit in one
    window: group_windows ends a window early only when the rest of the video does not fit.)"""
    both = prev + last
    ws, we = float(times[both[0].start_frame]), float(times[both[-1].end_frame])
    options = []  # (split index, length before, length after)
    for k in range(1, len(both)):
        t = float(times[both[k].start_frame])
        if t - ws <= window_max_s + EPS_S and we - t <= window_max_s + EPS_S:
            options.append((k, t - ws, we - t))
    fitting = [o for o in options if min(o[1], o[2]) >= min_w - EPS_S]
    if fitting:
        k = min(fitting, key=lambda o: (both[o[0]].boundary != "scene_cut", abs(o[1] - o[2]), o[0]))[0]
    elif options:
        k = max(options, key=lambda o: (min(o[1], o[2]), -o[0]))[0]
    else:
        k = len(prev)
    return [both[:k], both[k:]]


def vst_frame_count(
    window_start_s: float, window_end_s: float, max_frames: int = VST_MAX_FRAMES, *, fps: float | None = None, frame_count: int | None = None
) -> int:
    """Frames VST's loader decodes for a window: 2 fps, capped, padded to an even count.

    With the video's `fps` and `frame_count` the count is exact (`vst_window_frames`: frames picked
    by their timestamps, both window edges included). Without them it is the estimate
    floor(2 * duration), which can be one or two frames off the loader's count."""
    if fps is not None and frame_count is not None:
        return len(vst_window_frames(window_start_s, window_end_s, decord_frame_times(fps, frame_count), max_frames))
    n = min(int(math.floor((window_end_s - window_start_s) * VST_FPS + 1e-9)), max_frames)
    n = max(n, 1)
    return n + (n % 2)


def video_frame_times(reader) -> np.ndarray:
    """The timestamps `decord_frame_times` computes, read from an open decord VideoReader (exact for
    variable frame rates; FrameClock.of_reader reads them the same way)."""
    return reader.get_frame_timestamp(list(range(len(reader))))[:, 1]


def vst_window_frames(window_start_s: float, window_end_s: float, frame_times: np.ndarray, max_frames: int = VST_MAX_FRAMES) -> list[int]:
    """Source frame indices of the N frames VST's loader decodes for a window (spec section 2,
    livecc_utils `_read_video_decord_plus`, strict-fps path), step by step as it does them:
    1. the frames whose timestamp t satisfies video_start <= t <= video_end (both edges included);
    2. target times from the first to the last of those timestamps every 1/2 s (+1e-6), the first
       `max_frames` of them (FPS_MAX_FRAMES, drop_last);
    3. for each target time, the first frame whose timestamp is >= it;
    4. the last frame repeated until the count is even.
    `frame_times` must be float32 as decord gives them: numpy then compares in float32 exactly as
    the loader does (numpy 2 promotion rules, VST pins numpy 2.3)."""
    times = np.asarray(frame_times)
    inside = ((window_start_s <= times) & (times <= window_end_s)).nonzero()[0]
    if len(inside) == 0:
        return []
    inside_times = times[inside]
    targets = np.arange(inside_times[0], inside_times[-1] + 1e-6, 1 / VST_FPS)[:max_frames]
    picked = inside[(targets[:, None] <= inside_times).argmax(axis=1)].tolist()
    if len(picked) % 2:
        picked.append(picked[-1])
    return picked


def vst_frame_indices(
    window_start_s: float,
    window_end_s: float,
    clip_start_s: float,
    clip_end_s: float,
    fps: float,
    frame_count: int,
    max_frames: int = VST_MAX_FRAMES,
    frame_times: np.ndarray | None = None,
) -> list[int]:
    """Source frame indices of the 2 fps frames VST's loader assigns to one clip of a window: the
    window's N frames (`vst_window_frames`) sliced by `int(N*(s-vs)/(ve-vs)) : int(N*(e-vs)/(ve-vs))`.
    `frame_times` (from `video_frame_times`) overrides the constant-rate timestamps of fps."""
    times = decord_frame_times(fps, frame_count) if frame_times is None else frame_times
    window = vst_window_frames(window_start_s, window_end_s, times, max_frames)
    lo, hi = vst_clip_slice(len(window), window_start_s, window_end_s, clip_start_s, clip_end_s)
    return window[lo:hi]


def vst_clip_slice(n: int, window_start_s: float, window_end_s: float, clip_start_s: float, clip_end_s: float) -> tuple[int, int]:
    """The loader's slice of a window's n frames for one clip (spec section 2, point 2)."""
    span = window_end_s - window_start_s
    return int(n * (clip_start_s - window_start_s) / span), int(n * (clip_end_s - window_start_s) / span)
