"""An upright copy of a video shot sideways (a rotation display matrix, as phones write).

decord (ours and VST's SFT loader) turns frames upright on decode, but a reader that ignores the
matrix (PyAV, torchvision, some RL trainers) sees the picture sideways. A rotated input is
therefore re-encoded once, upright and with no matrix, and every later stage and every export
uses the copy. ffmpeg applies the matrix while decoding (its default autorotate);
`-fps_mode passthrough` keeps every frame with its own timestamp, so a variable-rate source
keeps its times (the copy is checked: same frame count, upright, no matrix left).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CRF = 18  # visually lossless for training frames


class UprightError(RuntimeError):
    """A rotated video that could not be turned upright (the message names the file and why)."""


def upright_copy(src: Path | str, dst: Path | str, frame_count: int) -> Path:
    """Write `src` upright to `dst` (MP4, H.264) unless `dst` already is that copy; returns dst."""
    from curation.video.probe import display_rotation

    src, dst = Path(src), Path(dst)
    if _is_copy_of(dst, frame_count):
        return dst
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise UprightError(f"{src}: the video is rotated and ffmpeg is not installed to turn it upright (apt-get install ffmpeg)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.mp4")
    cmd = [
        ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(src),
        "-map", "0:v:0", "-an", "-sn", "-dn",
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",  # yuv420p needs even sizes
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(CRF), "-pix_fmt", "yuv420p",
        "-fps_mode", "passthrough", "-metadata:s:v:0", "rotate=0", "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
            raise UprightError(f"{src}: ffmpeg could not turn the video upright: {tail[0][:300]}")
        import av

        with av.open(str(tmp)) as container:
            left = display_rotation(container)
        if left:
            raise UprightError(f"{src}: the upright copy still carries a {left} degree rotation")
        if not _is_copy_of(tmp, frame_count):
            raise UprightError(f"{src}: the upright copy does not hold the source's {frame_count} frames")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _is_copy_of(path: Path, frame_count: int) -> bool:
    if not path.is_file():
        return False
    try:
        from curation.video.decode import open_reader

        return len(open_reader(path)) == frame_count
    except Exception:
        return False
