"""Cut one window out of a video, accurate to the frame, for the RL export.

VST's RL trainer opens `video_context` and shows the model the WHOLE file, with
`extra_info.duration` as its length; a question made from one window ("...in the video so far?")
is only right for that window. So a window that is not the whole video becomes a file of its own.

The cut holds exactly the source frames [first, last) that the workbench's clock
(curation/video/clock.py: the frames' own timestamps) puts in the window: the first frames
starting at or after start_s and end_s. ffmpeg seeks to half a frame before `first` (so rounding
in the timestamps can neither lose that frame nor keep the one before) and keeps `last - first`
frames with their own timestamps; the video is re-encoded (a stream copy can only start at a
keyframe). The frame count of the result is checked, and its duration is probed the way every
other stage measures a video (FrameClock). Audio is dropped: VST's models do not read it.

The window is recorded in the file's `comment` tag: a second call with the same source and window
finds it and does not encode again (idempotent exports); any other file at `dst` is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from curation.video.clock import FrameClock

CUT_VERSION = "vstw-cut/1"
CRF = 18  # visually lossless for training frames; the cut is small next to its source anyway


class CutError(RuntimeError):
    """A window that could not be cut (the message names the source, the window and why)."""


def frame_span(start_s: float, end_s: float, clock: FrameClock) -> tuple[int, int]:
    """The source frames [first, last) of a window, as the decoder indexes them."""
    return clock.boundary_at(start_s), clock.boundary_at(end_s)


def recorded_window(src: Path, start_s: float, end_s: float) -> dict:
    """What a cut records about itself: enough to tell that `dst` is this window of this source."""
    stat = src.stat()
    return {"cut": CUT_VERSION, "source": src.name, "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns, "start_s": round(float(start_s), 6), "end_s": round(float(end_s), 6)}


def read_recorded_window(path: Path) -> dict | None:
    """The window recorded in a cut's comment tag, or None (no file, not a cut, unreadable)."""
    import av

    if not path.is_file():
        return None
    try:
        with av.open(str(path)) as container:
            comment = container.metadata.get("comment")
        data = json.loads(comment) if comment else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _ffmpeg_cut(src: Path, dst: Path, first: int, last: int, seek: float, comment: str) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise CutError(f"{src}: ffmpeg is not installed; RL rows of a window need a cut of it (apt-get install ffmpeg)")
    # Seek half a frame before `first` (decoding from the keyframe before, dropping what comes
    # earlier: rounding cannot lose frame `first` nor keep the one before it), then keep a frame
    # COUNT, not a duration; the timestamps restart at 0 and keep their spacing.
    cmd = [
        ffmpeg, "-nostdin", "-y", "-loglevel", "error",
        "-ss", f"{seek:.6f}", "-i", str(src), "-frames:v", str(last - first),
        "-map", "0:v:0", "-an", "-sn", "-dn",
        # yuv420p needs even sizes; on even sizes the scale filter changes nothing.
        "-vf", "setpts=PTS-STARTPTS,scale=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-pix_fmt", "yuv420p",
        "-fps_mode", "passthrough",  # never duplicate or drop a frame to reach a constant rate
        "-metadata", f"comment={comment}", "-movflags", "+faststart", "-f", "mp4", str(dst),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
        raise CutError(f"{src}: ffmpeg could not cut frames {first}-{last}: {tail[0][:300]}")


def cut_window(src: Path | str, start_s: float, end_s: float, dst: Path | str) -> float:
    """Write frames [start_s, end_s) of `src` to `dst` (MP4, H.264); returns the cut's probed
    duration in seconds. Skips the work when `dst` already is this window of this source."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise CutError(f"{src}: source video not found")
    if not end_s > start_s:
        raise CutError(f"{src}: window {start_s}-{end_s} s is empty")
    window = recorded_window(src, start_s, end_s)
    recorded = read_recorded_window(dst)
    if recorded is not None and {k: recorded.get(k) for k in window} == window:
        clock = FrameClock.of_path(dst)
        if clock.frame_count == recorded.get("frames"):
            return clock.duration_s
    clock = FrameClock.of_path(src)
    if clock.frame_count <= 0 or clock.fps <= 0:
        raise CutError(f"{src}: no decodable frames")
    first, last = frame_span(start_s, end_s, clock)
    if last <= first:
        raise CutError(f"{src}: window {start_s:.3f}-{end_s:.3f} s holds no frame")
    # half a frame before `first`: the midpoint between it and the frame before
    seek = 0.0 if first == 0 else (clock.time_of(first - 1) + clock.time_of(first)) / 2
    meta = {**window, "first_frame": first, "last_frame": last, "frames": last - first}
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then renamed: a reader (or a crash) never sees half a cut.
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.mp4")
    try:
        _ffmpeg_cut(src, tmp, first, last, seek, json.dumps(meta, sort_keys=True))
        got = FrameClock.of_path(tmp)
        if got.frame_count != last - first:
            raise CutError(f"{src}: the cut of frames {first}-{last} holds {got.frame_count} frames, not {last - first}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return got.duration_s
