"""Probe one video file: what it is, how long, and whether it decodes to the end.

Returns a dict of `videos` table columns. Never raises for a bad file: the result carries
`status="failed"` with a reason code from docs/reason-codes.md.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av

from curation.files import file_problem
from curation.video.clock import FrameClock
from curation.video.decode import open_reader

HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def video_id_from_sha256(sha256: str) -> str:
    """Content-derived id: the same bytes get the same id in every run, on every machine."""
    return "v" + sha256[:16]


def _looks_like_media_container(path: Path) -> bool:
    """True when the header says MP4/MOV/MKV/AVI/WebM: then a failure to open means damage."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head[:4] in (b"\x1aE\xdf\xa3", b"RIFF")


def display_rotation(container) -> int:
    """Degrees the first frame's display matrix turns the picture (0, 90, 180, 270)."""
    try:
        frame = next(container.decode(video=0))
    except (StopIteration, av.error.FFmpegError):
        return 0
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def decode_failure(err: Exception) -> str:
    """A decoder error as a user reads it: where the file stops decoding, not decord's C++ trace
    ("video_reader.cc:486 ... av_read_frame failed")."""
    text = str(err)
    if "av_read_frame" in text or "Error reading" in text or "End of file" in text:
        return "decoding failed: the file ends before its last frame (truncated or damaged)"
    first = text.splitlines()[0] if text else type(err).__name__
    return f"decoding failed ({first.split('] ')[-1][:200]})"


def _fail(reason: str, error: str, **fields) -> dict:
    return {**fields, "status": "failed", "reason": reason, "error": error}


def probe_video(path: str | Path, min_duration_s: float = 0.0, max_duration_s: float | None = None) -> dict:
    path = Path(path)
    problem = file_problem(str(path), path)
    if problem is not None:
        return _fail(*problem)
    try:
        size = path.stat().st_size
    except (OSError, ValueError) as err:  # name too long, NUL byte, permission denied
        return _fail("missing", f"{str(path)[:300]}: cannot be read ({getattr(err, 'strerror', None) or err})")
    if size == 0:
        return _fail("empty_file", f"{path}: the file is empty (0 bytes)", size_bytes=0)

    sha = sha256_file(path)
    base = {"sha256": sha, "video_id": video_id_from_sha256(sha), "size_bytes": size}

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                return _fail("no_video_stream", f"{path}: no video stream (streams: {', '.join(kinds)})", **base)
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            rotation = display_rotation(container)
    except av.error.InvalidDataError as err:
        if _looks_like_media_container(path):
            return _fail("corrupt", f"{path}: damaged container ({err})", **base)
        return _fail("not_a_video", f"{path}: not a video file ({err})", **base)
    except (av.error.FFmpegError, OSError) as err:
        return _fail("corrupt", f"{path}: cannot be opened ({err})", **base)

    # Decode with the decoder the later stages use, including the last frame: a truncated file
    # whose header still claims the full length fails here, not three stages later.
    try:
        reader = open_reader(path)
        frame_count = len(reader)
        fps = float(reader.get_avg_fps())
        if frame_count <= 0 or fps <= 0:
            return _fail("corrupt", f"{path}: no decodable frames", **base)
        first = reader[0]
        reader[frame_count - 1]
        clock = FrameClock.of_reader(reader)
    except Exception as err:  # decord raises its own DECORDError and plain RuntimeErrors
        return _fail("corrupt", f"{path}: {decode_failure(err)}", **base)

    duration = clock.duration_s
    # decord turns frames upright (the display matrix); the size recorded is the one decoded.
    height, width = first.shape[:2]
    info = {
        **base,
        "duration_s": round(duration, 6),
        "fps": fps,
        "frame_count": frame_count,
        "width": int(width),
        "height": int(height),
        "codec": codec,
        "variable_frame_rate": clock.variable,
        "rotation": rotation,
    }
    if duration < min_duration_s:
        return _fail("too_short", f"{path}: {duration:.2f} s is shorter than min_duration_s={min_duration_s}", **info)
    if max_duration_s is not None and duration > max_duration_s:
        return _fail("too_long", f"{path}: {duration:.2f} s is longer than max_duration_s={max_duration_s}", **info)
    return {**info, "status": "ok"}
