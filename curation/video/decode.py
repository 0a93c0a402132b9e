"""Frame decoding with decord: the one place that opens videos for pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


def open_reader(path: str | Path, width: int = -1, height: int = -1):
    """A decord VideoReader on the CPU; width/height > 0 make the decoder scale while decoding
    (far cheaper than decoding full frames and resizing them afterwards)."""
    import decord  # imported late: decord is slow to import and not every caller needs it

    return decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=1)


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(w, h) of at most target_width, aspect kept, both even (decoders prefer even sizes)."""
    if target_width <= 0 or width <= target_width:
        return width, height
    w = target_width - target_width % 2
    h = max(2, int(round(height * w / width / 2)) * 2)
    return w, h


def open_scaled_reader(path: str | Path, target_width: int = 0, size: tuple[int, int] | None = None):
    """A reader whose frames are at most target_width wide. `size` = (width, height) of the video
    when known; else the video is probed first (and opened once more only when it must be scaled)."""
    probe = None
    if size is None:
        probe = open_reader(path)
        size = probe[0].shape[1::-1]
    w, h = scaled_size(size[0], size[1], target_width)
    if (w, h) != tuple(size):
        return open_reader(path, width=w, height=h)
    return probe if probe is not None else open_reader(path)


def iter_frames(
    path: str | Path, target_width: int = 0, batch: int = 64, size: tuple[int, int] | None = None,
    start: int = 0, stop: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
    """Yield (frame index, BGR uint8 frame) for frames [start, stop) (default: all), decoded at
    most target_width wide. `size` = (width, height) of the video when known (saves opening it
    twice). A range starting past 0 is reached by the decoder's seek to the keyframe before it:
    the same pixels as decoding from the start."""
    reader = open_scaled_reader(path, target_width, size)
    n = len(reader) if stop is None else min(stop, len(reader))
    for first in range(max(0, start), n, batch):
        frames = reader.get_batch(list(range(first, min(n, first + batch)))).asnumpy()
        # decord gives RGB; PySceneDetect's detectors expect OpenCV's BGR order. One cvtColor
        # over the whole batch (seen as one tall image) is far cheaper than one per frame.
        count, height = frames.shape[0], frames.shape[1]
        bgr = cv2.cvtColor(frames.reshape(count * height, frames.shape[2], 3), cv2.COLOR_RGB2BGR).reshape(frames.shape)
        for offset in range(count):
            yield first + offset, bgr[offset]


def read_frames(path: str | Path, indices: list[int], target_width: int = 0) -> np.ndarray:
    """RGB frames at the given indices (N, H, W, 3), at most target_width wide."""
    return open_scaled_reader(path, target_width).get_batch(indices).asnumpy()
