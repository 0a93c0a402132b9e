"""Soak: many short synthetic videos through the demo recipe's stages, with wall time, items per
second per stage and the peak memory (RSS) of the whole process tree (run + workers + Ray).

    .venv/bin/python benchmarks/soak.py [--videos 250 1000] [--runners local ray] [--workers 2]
    .venv/bin/python benchmarks/soak.py --teacher [--latency 0.02]   # + perceive..think, check, export
    .venv/bin/python benchmarks/soak.py --s3                         # + the same runs into s3://
    .venv/bin/python benchmarks/soak.py --hostile 25                 # + 25 VFR and 25 rotated videos

Without --teacher: the stages of pipelines/recipes/demo.yaml as shipped. With --teacher: the
teacher stages of demo.yaml plus check and export, against a local fake OpenAI-compatible
teacher (tests/_teacher_fixtures.py) with a fixed latency per request.

The videos (3-5 s, 96x64, 10 fps, two scenes each, with ground-truth annotation files) are made
once with curation/synthetic.py into data/soak/ and reused; the N-video corpus is the first N of
them. Each run is a fresh `vstw run` process, so its memory is measured from a cold start. The
point: peak memory must not grow with the corpus size (parts are streamed to disk).

With --s3, each runner also runs with its run folder on S3 (`--runs-root s3://...`): a real S3
HTTP API on 127.0.0.1 (moto's server, tests/_s3_fixtures.py), side by side with the local disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.synthetic import write_rotated, write_synthetic_set, write_vfr_video  # noqa: E402
from pipelines.rundir import RunDir, run_location  # noqa: E402

SOAK_DIR = ROOT / "data" / "soak"
VIDEO_KW = dict(n_scenes=2, scene_s=(1.5, 2.5), fps=10, width=96, height=64, max_objects=2)


def make_corpus(n: int, folder: Path = SOAK_DIR, hostile: int = 0) -> Path:
    """The first n soak videos (made when missing) and a manifest naming them; with `hostile`,
    also that many variable-frame-rate videos and that many rotated copies (phone-style)."""
    videos = write_synthetic_set(folder / "videos", count=n, seed=5, **VIDEO_KW)
    rows = [{"path": f"videos/{v.name}", "annotations_file": f"videos/{v.stem}.json"} for v in videos]
    for k in range(hostile):
        vfr = folder / "hostile" / f"vfr-{k:04d}.mp4"
        rotated = folder / "hostile" / f"rotated-{k:04d}.mp4"
        if not vfr.is_file():
            vfr.parent.mkdir(parents=True, exist_ok=True)
            write_vfr_video(vfr, ((5 + k % 4, 2.0 + k % 3, (230, 20, 20)), (30, 1.5, (20, 20, 230))), size=(96, 64))
        if not rotated.is_file():
            write_rotated(videos[k % len(videos)], rotated, (90, 180, 270)[k % 3])
        rows += [{"path": f"hostile/{vfr.name}"}, {"path": f"hostile/{rotated.name}"}]
    manifest = folder / f"manifest-{n}{f'-hostile{hostile}' if hostile else ''}.jsonl"
    with open(manifest, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return manifest


def soak_recipe(manifest: Path, runner: str, workers: int, part_size: int, teacher_url: str | None = None) -> dict:
    """The demo recipe's ingest + segment over the soak manifest; with a teacher URL, also its
    teacher stages + check + export against that teacher (the judge is left out: model time)."""
    demo = yaml.safe_load((ROOT / "pipelines" / "recipes" / "demo.yaml").read_text())
    keep = {"ingest", "segment"} | ({"perceive", "graph", "qa", "think", "check", "export"} if teacher_url else set())
    demo["stages"] = [s for s in demo["stages"] if s["stage"] in keep]
    runner_spec = {"kind": runner, "workers": workers, "part_size": part_size}
    recipe = {**demo, "name": f"soak-{runner}", "inputs": [{"manifest": str(manifest)}],
              "allowed_roots": [str(manifest.parent)], "runner": runner_spec}
    if teacher_url:
        recipe["teacher"] = {"text": {"base_url": teacher_url, "model": "fake-teacher", "structured_output": "json_object_schema"},
                             "concurrency": 4, "timeout_s": 30, "max_retries": 2}
    return recipe


class TreeMemory:
    """Peak RSS (sum over a process and all its descendants), sampled every `every` s."""

    def __init__(self, pid: int, every: float = 0.2):
        self.root = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_once(n: int, runner: str, workers: int, part_size: int, out: Path, teacher_url: str | None = None,
             runs_root: str | None = None, env_extra: dict | None = None, hostile: int = 0) -> dict:
    manifest = make_corpus(n, hostile=hostile)
    recipe = out / f"soak-{runner}-{n}{f'-h{hostile}' if hostile else ''}.yaml"
    recipe.write_text(yaml.safe_dump(soak_recipe(manifest, runner, workers, part_size, teacher_url), sort_keys=False))
    run = recipe.stem
    runs_root = runs_root or str(out / "runs")
    env = {**os.environ, **(env_extra or {}), "VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(recipe), "--run", run, "--runs-root", runs_root],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeMemory(proc.pid) as mem:
        output, _ = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run {run} failed:\n{output[-3000:]}")
    os.environ.update(env_extra or {})  # the results are read back here, from the same place
    run_dir = RunDir(run_location(runs_root, run))
    stages = {}
    for entry in yaml.safe_load(recipe.read_text())["stages"]:
        from pipelines.stages import REGISTRY

        table = REGISTRY[entry["stage"]].output_table
        s = run_dir.read_success(table) or {}
        secs = s.get("seconds") or 0
        stages[entry["stage"]] = {"items": s.get("items"), "rows_ok": s.get("ok"), "rows_failed": s.get("failed"),
                                  "seconds": secs, "items_per_s": round(s["items"] / secs, 2) if secs else None}
    where = "s3" if runs_root.startswith("s3://") else "disk"
    result = {"videos": n, "runner": runner, "run_folder": where, "wall_s": round(wall, 1), "peak_rss_mb": round(mem.peak / 2**20), "stages": stages}
    if hostile:
        result["hostile"] = hostile_outcome(run_dir)
    return result


def hostile_outcome(run_dir: RunDir) -> dict:
    """How the VFR and rotated inputs fared: ok videos, VFR videos seen as VFR, rotated ones
    used upright, and their ok clips."""
    videos = [v for v in run_dir.read_rows("videos") if "/hostile/" in (v["source_path"] or v["path"])]
    ok = {v["video_id"]: v for v in videos if v["status"] == "ok"}
    clips = [c for c in run_dir.read_rows("clips") if c["video_id"] in ok and c["status"] == "ok"]
    return {"inputs": len(videos), "ok": len(ok), "vfr_seen": sum(bool(v["variable_frame_rate"]) for v in ok.values()),
            "upright_copies": sum(bool(v["source_path"]) for v in ok.values()), "clips_ok": len(clips)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--runners", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--part-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--teacher", action="store_true", help="also the teacher stages, check and export (fake local teacher)")
    ap.add_argument("--latency", type=float, default=0.02, help="--teacher: seconds per teacher request")
    ap.add_argument("--s3", action="store_true", help="also each run with its run folder on S3 (a local S3 API)")
    ap.add_argument("--hostile", type=int, default=0, help="also this many VFR and this many rotated videos in each corpus")
    args = ap.parse_args()

    t0 = time.perf_counter()
    make_corpus(max(args.videos))
    print(f"corpus: {max(args.videos)} videos in {SOAK_DIR / 'videos'} ({time.perf_counter() - t0:.0f} s to make or check)")
    out = args.out or Path(tempfile.mkdtemp(prefix="vstw-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with contextlib.ExitStack() as stack:
        teacher_url = None
        sys.path.insert(0, str(ROOT / "tests"))
        if args.teacher:
            from _teacher_fixtures import FakeTeacherServer

            teacher_url = stack.enter_context(FakeTeacherServer(latency_s=args.latency)).base_url
        places: list[tuple[str | None, dict]] = [(None, {})]
        if args.s3:
            from _s3_fixtures import LocalS3

            s3 = stack.enter_context(LocalS3())
            places.append((f"s3://{s3.new_bucket()}/runs", s3.env))
        for runner in args.runners:
            for n in args.videos:
                for runs_root, env_extra in places:
                    r = run_once(n, runner, args.workers, args.part_size, out, teacher_url, runs_root, env_extra, args.hostile)
                    results.append(r)
                    per_stage = ", ".join(f"{k} {v['items_per_s']}/s" for k, v in r["stages"].items())
                    print(f"{runner:>5} {r['run_folder']:>4} {n:>5} videos: wall {r['wall_s']:>7.1f} s, "
                          f"peak RSS {r['peak_rss_mb']:>5} MB, {per_stage}", flush=True)
                    if "hostile" in r:
                        h = r["hostile"]
                        print(f"      hostile inputs: {h['inputs']} in, {h['ok']} ok, {h['vfr_seen']} timed as VFR, "
                              f"{h['upright_copies']} used upright, {h['clips_ok']} clips ok", flush=True)
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores (shared), python {platform.python_version()}")
    print("| runner | run folder | videos | wall s | peak RSS MB (process tree) | " + " | ".join(f"{s} items/s" for s in results[0]["stages"]) + " |")
    print("| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in results[0]["stages"]) + " |")
    for r in results:
        print(f"| {r['runner']} | {r['run_folder']} | {r['videos']} | {r['wall_s']} | {r['peak_rss_mb']} | "
              + " | ".join(str(v["items_per_s"]) for v in r["stages"].values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
