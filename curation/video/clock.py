"""A video's frame times, from the frames' own timestamps.

VST's loader picks frames by their presentation timestamps (decord's `vr._frame_pts[:, 1]`,
the strict-fps path of livecc_utils' `_read_video_decord_plus`), not by index / average fps. On
a variable-frame-rate video (most phone and screen recordings) the two disagree by seconds: 10 s
at 5 fps then 5 s at 30 fps has its cut at 10.0 s, but frame 50 / 13.04 fps = 3.83 s. Every clip
time, cut time, window bound and `vst_frame_indices` therefore comes from a `FrameClock`.

A constant-rate video gets the exact constant clock (frame i starts at i / fps and, as decord
stores it, ends at (i + 1) / fps in float32), so its times do not move by a rounding error; a
video whose timestamps stray from that by more than half a frame gets its own timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A frame starting more than this many frame periods away from i / fps makes a video variable-rate.
VFR_TOLERANCE_FRAMES = 0.5
# Times within this many seconds count as equal (float32 timestamps, rounded table values).
EPS_S = 1e-6


@dataclass(frozen=True)
class FrameClock:
    starts: np.ndarray  # float64 (n,): each frame's presentation time
    ends: np.ndarray  # float32 (n,): each frame's end time as decord gives it (what VST's loader reads)
    variable: bool
    fps: float  # the average rate (decord's get_avg_fps)

    @classmethod
    def constant(cls, fps: float, frame_count: int) -> "FrameClock":
        return cls(np.arange(frame_count, dtype=np.float64) / fps, decord_frame_times(fps, frame_count), False, fps)

    @classmethod
    def of_reader(cls, reader) -> "FrameClock":
        """The clock of an open decord VideoReader: constant unless its timestamps say otherwise."""
        n, fps = len(reader), float(reader.get_avg_fps())
        stamps = reader.get_frame_timestamp(list(range(n))) if n else np.zeros((0, 2), np.float32)
        starts = stamps[:, 0].astype(np.float64)
        if n == 0 or fps <= 0 or not is_variable(starts, fps):
            return cls.constant(fps, n)
        return cls(starts, stamps[:, 1].astype(np.float32), True, fps)

    @classmethod
    def of_path(cls, path: str | Path) -> "FrameClock":
        from curation.video.decode import open_reader

        return cls.of_reader(open_reader(path))

    @property
    def frame_count(self) -> int:
        return len(self.starts)

    @property
    def duration_s(self) -> float:
        """Where the last frame ends (n / fps exactly at a constant rate, not its float32 end)."""
        if not self.variable:
            return self.frame_count / self.fps if self.fps > 0 else 0.0
        return float(self.ends[-1]) if len(self.ends) else 0.0

    def boundary_times(self) -> np.ndarray:
        """Time of each frame boundary 0..n: boundary b < n is where frame b starts, boundary n is
        where the last frame ends (the video's end)."""
        return np.append(self.starts, self.duration_s)

    def time_of(self, boundary: int) -> float:
        return float(self.starts[boundary]) if boundary < self.frame_count else self.duration_s

    def boundary_at(self, t: float) -> int:
        """The frame boundary at time t: the first frame starting at or after t (n past the end)."""
        return int(np.searchsorted(self.starts, t - EPS_S, side="left"))


def decord_frame_times(fps: float, frame_count: int) -> np.ndarray:
    """The per-frame timestamps VST's loader reads (`vr._frame_pts[:, 1]`) for a constant-rate
    video: decord stores each frame's END time, (i + 1) / fps, as float32. Checked bit for bit
    against decord on H.264 files at 25, 30 and 29.97 fps (tests/test_segment.py)."""
    return ((np.arange(frame_count, dtype=np.float64) + 1.0) / fps).astype(np.float32)


def is_variable(starts: np.ndarray, fps: float) -> bool:
    expected = np.arange(len(starts), dtype=np.float64) / fps
    return bool(len(starts) and np.max(np.abs(starts - expected)) > VFR_TOLERANCE_FRAMES / fps)
