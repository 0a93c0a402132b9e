"""Small JPEG keyframes of a clip, at the frames VST's loader takes (for galleries and reviews).

A clip's `vst_frame_indices` (curation/video/segment.py) are the source frames VST's loader feeds
the model for that clip; a gallery shows a few of them so a curator sees what the model sees.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import cv2
import numpy as np

from curation.video.decode import open_reader, open_scaled_reader

KEYFRAME_WIDTH = 192
JPEG_QUALITY = 80


def pick_keyframes(vst_frames: list[int], per_clip: int, codec_keys: list[int] | None = None) -> list[int]:
    """`per_clip` of a clip's VST frames, one from each equal share of the clip, in order; fewer
    when the clip has fewer, none when VST gives the clip no frames.

    Without `codec_keys` each pick is its share's centre. With the video's codec keyframes (the
    frames a decoder can start from), a share holding one gets the frame cheapest to decode: the
    fewest frames after a keyframe (ties: the nearest to the centre). A frame is then
    reached by a seek and a few decoded frames, not by decoding through the whole clip: 1.7x
    faster on the gallery benchmark's 60 s files (docs/benchmarks.md)."""
    frames = list(vst_frames or [])
    if per_clip <= 0 or not frames:
        return []
    if len(frames) <= per_clip:
        return frames
    n = len(frames)
    picked = []
    for k in range(per_clip):
        centre = frames[int(n * (k + 0.5) / per_clip)]
        share = frames[int(n * k / per_clip) : int(n * (k + 1) / per_clip)] or [centre]
        if not codec_keys or not has_key_within(codec_keys, share[0], share[-1]):
            # no keyframe to jump to: every frame of the share is decoded from the same earlier
            # one, so the cheapest would merely be the share's first (often the previous shot's
            # last frame, at a cut): the centre shows the share better at nearly the same cost
            picked.append(centre)
            continue
        picked.append(min(share, key=lambda f: (decode_cost(f, codec_keys), abs(f - centre))))
    return sorted(set(picked))


def has_key_within(codec_keys: list[int], first: int, last: int) -> bool:
    at = bisect.bisect_left(codec_keys, first)
    return at < len(codec_keys) and codec_keys[at] <= last


def decode_cost(frame: int, codec_keys: list[int]) -> int:
    """Frames decoded to reach `frame` after a seek: its distance from the keyframe before it."""
    before = bisect.bisect_right(codec_keys, frame) - 1
    return frame - codec_keys[before] if before >= 0 else frame


def codec_keyframes(path: str | Path) -> tuple[list[int], int]:
    """The video's codec keyframes (from its index: nothing is decoded) and its frame count."""
    try:
        reader = open_reader(path)
        return [int(k) for k in reader.get_key_indices()], len(reader)
    except Exception as err:  # decord raises its own error types, and plain RuntimeError
        raise KeyframeError(f"{Path(path).name}: cannot be decoded ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class KeyframeError(RuntimeError):
    """The video could not be opened or the frames are not in it (the message says which)."""


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise KeyframeError("JPEG encoding failed")
    return data.tobytes()


def keyframe_jpegs(path: str | Path, frames: list[int], width: int = KEYFRAME_WIDTH, quality: int = JPEG_QUALITY) -> dict[int, bytes]:
    """JPEG bytes of the given source frames of one video, at most `width` pixels wide. The video
    is opened once; each frame is reached by an accurate seek, in order (the decoder goes on from
    where it is when the next frame is in the same group of pictures). Any failure to read the
    video is a KeyframeError naming it."""
    wanted = sorted(set(frames))
    if not wanted:
        return {}
    try:
        reader = open_scaled_reader(path, width)
    except Exception as err:  # decord raises its own error types, and plain RuntimeError
        raise KeyframeError(f"{Path(path).name}: cannot be decoded ({_first_line(err)})") from None
    beyond = [f for f in wanted if f < 0 or f >= len(reader)]
    if beyond:
        raise KeyframeError(f"{Path(path).name}: frame {beyond[0]} is not in the video ({len(reader)} frames); was it replaced since the run?")
    out = {}
    try:
        for frame in wanted:
            reader.seek_accurate(frame)
            out[frame] = encode_jpeg(reader.next().asnumpy(), quality)
    except KeyframeError:
        raise
    except Exception as err:
        raise KeyframeError(f"{Path(path).name}: frame {frame} cannot be decoded ({_first_line(err)})") from None
    return out
