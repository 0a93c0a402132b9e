"""Synthetic videos with KNOWN content, for measuring segmentation, captions, questions and filters.

A video is a few scenes separated by hard cuts (each scene has its own background colour); in
each scene, coloured shapes appear at known times, move in a known direction and leave at known
times. `make_script` draws the plan from a seed, `render_video` writes the frames (H.264 through
ffmpeg when present, else OpenCV's MPEG-4), and `ground_truth` gives the timestamped events the
way dense-caption datasets do (ActivityNet Captions, Ego4D narrations).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

SHAPES = ["circle", "square", "triangle"]
# name -> BGR
COLOURS = {
    "red": (40, 40, 230),
    "green": (60, 200, 60),
    "blue": (230, 90, 40),
    "yellow": (40, 220, 235),
    "white": (245, 245, 245),
    "magenta": (200, 50, 200),
}
# Backgrounds differ strongly in hue, saturation and brightness so that every cut is a hard cut.
BACKGROUNDS = {
    "navy": (90, 30, 20),
    "olive": (30, 110, 100),
    "maroon": (30, 20, 110),
    "teal": (120, 120, 20),
    "grey": (128, 128, 128),
    "purple": (230, 40, 150),  # was black (luma ~10): below the brightness filter, it cost whole windows
}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class ObjectPlan:
    object_id: str
    shape: str
    colour: str
    direction: str
    appear_frame: int
    leave_frame: int  # exclusive
    x0: float
    y0: float
    speed: float  # pixels per frame
    size: int


@dataclass
class ScenePlan:
    index: int
    start_frame: int
    end_frame: int  # exclusive
    background: str
    objects: list[ObjectPlan] = field(default_factory=list)


@dataclass
class VideoScript:
    name: str
    fps: int
    width: int
    height: int
    scenes: list[ScenePlan]

    @property
    def frame_count(self) -> int:
        return self.scenes[-1].end_frame


def make_script(
    name: str,
    seed: int,
    n_scenes: int = 4,
    scene_s: tuple[float, float] = (6.0, 14.0),
    fps: int = 25,
    width: int = 320,
    height: int = 240,
    max_objects: int = 3,
) -> VideoScript:
    rng = random.Random(seed)
    backgrounds = rng.sample(list(BACKGROUNDS), k=min(n_scenes, len(BACKGROUNDS)))
    while len(backgrounds) < n_scenes:  # never the same background twice in a row
        backgrounds.append(rng.choice([b for b in BACKGROUNDS if b != backgrounds[-1]]))
    scenes, start = [], 0
    for i in range(n_scenes):
        length = int(round(rng.uniform(*scene_s) * fps))
        scene = ScenePlan(i, start, start + length, backgrounds[i])
        for j in range(rng.randint(1, max_objects)):
            appear = start + rng.randint(0, length // 3)
            leave = min(start + length, appear + rng.randint(length // 3, length))
            scale = width / 320  # objects keep their share of the picture at any size
            size = max(4, int(rng.randint(18, 30) * scale))
            scene.objects.append(
                ObjectPlan(
                    object_id=f"s{i}o{j}",
                    shape=rng.choice(SHAPES),
                    colour=rng.choice(list(COLOURS)),
                    direction=rng.choice(list(DIRECTIONS)),
                    appear_frame=appear,
                    leave_frame=leave,
                    x0=rng.uniform(0.3, 0.7) * width,
                    y0=rng.uniform(0.3, 0.7) * height,
                    speed=rng.uniform(0.3, 1.0) * scale,
                    size=size,
                )
            )
        scenes.append(scene)
        start += length
    return VideoScript(name=name, fps=fps, width=width, height=height, scenes=scenes)


def _draw(frame: np.ndarray, obj: ObjectPlan, t: int) -> None:
    dx, dy = DIRECTIONS[obj.direction]
    age = t - obj.appear_frame
    x = int(round(obj.x0 + dx * obj.speed * age))
    y = int(round(obj.y0 + dy * obj.speed * age))
    colour, s = COLOURS[obj.colour], obj.size
    if obj.shape == "circle":
        cv2.circle(frame, (x, y), s // 2, colour, -1, lineType=cv2.LINE_AA)
    elif obj.shape == "square":
        cv2.rectangle(frame, (x - s // 2, y - s // 2), (x + s // 2, y + s // 2), colour, -1)
    else:
        pts = np.array([[x, y - s // 2], [x - s // 2, y + s // 2], [x + s // 2, y + s // 2]], np.int32)
        cv2.fillPoly(frame, [pts], colour, lineType=cv2.LINE_AA)


def frames(script: VideoScript):
    for scene in script.scenes:
        for t in range(scene.start_frame, scene.end_frame):
            frame = np.empty((script.height, script.width, 3), np.uint8)
            frame[:] = BACKGROUNDS[scene.background]
            # A faint gradient: real pictures are never flat, and flat frames compress oddly.
            frame[:, :, 1] = np.clip(frame[:, :, 1].astype(np.int16) + (np.arange(script.width) // 16), 0, 255).astype(np.uint8)
            for obj in scene.objects:
                if obj.appear_frame <= t < obj.leave_frame:
                    _draw(frame, obj, t)
            yield frame


def render_video(script: VideoScript, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    if shutil.which("ffmpeg"):
        cmd = [
            "ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
            "-s", f"{script.width}x{script.height}", "-r", str(script.fps), "-i", "-",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-g", str(script.fps * 2), "-movflags", "+faststart", str(tmp),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        for frame in frames(script):
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed to write {path}")
    else:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), script.fps, (script.width, script.height))
        for frame in frames(script):
            writer.write(frame)
        writer.release()
    tmp.replace(path)
    return path


def _t(frame: int, fps: int) -> float:
    return round(frame / fps, 3)


def ground_truth(script: VideoScript) -> dict:
    """The plan as data: scenes, cuts, objects and timestamped events (captions)."""
    fps = script.fps
    events = []
    for scene in script.scenes:
        events.append(
            {
                "start_s": _t(scene.start_frame, fps),
                "end_s": _t(scene.end_frame, fps),
                "kind": "scene",
                "text": f"Scene {scene.index + 1}: a plain {scene.background} background.",
            }
        )
        for obj in scene.objects:
            events.append(
                {
                    "start_s": _t(obj.appear_frame, fps),
                    "end_s": _t(obj.leave_frame, fps),
                    "kind": "object",
                    "object_id": obj.object_id,
                    "text": f"A {obj.colour} {obj.shape} appears and moves {obj.direction}.",
                }
            )
            if obj.leave_frame < scene.end_frame:
                events.append(
                    {
                        "start_s": _t(obj.leave_frame, fps),
                        "end_s": _t(obj.leave_frame, fps),
                        "kind": "leave",
                        "object_id": obj.object_id,
                        "text": f"The {obj.colour} {obj.shape} disappears.",
                    }
                )
    events.sort(key=lambda e: (e["start_s"], e["kind"] != "scene"))
    return {
        "name": script.name,
        "fps": fps,
        "width": script.width,
        "height": script.height,
        "frame_count": script.frame_count,
        "duration_s": _t(script.frame_count, fps),
        "cut_frames": [s.start_frame for s in script.scenes[1:]],
        "cut_times_s": [_t(s.start_frame, fps) for s in script.scenes[1:]],
        "scenes": [
            {
                "index": s.index,
                "start_s": _t(s.start_frame, fps),
                "end_s": _t(s.end_frame, fps),
                "background": s.background,
                "objects": [
                    {**asdict(o), "appear_s": _t(o.appear_frame, fps), "leave_s": _t(o.leave_frame, fps)}
                    for o in s.objects
                ],
            }
            for s in script.scenes
        ],
        "events": events,
    }


def write_synthetic_set(folder: Path, count: int = 4, seed: int = 7, **script_kwargs) -> list[Path]:
    """Videos + ground-truth JSON side by side; skips files already written (idempotent)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name = f"synthetic-{seed}-{i:03d}"
        script = make_script(name, seed=seed * 1000 + i, **script_kwargs)
        video, truth = folder / f"{name}.mp4", folder / f"{name}.json"
        if not (video.exists() and truth.exists()):
            render_video(script, video)
            truth.write_text(json.dumps(ground_truth(script), indent=2) + "\n")
        paths.append(video)
    return paths


