"""Benchmark: how check and export grow with the corpus (issue 16), 10k -> 100k -> 1M chains.

    python benchmarks/scale.py                         # 10k, 100k and 1M chains
    python benchmarks/scale.py --sizes 10000 100000    # quicker
    python benchmarks/scale.py --sizes 50000 --keep data/bench/scale   # keep the run folders

For each size, a run folder is generated in the runner's layout (each table in the parts its own
stage would write, sorted by that stage's key: videos by input position, clips by video, captions
by clip, graphs by window, chains by question id, which is a hash: so a window's chains are spread
over the whole chains table, as in a real run). Windows have 6-10 clips of 5 s and are whole
videos (so no RL window cut is made: ffmpeg would be the whole cost), three questions each
(multiple choice, numerical, yes/no) whose chains share the window's thoughts, as composed
thoughts do (`--unique-thoughts`: each chain worded apart, the rule checks' harder case).
Then each stage runs in a child process, as `vstw run` runs it (local runner, `--workers`
processes, `--part-size` chains per part): the judge's input building alone (a dry run: no model),
check (every rule check, dedup included), export (SFT + seeks, RL Parquet, HF dataset). The parent
samples the resident memory of the child and of all its descendants every 50 ms; each stage
reports its wall time, CPU time (the child's and its workers') and that peak. One JSON line per
size, and a table at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from checks_export import synthetic_window  # noqa: E402  the chains' wording, shared with the older benchmark
from pipelines.streaming import part_name  # noqa: E402  the runner's part names

STAGES = ("judge_inputs", "check", "export")
GENERATE_PART = 5000  # rows per part of the generated tables (the stages that "wrote" them)


# ---- the corpus ----------------------------------------------------------------------------------
class PartWriter:
    """Rows of one table, written as the runner would: parts of `size` input items (an item may
    make several rows), in the order the caller adds them (its stage's key order)."""

    def __init__(self, run, table: str, size: int = GENERATE_PART, schema=None):
        from curation.schemas import TABLES

        self.run, self.table, self.size, self.schema = run, table, size, schema or TABLES[table]
        self.rows: list[dict] = []
        self.keys: list[str] = []
        self.parts = 0
        self.count = 0

    def add(self, key: str, rows: list[dict]) -> None:
        self.keys.append(key)
        self.rows.extend(rows)
        if len(self.keys) == self.size:
            self.flush()

    def flush(self) -> None:
        from curation.schemas import to_table

        if not self.keys:
            return
        for row in self.rows:
            row.setdefault("run", self.run.name)
        self.run.write_part(self.table, part_name(self.parts, [str(k) for k in self.keys]), to_table(self.rows, self.schema))
        self.parts += 1
        self.count += len(self.rows)
        self.rows, self.keys = [], []

    def close(self) -> None:
        self.flush()
        self.run.write_success(self.table, {"rows": self.count, "parts": self.parts, "generated": True})


def video_id_of(index: int) -> str:
    # Ids sort in generation order, so videos, clips, captions and graphs come out in their
    # stages' key order as they are made; a real run's ids are hashes sorted the same way.
    return f"v{index:016x}"


def window_rows(index: int, rng: random.Random, sample: str, unique_thoughts: bool = False) -> dict[str, list[dict]]:
    """The rows of one video: one window of 6-10 clips (the whole video), its graph, captions, chains."""
    clips = rng.randint(6, 10)
    video = {"video_id": video_id_of(index), "input_index": index, "path": sample, "duration_s": clips * 5.0, "fps": 25.0,
             "width": 320, "height": 240, "codec": "h264", "status": "ok"}
    graph, captions, chains = synthetic_window(0, rng, video, clips=clips, unique_thoughts=unique_thoughts)
    window_id = graph["window_id"]
    graph |= {"start_s": 0.0, "end_s": video["duration_s"]}
    clip_rows = []
    for k, (clip_id, caption) in enumerate(zip(graph["clip_ids"], captions)):
        start = k * 5.0
        clip_rows.append({"clip_id": clip_id, "video_id": video["video_id"], "window_id": window_id, "index": k, "index_in_window": k,
                          "start_s": start, "end_s": start + 5.0, "start_frame": k * 125, "end_frame": (k + 1) * 125,
                          "window_start_s": 0.0, "window_end_s": video["duration_s"], "boundary": "scene_cut" if k else "video_start",
                          "vst_frame_indices": [k * 125 + 12 * f for f in range(10)], "status": "ok"})  # fmt: skip
        caption |= {"start_s": start, "end_s": start + 5.0, "source": "annotation"}
    for q, chain in enumerate(chains):
        question_id = "q-" + hashlib.sha1(f"{window_id}/{q}".encode()).hexdigest()[:16]
        chain |= {"question_id": question_id, "chain_id": "ch-" + hashlib.sha1(question_id.encode()).hexdigest()[:16], "video_duration_s": video["duration_s"]}
    return {"videos": [video], "clips": clip_rows, "captions": captions, "graphs": [graph], "chains": chains}


def generate(run_dir: Path, n_chains: int, seed: int = 0, unique_thoughts: bool = False) -> dict:
    """Write a run folder of about `n_chains` chains (3 per video); returns the row counts."""
    from curation.schemas import CHAINS
    from pipelines.rundir import RunDir

    run = RunDir(run_dir)
    samples = [str(p) for p in sorted((ROOT / "data" / "samples").rglob("*.mp4"))]
    rng = random.Random(seed)
    writers = {table: PartWriter(run, table) for table in ("videos", "clips", "captions", "graphs")}
    # The chains are made video by video; the think stage writes them by question id (a hash):
    # they go to a scratch table first, then DuckDB sorts them into the runner's parts.
    scratch = PartWriter(run, "chains_unsorted", schema=CHAINS)
    for index in range((n_chains + 2) // 3):
        rows = window_rows(index, rng, samples[index % len(samples)], unique_thoughts)
        writers["videos"].add(index, rows["videos"])
        writers["clips"].add(rows["videos"][0]["video_id"], rows["clips"])
        for caption in rows["captions"]:
            writers["captions"].add(caption["clip_id"], [caption])
        writers["graphs"].add(rows["graphs"][0]["window_id"], rows["graphs"])
        for chain in rows["chains"]:
            scratch.add(chain["chain_id"], [chain])
    for writer in writers.values():
        writer.close()
    scratch.flush()
    counts = {name: w.count for name, w in writers.items()}
    counts["chains"] = sort_chains(run, n_chains)
    shutil.rmtree(run.table_dir("chains_unsorted"))
    return counts


def sort_chains(run, n_chains: int) -> int:
    """The scratch chains in question-id order, in parts of GENERATE_PART (DuckDB sorts on disk)."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2, "temp_directory": str(run.root / ".duckdb-tmp")})
    files = ", ".join(f"'{p}'" for p in run.part_files("chains_unsorted"))
    query = f"SELECT * FROM read_parquet([{files}]) ORDER BY question_id LIMIT {n_chains}"
    pending, parts, rows = None, 0, 0
    for batch in con.sql(query).to_arrow_reader(GENERATE_PART):
        table = pa.Table.from_batches([batch])
        pending = table if pending is None else pa.concat_tables([pending, table])
        while pending.num_rows >= GENERATE_PART:
            parts, rows = write_sorted_part(run, pending.slice(0, GENERATE_PART), parts, rows)
            pending = pending.slice(GENERATE_PART)
    if pending is not None and pending.num_rows:
        parts, rows = write_sorted_part(run, pending, parts, rows)
    con.close()
    shutil.rmtree(run.root / ".duckdb-tmp", ignore_errors=True)
    run.write_success("chains", {"rows": rows, "parts": parts, "generated": True})
    return rows


def write_sorted_part(run, table, parts: int, rows: int) -> tuple[int, int]:
    from curation.schemas import CHAINS

    table = table.combine_chunks().cast(CHAINS)
    run.write_part("chains", part_name(parts, table["question_id"].to_pylist()), table)
    return parts + 1, rows + table.num_rows


# ---- one stage, in a child process -------------------------------------------------------------
def run_stage_here(run_dir: Path, stage: str, workers: int, part_size: int) -> dict:
    """What the child process does: one stage on the generated run, as `vstw run` runs it."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from pipelines.rundir import RunDir
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages import REGISTRY

    run = RunDir(run_dir)
    if stage == "judge_inputs":  # a dry run: every part's records built, then dropped
        inputs = REGISTRY["judge"].load_inputs(run, REGISTRY["judge"].params_model())
        parts = inputs.parts(part_size)
        records = 0
        try:
            for part in inputs.stage(parts, parts, "judge_verdicts"):
                records += len(inputs.spec.load(part.staged, inputs.params))
        finally:
            inputs.close()
        return {"records": records, "parts": len(parts)}
    spec = REGISTRY[stage]
    # The generated run has no verify stage: its answers are not re-derived (allowed by name).
    params = spec.params_model(**({"allow_unchecked": ["answer"]} if stage == "export" else {}))
    for part in run.existing_parts(spec.output_table):
        run.delete(f"{spec.output_table}/{part}.parquet")
    run.delete(f"{spec.output_table}/_SUCCESS.json")
    ctx = StageContext(run=run.name, run_root=run.uri, project_root=ROOT)
    summary = LocalRunner(workers=workers, part_size=part_size, progress=False).run_stage(spec, params, run, ctx, spec.load_inputs(run, params))
    out = {"rows": summary["rows"], "parts": summary["parts"]}
    if stage == "export":
        manifest = json.loads((run.exports_dir / "manifest.json").read_text())
        out |= {"exported": manifest["records"], "rl_rows": manifest["rl_rows"]}
    return out


def measure(command: list[str]) -> dict:
    """Run a child process; its wall time, the CPU time of it and all its descendants (reaped
    children's rusage), and the peak of the summed resident memory of the whole process tree,
    sampled every 50 ms."""
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    proc, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - started
    output = child.stdout.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(peak / 2**20), "result": json.loads(output.strip().splitlines()[-1])}


def bench_size(chains: int, folder: Path, workers: int, part_size: int, unique_thoughts: bool, stages=STAGES) -> dict:
    run_dir = folder / f"scale-{chains}{'-unique' if unique_thoughts else ''}"
    me = [sys.executable, str(Path(__file__).resolve())]
    out: dict = {"chains": chains}
    if not (run_dir / "chains" / "_SUCCESS.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)
        out["generate"] = measure([*me, "--generate", str(chains), "--run", str(run_dir), *(["--unique-thoughts"] if unique_thoughts else [])])
    for stage in stages:
        out[stage] = measure([*me, "--stage", stage, "--run", str(run_dir), "--workers", str(workers), "--part-size", str(part_size)])
        print(f"{chains:>9} chains  {stage:<12} {out[stage]['wall_s']:>8.1f} s wall {out[stage]['cpu_s']:>8.1f} s CPU "
              f"{out[stage]['peak_rss_mb']:>6} MB peak   {out[stage]['result']}", flush=True)
    return out


def table(results: list[dict]) -> str:
    lines = ["| chains | stage | wall s | CPU s | peak RSS MB (tree) | wall / previous size | peak / previous size |", "|---|---|---|---|---|---|---|"]
    for prev, cur in zip([None, *results], results):
        for stage in STAGES:
            m = cur[stage]
            ratio = f"{m['wall_s'] / prev[stage]['wall_s']:.1f}x" if prev else "-"
            peak = f"{m['peak_rss_mb'] / prev[stage]['peak_rss_mb']:.2f}x" if prev else "-"
            lines.append(f"| {cur['chains']:,} | {stage} | {m['wall_s']} | {m['cpu_s']} | {m['peak_rss_mb']} | {ratio} | {peak} |")
        total = sum(cur[s]["wall_s"] for s in ("check", "export"))
        lines.append(f"| {cur['chains']:,} | check + export | {total:.1f} | {sum(cur[s]['cpu_s'] for s in ('check', 'export')):.1f} | "
                     f"{max(cur[s]['peak_rss_mb'] for s in ('check', 'export'))} | "
                     f"{total / sum(prev[s]['wall_s'] for s in ('check', 'export')):.1f}x |  |" if prev else
                     f"| {cur['chains']:,} | check + export | {total:.1f} | {sum(cur[s]['cpu_s'] for s in ('check', 'export')):.1f} | "
                     f"{max(cur[s]['peak_rss_mb'] for s in ('check', 'export'))} | - |  |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-size", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="generate the run folders here and keep them (reused when present)")
    parser.add_argument("--unique-thoughts", action="store_true", help="every chain has its own thought texts (no sharing within a window)")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="the stages to time (export needs check's verdicts)")
    # the child processes' entry points
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.generate:
        print(json.dumps(generate(args.run, args.generate, unique_thoughts=args.unique_thoughts)))
        return
    if args.stage:
        print(json.dumps(run_stage_here(args.run, args.stage, args.workers, args.part_size)))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vstw-scale-"))
    results = []
    try:
        for chains in args.sizes:
            results.append(bench_size(chains, folder, args.workers, args.part_size, args.unique_thoughts, args.stages))
            print(json.dumps(results[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if set(args.stages) == set(STAGES):
        print(table(results))


if __name__ == "__main__":
    main()
