"""The run folder's keyframe cache: small JPEGs of clip frames, decoded once, kept for every page.

    <run>/keyframes/<key[:2]>/<key>.jpg     key = sha1(video sha256, frame index, width, quality)
    <run>/keyframes/videos/<key>.json       a video's codec keyframes (which frames are cheap to show)

Content-addressed, so a rerun, a second gallery or a resumed one reads what is there and a
replaced video (new sha256) never shows stale frames. Writes are atomic: a killed gallery leaves
whole files or none.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from curation.storage import atomic_write_bytes
from curation.video.keyframes import JPEG_QUALITY, KEYFRAME_WIDTH, KeyframeError, codec_keyframes, keyframe_jpegs

KEYFRAMES_DIR = "keyframes"


@dataclass(frozen=True)
class FrameRequest:
    video_id: str
    path: str
    sha256: str
    frame: int


@dataclass
class KeyframeResult:
    jpegs: dict[FrameRequest, bytes] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # video_id -> why its frames are missing
    decoded: int = 0
    cached: int = 0


class KeyframeCache:
    def __init__(self, run_root: Path | str, width: int = KEYFRAME_WIDTH, quality: int = JPEG_QUALITY):
        self.root = Path(run_root) / KEYFRAMES_DIR
        self.width, self.quality = width, quality

    def path_of(self, request: FrameRequest) -> Path:
        key = hashlib.sha1(f"{_identity(request.sha256, request.path)}:{request.frame}:{self.width}:{self.quality}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.jpg"

    def codec_keys(self, path: str, sha256: str) -> list[int]:
        """The video's codec keyframes, read from its index once and kept (raises KeyframeError)."""
        cached = self.root / "videos" / f"{hashlib.sha1(_identity(sha256, path).encode()).hexdigest()}.json"
        if cached.is_file():
            return json.loads(cached.read_text())["codec_keys"]
        keys, frames = codec_keyframes(path)
        atomic_write_bytes(cached, json.dumps({"path": path, "frames": frames, "codec_keys": keys}).encode())
        return keys

    def get(self, requests: list[FrameRequest], workers: int = 2, progress: bool = True) -> KeyframeResult:
        """The JPEG of every request: read from the cache, else decoded (one pass per video, videos
        in `workers` threads: decord decodes outside the GIL) and stored. A video that cannot be
        decoded is named in `problems`; its frames are simply missing."""
        result = KeyframeResult()
        missing: dict[str, list[FrameRequest]] = defaultdict(list)
        for request in dict.fromkeys(requests):
            path = self.path_of(request)
            if path.is_file():
                result.jpegs[request] = path.read_bytes()
                result.cached += 1
            else:
                missing[request.video_id].append(request)
        if not missing:
            return result
        bar = tqdm(total=sum(map(len, missing.values())), desc=" keyframes", unit="frame", disable=not progress, dynamic_ncols=True)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for video_id, wanted, decoded in pool.map(self._decode_video, missing.items()):
                if isinstance(decoded, str):
                    result.problems[video_id] = decoded
                else:
                    for request in wanted:
                        data = decoded[request.frame]
                        atomic_write_bytes(self.path_of(request), data)
                        result.jpegs[request] = data
                    result.decoded += len(wanted)
                bar.update(len(wanted))
        bar.close()
        return result

    def _decode_video(self, item: tuple[str, list[FrameRequest]]):
        video_id, wanted = item
        try:  # one unreadable video never stops the page: keyframe_jpegs names any failure
            return video_id, wanted, keyframe_jpegs(wanted[0].path, [r.frame for r in wanted], self.width, self.quality)
        except KeyframeError as err:
            return video_id, wanted, str(err)


def _identity(sha256: str, path: str) -> str:
    # without a sha256 (a failed probe), the path stands in
    return sha256 or f"path:{path}"