# ---- real-world oddities: variable frame rate, rotation ------------------------------------------
def write_vfr_video(path: Path, pieces=((5, 10.0, (230, 20, 20)), (30, 5.0, (20, 20, 230))), size: tuple[int, int] = (160, 120)) -> list[float]:
    """A variable-frame-rate MP4 as a phone writes one: each piece (fps, seconds, RGB colour) is a
    scene at its own rate, every frame with its own timestamp (a bar moves across). Returns the
    times the scenes start: the real cuts."""
    import fractions

    import av

    width, height = size
    starts, times, colours, t0 = [], [], [], 0.0
    for fps, seconds, rgb in pieces:
        starts.append(round(t0, 6))
        count = int(round(fps * seconds))
        times += [t0 + i / fps for i in range(count)]
        colours += [rgb] * count
        t0 += count / fps
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 15360)
        for t, rgb in zip(times, colours):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = rgb
            x = int(t * width / 20) % max(1, width * 3 // 4)
            image[height // 3 : 2 * height // 3, x : x + width // 5] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 15360)), stream.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return starts


def write_rotated(src: Path, dst: Path, degrees: int = 90) -> Path:
    """A copy of `src` whose display matrix turns it `degrees` (the stream itself unchanged)."""
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(src), "-c", "copy",
                    "-metadata:s:v:0", f"rotate={degrees}", str(dst)], check=True)  # fmt: skip
    return dst
