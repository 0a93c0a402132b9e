"""Clip signals: what cheap local detectors measure on a few keyframes of a clip.

Pure functions over decoded frames (RGB uint8 from `curation.video.decode.read_frames`), and
`measure_clip` that decodes a clip's keyframes and measures them. Nothing here knows about runs.
Units, defaults and their sources: docs/signals.md. What these signals cannot see: they do not
name objects or actions and do not tell who is who; a vision teacher does.

- brightness: mean luma (BT.709, as DataFlow-MM), 0-255;
- blur: variance of the Laplacian of the grey frame at the analysis width (higher = sharper);
- motion: mean Farneback optical-flow magnitude between each keyframe and the frames a short and
  a longer fixed time after it (`flow_gaps_s`), in pixels per second of a frame `analysis_width`
  wide, the larger of the two; camera direction from the median flow (the camera turns against
  the way the picture moves);
- on-screen text: RapidOCR (PP-OCRv4 models inside its wheel) on a few of the keyframes;
- people (OpenCV's HOG people detector) and faces (the Haar frontal-face cascade of cv2.data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SIGNALS_VERSION = "signals.v1"

# Open-Sora's flow scorer (the one LiveStar filters with) resizes frames to 576 x 320: measuring
# at the same width keeps our pixels comparable to theirs (docs/signals.md).
ANALYSIS_WIDTH = 576

# Farneback parameters: OpenCV's documented example and Data-Juicer's motion filter use these.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)

# Farneback gives identical frames flows of about 1e-3 px: below FLOW_FLOOR_PX a pixel has not
# moved (the slowest thing the tests and samples move goes 0.3 px a frame).
FLOW_FLOOR_PX = 0.01

# Below this median speed (px/s at the analysis width) the camera counts as still: a 576 px
# picture that drifts less than 1% of its width per second is not a pan a caption should tell.
CAMERA_STATIC_PX_S = 5.0

# Reference colours (RGB) for naming a scene's colour. Every name is a colour word of the checks'
# vocabulary (curation/checks/text.py COLOURS), so a caption that says it can be checked. The
# dark named tones sit at the values of the synthetic videos' backgrounds (curation/synthetic.py).
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 220, 40),
    "green": (60, 170, 60),
    "blue": (40, 90, 220),
    "purple": (150, 40, 230),  # the synthetic backgrounds' purple
    "pink": (240, 150, 190),
    "brown": (120, 80, 40),
    "cyan": (40, 210, 220),
    "magenta": (200, 50, 200),
    "navy": (20, 30, 90),
    "olive": (100, 110, 30),
    "maroon": (110, 20, 30),
    "teal": (20, 120, 120),
}
_PALETTE_NAMES = list(PALETTE)
_PALETTE_LAB = cv2.cvtColor(np.array([list(PALETTE.values())], np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)


# ---- frames ------------------------------------------------------------------------------------
def keyframe_indices(start_frame: int, end_frame: int, n: int) -> list[int]:
    """n frames spread over [start, end): the centres of n equal slices (never the cut frames)."""
    last = max(start_frame, end_frame - 1)
    return sorted({start_frame + round((last - start_frame) * (i + 0.5) / n) for i in range(n)})


def gap_frames(fps: float, gap_s: float) -> int:
    return max(1, int(round(gap_s * fps)))


def flow_partner(index: int, gap: int, start_frame: int, end_frame: int) -> tuple[int, int] | None:
    """(earlier, later) frame pair for the flow at a keyframe: the frame `gap` after it, or the
    one `gap` before it at the end of the clip; None for a clip too short for any pair."""
    if index + gap < end_frame:
        return index, index + gap
    if index - gap >= start_frame:
        return index - gap, index
    return None


def to_width(rgb: np.ndarray, width: int) -> np.ndarray:
    """The frame at exactly `width` (aspect kept): measures in pixels mean the same on every video."""
    h, w = rgb.shape[:2]
    if w == width:
        return rgb
    height = max(2, int(round(h * width / w)))
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if w > width else cv2.INTER_LINEAR)


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# ---- picture measures ------------------------------------------------------------------------
def brightness(rgb: np.ndarray) -> float:
    """Mean luma, 0-255, with BT.709 weights on RGB (DataFlow-MM's luminance filter)."""
    f = rgb.reshape(-1, 3).astype(np.float32)
    return float((f @ np.array([0.2126, 0.7152, 0.0722], np.float32)).mean())


def blur(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey frame: low for blurred or flat pictures."""
    return float(cv2.Laplacian(grey(rgb), cv2.CV_64F).var())


def dominant_colour(rgb: np.ndarray) -> str:
    """The palette colour nearest (CIE Lab) to the most pixels of a small copy of the frame."""
    small = cv2.resize(rgb, (64, max(2, round(64 * rgb.shape[0] / rgb.shape[1]))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).reshape(-1, 1, 3).astype(np.float32)
    nearest = np.argmin(((lab - _PALETTE_LAB[None, :, :]) ** 2).sum(axis=2), axis=1)
    return _PALETTE_NAMES[int(np.bincount(nearest, minlength=len(_PALETTE_NAMES)).argmax())]


# ---- motion ----------------------------------------------------------------------------------
def flow(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Dense Farneback flow (H, W, 2) from one grey frame to the next, in pixels."""
    return cv2.calcOpticalFlowFarneback(earlier, later, None, **FARNEBACK)


@dataclass
class Motion:
    motion: float | None  # mean flow magnitude, px/s at the analysis width (the larger over the gaps)
    median_dx: float  # px/s; > 0: the picture moves right
    median_dy: float  # px/s; > 0: the picture moves down
    camera_direction: str
    by_gap: dict[float, float] = field(default_factory=dict)  # seconds apart -> mean magnitude, px/s


def camera_direction(median_dx: float, median_dy: float, static_px_s: float = CAMERA_STATIC_PX_S) -> str:
    """Where the camera turns: against the way the whole picture moves (the picture sliding left
    means the camera pans right). The median flow ignores a few moving things in a still shot."""
    if max(abs(median_dx), abs(median_dy)) < static_px_s:
        return "static"
    if abs(median_dx) >= abs(median_dy):
        return "right" if median_dx < 0 else "left"
    return "down" if median_dy < 0 else "up"


def measure_motion(pairs_by_gap: dict[float, list[tuple[np.ndarray, np.ndarray]]], static_px_s: float = CAMERA_STATIC_PX_S) -> Motion:
    """Motion from (earlier, later) grey pairs at the analysis width, grouped by how many seconds
    apart they are. Real motion has the same speed at every gap; the clip's motion is the larger
    of the gaps' means because each gap misses something the other sees: a slow thing that moves
    by whole pixels every few frames shows only over the longer gap, and a picture that changes
    more from one frame to the next than any motion explains (noise, flashes: the flow of
    unrelated frames stays a few pixels whatever the gap) shows as a high speed at the shortest.
    The camera direction comes from the longest gap (slow pans are clearer there)."""
    by_gap: dict[float, float] = {}
    dx = dy = 0.0
    for seconds in sorted(pairs_by_gap):
        pairs = pairs_by_gap[seconds]
        if not pairs:
            continue
        means, dxs, dys = [], [], []
        for earlier, later in pairs:
            f = flow(earlier, later)
            magnitude = np.hypot(f[..., 0], f[..., 1])
            magnitude[magnitude < FLOW_FLOOR_PX] = 0.0
            means.append(float(magnitude.mean()) / seconds)
            dxs.append(float(np.median(f[..., 0])) / seconds)
            dys.append(float(np.median(f[..., 1])) / seconds)
        by_gap[seconds] = float(np.mean(means))
        dx, dy = float(np.median(dxs)), float(np.median(dys))
    if not by_gap:
        return Motion(None, 0.0, 0.0, "static")
    return Motion(max(by_gap.values()), dx, dy, camera_direction(dx, dy, static_px_s), by_gap)


# ---- on-screen text ----------------------------------------------------------------------------
_OCR_ENGINE = None
# Lines with fewer letters or digits are dropped (and their boxes not counted as text): PP-OCR
# reads a plain square as "■" or "口" with confidence 0.6-0.97 on the synthetic videos.
MIN_TEXT_CHARS = 2


def ocr_engine():
    """RapidOCR, loaded once per process on first use (about 0.3 s; its models ship in the wheel)."""
    global _OCR_ENGINE
    if _OCR_ENGINE is None:
        from rapidocr_onnxruntime import RapidOCR

        _OCR_ENGINE = RapidOCR()
    return _OCR_ENGINE


@dataclass
class TextRead:
    lines: list[str] = field(default_factory=list)
    confidence: float | None = None  # mean over the lines read
    area: float = 0.0  # share of the frame covered by text boxes (the largest over the frames read)


def polygon_area(points) -> float:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def is_text(line: str, min_chars: int = MIN_TEXT_CHARS) -> bool:
    """A line worth keeping: the recogniser reads flat shapes as one symbol ("■", "口")."""
    return sum(ch.isalnum() for ch in line) >= min_chars


def read_text(frames_rgb: list[np.ndarray], engine=None) -> TextRead:
    """Lines read on the frames (each line once, in reading order of first sight), their mean
    confidence, and the text area: the summed box areas over the frame area, as DataFlow-MM's
    OCR score (at most 1; the largest over the frames). Lines with fewer than MIN_TEXT_CHARS
    letters or digits are not text."""
    engine = engine or ocr_engine()
    lines: list[str] = []
    confidences: list[float] = []
    area = 0.0
    for rgb in frames_rgb:
        result, _ = engine(np.ascontiguousarray(rgb[:, :, ::-1]))
        frame_area = float(rgb.shape[0] * rgb.shape[1])
        boxes = 0.0
        for box, text, conf in sorted(result or [], key=lambda r: (min(p[1] for p in r[0]), min(p[0] for p in r[0]))):
            text = " ".join(str(text).split())
            if not is_text(text):
                continue
            boxes += polygon_area(box)
            if text not in lines:
                lines.append(text)
                confidences.append(float(conf))
        area = max(area, min(1.0, boxes / frame_area))
    return TextRead(lines, float(np.mean(confidences)) if confidences else None, area)


# ---- people and faces ------------------------------------------------------------------------
_HOG = None
_FACES = None


def _hog():
    global _HOG
    if _HOG is None:
        _HOG = cv2.HOGDescriptor()
        _HOG.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return _HOG


def _face_cascade():
    global _FACES
    if _FACES is None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        _FACES = cv2.CascadeClassifier(str(path))
        if _FACES.empty():
            raise RuntimeError(f"the Haar face cascade did not load from {path}")
    return _FACES


def detect_people(rgb: np.ndarray, min_weight: float = 0.5) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of upright people at least 128 px tall in this frame (HOG + linear SVM)."""
    rects, weights = _hog().detectMultiScale(grey(rgb), winStride=(8, 8), padding=(8, 8), scale=1.05)
    return [tuple(int(v) for v in r) for r, w in zip(rects, np.ravel(weights)) if w >= min_weight]


def detect_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of frontal faces at least 24 px wide (Haar cascade)."""
    faces = _face_cascade().detectMultiScale(cv2.equalizeHist(grey(rgb)), scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    return [tuple(int(v) for v in r) for r in faces]


def positions(boxes: list[tuple[int, int, int, int]], width: int) -> list[str]:
    """left / centre / right of each box (its centre in the frame's thirds), left to right."""
    out = []
    for x, _, w, _ in sorted(boxes):
        c = (x + w / 2) / width
        out.append("left" if c < 1 / 3 else "right" if c > 2 / 3 else "centre")
    return out


# ---- one clip ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignalConfig:
    keyframes: int = 3
    ocr: bool = True
    ocr_frames: int = 1
    analysis_width: int = ANALYSIS_WIDTH
    flow_gaps_s: tuple[float, ...] = (0.04, 0.2)
    people: bool = True
    faces: bool = True


@dataclass
class ClipSignals:
    frame_indices: list[int]
    brightness: float
    blur: float
    motion: float | None
    camera_direction: str
    ocr_lines: list[str]
    ocr_confidence: float | None
    text_area: float | None  # None: OCR was off
    people: int | None
    faces: int | None
    people_positions: list[str]
    face_positions: list[str]
    dominant_colour: str
    seconds: dict[str, float]  # time spent per measure (decode, flow, ocr, people, faces, picture)

    @property
    def ocr_text(self) -> str:
        return " | ".join(self.ocr_lines)

    def columns(self) -> dict:
        """The CLIP_SIGNALS columns these measurements fill."""
        return {
            "frame_indices": self.frame_indices,
            "brightness": round(self.brightness, 3),
            "blur": round(self.blur, 3),
            "motion": None if self.motion is None else round(self.motion, 4),
            "camera_direction": self.camera_direction,
            "ocr_text": self.ocr_text,
            "ocr_lines": self.ocr_lines,
            "ocr_confidence": None if self.ocr_confidence is None else round(self.ocr_confidence, 4),
            "text_area": None if self.text_area is None else round(self.text_area, 4),
            "people": self.people,
            "faces": self.faces,
            "people_positions": self.people_positions,
            "face_positions": self.face_positions,
            "dominant_colour": self.dominant_colour,
            "signals_version": SIGNALS_VERSION,
        }


def ocr_keyframes(n_keyframes: int, n_ocr: int) -> list[int]:
    """Which keyframes (positions 0..n-1) OCR reads: the centres of n_ocr equal slices (the
    middle keyframe when OCR reads one)."""
    n_ocr = min(n_ocr, n_keyframes)
    return sorted({int((i + 0.5) * n_keyframes / n_ocr) for i in range(n_ocr)})


def measure_frames(keyframes: list[np.ndarray], pairs_by_gap: dict[float, list[tuple[np.ndarray, np.ndarray]]], config: SignalConfig) -> ClipSignals:
    """Every signal from decoded RGB keyframes (and their flow pairs), all at the analysis width."""
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        t = time.perf_counter()
        value = fn(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
        return value

    frames = [to_width(f, config.analysis_width) for f in keyframes]
    light = timed("picture", lambda: float(np.mean([brightness(f) for f in frames])))
    sharp = timed("picture", lambda: float(np.mean([blur(f) for f in frames])))
    colour = timed("picture", lambda: dominant_colour(frames[len(frames) // 2]))
    greys: dict[int, np.ndarray] = {}

    def grey_at(frame: np.ndarray) -> np.ndarray:  # a frame shared by two pairs is converted once
        if id(frame) not in greys:
            greys[id(frame)] = grey(to_width(frame, config.analysis_width))
        return greys[id(frame)]

    motion = timed("flow", lambda: measure_motion({s: [(grey_at(a), grey_at(b)) for a, b in p] for s, p in pairs_by_gap.items()}))
    text = TextRead()
    if config.ocr and config.ocr_frames > 0:
        text = timed("ocr", read_text, [frames[i] for i in ocr_keyframes(len(frames), config.ocr_frames)])
    people = timed("people", lambda: [detect_people(f) for f in frames]) if config.people else None
    faces = timed("faces", lambda: [detect_faces(f) for f in frames]) if config.faces else None
    width = config.analysis_width
    most_people = max(people, key=len) if people else []
    most_faces = max(faces, key=len) if faces else []
    return ClipSignals(
        frame_indices=[],
        brightness=light,
        blur=sharp,
        motion=motion.motion,
        camera_direction=motion.camera_direction,
        ocr_lines=text.lines,
        ocr_confidence=text.confidence,
        text_area=text.area if config.ocr and config.ocr_frames > 0 else None,
        people=len(most_people) if people is not None else None,
        faces=len(most_faces) if faces is not None else None,
        people_positions=positions(most_people, width),
        face_positions=positions(most_faces, width),
        dominant_colour=colour,
        seconds=seconds,
    )


def measure_clip(path: str | Path, start_frame: int, end_frame: int, fps: float, config: SignalConfig = SignalConfig()) -> ClipSignals:
    """Decode a clip's keyframes (and the frames `flow_gaps_s` after each) and measure them."""
    from curation.video.decode import read_frames

    t = time.perf_counter()
    keys = keyframe_indices(start_frame, end_frame, config.keyframes)
    gaps = sorted({gap_frames(fps, g) for g in config.flow_gaps_s})
    pair_index = {gap: [p for p in (flow_partner(k, gap, start_frame, end_frame) for k in keys) if p is not None] for gap in gaps}
    wanted = sorted(set(keys) | {i for pairs in pair_index.values() for p in pairs for i in p})
    decoded = read_frames(path, wanted, target_width=config.analysis_width)
    if len(decoded) != len(wanted):
        raise ValueError(f"decoded {len(decoded)} of {len(wanted)} frames")
    at = {index: decoded[k] for k, index in enumerate(wanted)}
    decode_s = time.perf_counter() - t
    pairs_by_gap = {gap / fps: [(at[a], at[b]) for a, b in pairs] for gap, pairs in pair_index.items()}
    signals = measure_frames([at[k] for k in keys], pairs_by_gap, config)
    signals.frame_indices = keys
    signals.seconds["decode"] = decode_s
    return signals
