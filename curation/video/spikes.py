"""Not every spike of a frame-difference score is a cut: flashes and camera moves.

`SpikeCheck` takes the cuts a detector proposes, frame by frame as it decodes, and drops those
that are a flash (the picture comes back within `flash_max_s`) or a camera move (the frame
before, shifted as phase correlation says, explains the frame after: a whip pan). The scene
detectors (curation/video/segment.py `detect_cuts`) run it on their proposals before
PySceneDetect's FlashFilter enforces the minimum scene length.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Proposed cuts are checked (`SpikeCheck`) before PySceneDetect's FlashFilter enforces the minimum
# scene length (see `detect_cuts`).
# A spike is a flash when, within flash_max_s, a frame after it is at least this much closer to a
# frame before it than the spike's own two frames are (the picture came back).
FLASH_MATCH_RATIO = 0.5
# A spike is a camera move when the frame before it, shifted by a translation phase correlation
# finds (with the motion blur of that shift, or without), leaves at most this share of the
# difference between the two frames (`is_camera_motion`).
PAN_MATCH_RATIO = 0.5
# Frames darker than this (mean HSV value, 0-255) are not compared: their hue and saturation are
# noise (a fade through black flips them), and two shots fading out and in look alike there. The
# cost: a flash in a dark scene stays a cut.
DARK_V = 50.0
PAN_MIN_OVERLAP = 0.5  # the shift must leave at least half of the frame's area overlapping
PAN_BLUR_RATIO = 0.75  # a motion-blur model must beat the same blur without the move by this much


def content_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference over all pixels and channels. On HSV frames: ContentDetector's
    frame score with its default weights (the mean of the hue, saturation and value differences)."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


class SpikeCheck:
    """Not every spike of the content score is a cut. A proposed cut at frame c is dropped when:
    - flash: a frame within `flash_frames` after the spike matches a frame just before it (a flash,
      a strobe, a few inserted frames: the picture comes back), checked on every pair (a, b) with
      a < c <= b and 2 <= b - a <= flash_frames + 1, so the spike where the flash starts and the
      one where it ends are both dropped;
    - camera_motion: frames c-1 and c are related by a global translation, with or without motion
      blur (a whip pan; `is_camera_motion`): phase correlation gives candidate shifts, and the
      shifted frame c-1 explains most of the difference to frame c. A fixed score threshold cannot
      tell a fast pan from a cut, and the "score stays high for several frames" test would also
      drop real cuts inside fast action or right after a pan; the shift test asks the question
      directly and keeps a cut during a pan (the new shot does not match the old one shifted).
    Frames (BGR at detection size, and their HSV when needed) are kept for a few frames only (a
    ring of 2 * flash_frames + a margin)."""

    MARGIN = 8  # frames of slack: AdaptiveDetector proposes a cut window_width (2) frames late

    def __init__(self, flash_frames: int, pan_filter: bool):
        self.k = flash_frames
        self.pan = pan_filter
        self.active = flash_frames > 0 or pan_filter
        self.frames: dict[int, np.ndarray] = {}  # BGR
        self.hsv: dict[int, np.ndarray] = {}
        self.pending: list[int] = []
        self.kept: list[int] = []
        self.suppressed: dict[int, str] = {}
        self.last = -1

    def push(self, index: int | None, frame_bgr: np.ndarray | None, proposed: list[int], scores: list[float]) -> None:
        """Frame `index` (BGR, at detection size; None: no new frame), the cuts proposed so far
        (any frame up to `index`) and the content scores up to `index`."""
        if not self.active:
            self.kept.extend(proposed)
            return
        if index is not None:
            self.frames[index] = frame_bgr
            self.last = index
        self.pending.extend(proposed)
        ready = [c for c in self.pending if c + max(self.k, 1) <= self.last]
        for c in ready:
            self._decide(c, scores[c])
        self.pending = [c for c in self.pending if c not in ready]
        oldest = min([self.last - 2 * self.k - self.MARGIN, *(c - self.k - 2 for c in self.pending)])
        for i in [i for i in self.frames if i < oldest]:
            del self.frames[i]
            self.hsv.pop(i, None)

    def hsv_of(self, index: int, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        if index not in self.hsv:
            self.hsv[index] = cv2.cvtColor(self.frames[index] if frame_bgr is None else frame_bgr, cv2.COLOR_BGR2HSV)
        return self.hsv[index]

    def finish(self, scores: list[float]) -> tuple[list[int], dict[int, str]]:
        for c in self.pending:
            self._decide(c, scores[c])
        self.pending = []
        return sorted(set(self.kept)), dict(self.suppressed)

    def _decide(self, c: int, score: float) -> None:
        if c <= 0 or c - 1 not in self.frames or c not in self.frames:
            self.kept.append(c)
        elif self.k > 0 and self._is_flash(c, score):
            self.suppressed[c] = "flash"
        elif self.pan and is_camera_motion(self.frames[c - 1], self.frames[c], self._neighbour_shifts(c)):
            self.suppressed[c] = "camera_motion"
        else:
            self.kept.append(c)

    def _neighbour_shifts(self, c: int) -> list[tuple[int, int]]:
        pairs = [(c - 2, c - 1), (c, c + 1)]
        return [shift for a, b in pairs if a in self.frames and b in self.frames for shift in shift_peaks(self.frames[a], self.frames[b], 2)]

    def _is_flash(self, c: int, score: float) -> bool:
        frames = self.frames
        for a in range(c - 1, c - 2 - self.k, -1):
            if a not in frames:
                break
            for b in range(max(c, a + 2), a + self.k + 2):
                if b not in frames or self._dark(a) or self._dark(b):
                    continue  # near-black frames all look alike: a fade through black, not a flash
                if content_distance(self.hsv_of(a), self.hsv_of(b)) <= FLASH_MATCH_RATIO * score:
                    return True
        return False

    def _dark(self, i: int) -> bool:
        return float(self.hsv_of(i)[:, :, 2].mean()) < DARK_V


def shift_peaks(prev: np.ndarray, cur: np.ndarray, count: int = 3) -> list[tuple[int, int]]:
    """The `count` strongest global translations (dx, dy) in pixels that take prev to cur (colour
    frames), by phase correlation on their grey levels (Hann-windowed). More than the one strongest peak
    (cv2.phaseCorrelate's): things that do not move with the camera (titles, a logo, a subject the
    camera follows) make a peak at no shift that can outweigh the background's."""
    h, w = prev.shape[:2]
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    fa = np.fft.rfft2(prev.astype(np.float32).mean(axis=2) * window)
    fb = np.fft.rfft2(cur.astype(np.float32).mean(axis=2) * window)
    cross = fb * np.conj(fa)
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(h, w))
    peaks = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
        peaks.append((int(x) if x <= w // 2 else int(x) - w, int(y) if y <= h // 2 else int(y) - h))
        ys = [(y + dy) % h for dy in range(-2, 3)]
        xs = [(x + dx) % w for dx in range(-2, 3)]
        surface[np.ix_(ys, xs)] = -np.inf
    return peaks


def _shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR)


def _smeared(img: np.ndarray, dx: float, dy: float, steps: int = 8) -> np.ndarray:
    """img as a camera moving by (dx, dy) during the exposure records it (motion blur)."""
    acc = np.zeros(img.shape, np.float32)
    for s in range(steps):
        t = (s + 0.5) / steps
        acc += _shifted(img, t * dx, t * dy).astype(np.float32)
    return (acc / steps + 0.5).astype(np.uint8)


def _valid_region(dx: int, dy: int, w: int, h: int, pad: int) -> tuple[slice, slice] | None:
    x0, x1 = max(dx, 0) + pad, w + min(dx, 0) - pad
    y0, y1 = max(dy, 0) + pad, h + min(dy, 0) - pad
    return (slice(y0, y1), slice(x0, x1)) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def is_camera_motion(prev: np.ndarray, cur: np.ndarray, hints: list[tuple[int, int]] | tuple = ()) -> bool:
    """Whether cur is prev (colour frames, BGR or RGB) seen by a camera that moved (a pan or tilt of
    at least a pixel): for each candidate shift (the phase-correlation peaks of this pair, plus `hints`: shifts measured
    on the neighbouring frame pairs, for the first and last frame of a whip pan whose own pair
    mixes a sharp and a motion-blurred frame), three models are tried: cur = prev shifted; cur =
    prev shifted with motion blur along the shift (the pan starts); prev = cur shifted back with
    motion blur (the pan stops). Camera motion when the best model leaves at most
    PAN_MATCH_RATIO of the difference the two frames have without it, where both have picture.
    Models and differences are computed on the colour channels (mean absolute difference): motion
    blur mixes colours as light does, which averaging hue values would not."""
    h, w = prev.shape[:2]
    if h < 8 or w < 8:
        return False
    sigma = max(1.0, w / 64)  # light blur: sub-pixel misalignment and noise are no difference
    pa = cv2.GaussianBlur(prev, (0, 0), sigma)
    pb = cv2.GaussianBlur(cur, (0, 0), sigma)
    pad = int(math.ceil(2 * sigma))
    seen: set[tuple[int, int]] = set()
    for dx, dy in [*shift_peaks(prev, cur), *hints]:
        if (dx, dy) in seen or (abs(dx) < 1 and abs(dy) < 1):  # no shift: no motion explains the change
            continue
        seen.add((dx, dy))
        if (w - abs(dx)) * (h - abs(dy)) < PAN_MIN_OVERLAP * w * h:
            continue  # too little of the frames left to compare: anything matches a small patch
        forward = _valid_region(dx, dy, w, h, pad)  # where prev shifted by (dx, dy) has picture
        backward = _valid_region(-dx, -dy, w, h, pad)  # where cur shifted back has picture
        if forward is None or backward is None:
            continue
        # (region, model frame, frame it must explain, the same blur without the move, or None)
        smear_a, smear_b = _smeared(pa, dx, dy), _smeared(pb, -dx, -dy)
        models = (
            (forward, _shifted(pa, dx, dy), pb, None),
            (forward, smear_a, pb, _shifted(smear_a, -dx / 2, -dy / 2)),
            (backward, smear_b, pa, _shifted(smear_b, dx / 2, dy / 2)),
        )
        for region, x, y, blur_only in models:
            still = content_distance(pa[region], pb[region])
            moved = content_distance(x[region], y[region])
            if still <= 0 or moved > PAN_MATCH_RATIO * still:
                continue
            # A blur explains a smooth frame (a gradient, a sky) whichever way it goes: the move
            # must explain clearly more than the blur alone.
            if blur_only is None or moved <= PAN_BLUR_RATIO * content_distance(blur_only[region], y[region]):
                return True
    return False
