"""Segment throughput: our segment stage vs the `scenedetect` CLI (default `detect-content`),
side by side on the same files, plus cut agreement (ours vs CLI vs synthetic ground truth).

    .venv/bin/python benchmarks/segment.py [--minutes 5] [--workers 2]

The sample videos (real + synthetic) are repeated (as copies) until they hold at least
--minutes of video. Throughput = video seconds processed per wall second.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.video.probe import probe_video  # noqa: E402
from pipelines.rundir import RunDir  # noqa: E402
from pipelines.runners.local import LocalRunner  # noqa: E402
from pipelines.samples import make_samples  # noqa: E402
from pipelines.stage import StageContext  # noqa: E402
from pipelines.stages.segment import STAGE as SEGMENT  # noqa: E402
from pipelines.stages.segment import SegmentParams  # noqa: E402


def build_corpus(folder: Path, minutes: float) -> list[dict]:
    samples = make_samples(ROOT).parent
    sources = sorted((samples / "real").glob("*.mp4")) + sorted((samples / "synthetic").glob("*.mp4"))
    videos, total, copy = [], 0.0, 0
    while total < minutes * 60:
        for src in sources:
            dst = folder / f"{src.stem}-{copy:02d}.mp4"
            shutil.copyfile(src, dst)
            info = probe_video(dst)
            truth = src.with_suffix(".json")
            # copies share content, so their content ids collide: give each copy its own id
            videos.append({**info, "video_id": f"{info['video_id']}-{copy:02d}", "path": str(dst),
                           "truth": str(truth) if truth.exists() else None})
            total += info["duration_s"]
        copy += 1
    return videos


def run_ours(videos: list[dict], workers: int, out: Path) -> tuple[float, dict[str, list[int]]]:
    run_dir = RunDir(out / "ours")
    ctx = StageContext(run="bench", run_root=run_dir.root, project_root=ROOT)
    runner = LocalRunner(workers=workers, part_size=2, progress=False)
    start = time.perf_counter()
    # min_clip_s=0.2: keep every detected scene (the CLI keeps even a short last scene), so that
    # clip boundaries can be compared with the CLI's cuts one to one.
    runner.run_stage(SEGMENT, SegmentParams(min_clip_s=0.2), run_dir, ctx, videos)
    wall = time.perf_counter() - start
    path_of = {v["video_id"]: v["path"] for v in videos}
    cuts: dict[str, list[int]] = {v["path"]: [] for v in videos}
    for clip in run_dir.read_rows("clips"):
        if clip["boundary"] == "scene_cut":
            cuts[path_of[clip["video_id"]]].append(clip["start_frame"])
    return wall, {k: sorted(v) for k, v in cuts.items()}


def run_cli(videos: list[dict], out: Path) -> tuple[float, dict[str, list[int]]]:
    cli = Path(sys.executable).with_name("scenedetect")
    cuts = {}
    start = time.perf_counter()
    for v in videos:
        subprocess.run([str(cli), "-i", v["path"], "-o", str(out), "detect-content", "list-scenes", "-s", "-q"],
                       check=True, capture_output=True)
    wall = time.perf_counter() - start
    for v in videos:
        with open(out / f"{Path(v['path']).stem}-Scenes.csv") as fh:
            starts = [int(row["Start Frame"]) - 1 for row in csv.DictReader(fh)]  # CSV frames are 1-based
        cuts[v["path"]] = starts[1:]
    return wall, cuts


def agree(a: list[int], b: list[int], tol: int = 1) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "videos").mkdir()
        videos = build_corpus(tmp / "videos", args.minutes)
        seconds = sum(v["duration_s"] for v in videos)
        # Side by side, same session: the CLI first, then ours, then the CLI again (fairness
        # against a warming page cache), keeping each tool's best run.
        cli_wall, cli_cuts = run_cli(videos, tmp / "cli")
        ours_wall, ours_cuts = run_ours(videos, args.workers, tmp)
        cli_wall2, _ = run_cli(videos, tmp / "cli2")
        cli_best = min(cli_wall, cli_wall2)
        synthetic = [v for v in videos if v["truth"]]
        truth_ok_ours = sum(agree(ours_cuts[v["path"]], json.loads(Path(v["truth"]).read_text())["cut_frames"]) for v in synthetic)
        truth_ok_cli = sum(agree(cli_cuts[v["path"]], json.loads(Path(v["truth"]).read_text())["cut_frames"]) for v in synthetic)
        same = sum(agree(ours_cuts[v["path"]], cli_cuts[v["path"]]) for v in videos)
        result = {
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
            "videos": len(videos),
            "video_seconds": round(seconds, 1),
            "cli_wall_s": round(cli_best, 2),
            "ours_wall_s": round(ours_wall, 2),
            "cli_video_s_per_s": round(seconds / cli_best, 1),
            "ours_video_s_per_s": round(seconds / ours_wall, 1),
            "speedup": round(cli_best / ours_wall, 2),
            "files_same_cuts_as_cli_pm1": f"{same}/{len(videos)}",
            "synthetic_exact_pm1_ours": f"{truth_ok_ours}/{len(synthetic)}",
            "synthetic_exact_pm1_cli": f"{truth_ok_cli}/{len(synthetic)}",
            "workers": args.workers,
            "disagreements": {Path(v["path"]).name: {"ours": ours_cuts[v["path"]], "cli": cli_cuts[v["path"]]}
                              for v in videos if not agree(ours_cuts[v["path"]], cli_cuts[v["path"]])},
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
