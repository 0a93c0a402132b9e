"""Benchmark: rule-check throughput and export time on synthetic chains.

    python benchmarks/checks_export.py                 # 100k chains (targets: >= 2,000 chains/s, export < 20 s)
    python benchmarks/checks_export.py --chains 10000  # quicker

1. checks: `run_checks` (structure, thoughts, causality, grounding, qa) on one core, in this
   process, over chains with 6 clips each, plus the corpus-wide MinHash dedup, timed apart;
2. export: a run folder holding the chains, the check and export stages run as `vstw run` would
   (local runner, one worker), timed stage by stage, the export's file writing (SFT + seeks, RL
   Parquet, HF DatasetDict + card) included.
The chains are synthetic (random colours, shapes, motions; 3 questions per window), their videos
the demo's sample files. Prints one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLOURS = ["red", "green", "blue", "yellow", "white", "magenta", "orange", "purple"]
SHAPES = ["circle", "square", "triangle", "star", "hexagon"]
MOVES = ["left", "right", "up", "down"]
VERBS = ["appears and moves", "slides", "drifts", "turns and heads"]
# Question words drawn at random, so questions differ the way a teacher's do (dedup keeps most).
VOCAB = ("scene screen frame corner edge centre background light shadow moment start end middle half "
         "first last second third next earlier later before after during while near far above below "
         "left right top bottom fast slow large small bright dark busy quiet same different other every "
         "object figure shape item thing sign mark spot line path track motion change cut camera view").split()


def synthetic_window(w: int, rng: random.Random, video: dict, clips: int = 6, clip_s: float = 5.0, unique_thoughts: bool = False):
    """(graph, captions, three chains) for one window of `clips` clips. The three chains share
    their thoughts unless `unique_thoughts` (then each chain's thoughts are worded apart)."""
    window_id = f"{video['video_id']}-w{w:06d}"
    clip_ids = [f"{window_id}-c{k}" for k in range(clips)]
    objects = [(f"{rng.choice(COLOURS)} {rng.choice(SHAPES)}", rng.choice(MOVES), k) for k in range(clips)]
    entities, relations, thoughts, captions = {}, [], [], []
    for k, (name, move, _) in enumerate(objects):
        eid = "e-" + name.replace(" ", "-")
        ent = entities.setdefault(name, {"entity_id": eid, "name": name, "type": "object", "attributes": [name.split()[0]], "clip_ids": [], "first_clip_id": clip_ids[k], "first_seen_s": k * clip_s})
        ent["clip_ids"].append(clip_ids[k])
        relations.append({"subject": eid, "predicate": f"moves {move}", "object": None, "clip_id": clip_ids[k], "time_s": k * clip_s})
        text = f"A {name} {rng.choice(VERBS)} {move} while clip {k + 1} plays; it is {rng.choice(['small', 'large', 'bright', 'dim'])}."
        thoughts.append({"clip_id": clip_ids[k], "start_s": k * clip_s, "end_s": (k + 1) * clip_s, "text": text, "entities": [name]})
        captions.append({"clip_id": clip_ids[k], "video_id": video["video_id"], "window_id": window_id, "caption": text, "entities": [name], "status": "ok"})
    graph = {"window_id": window_id, "video_id": video["video_id"], "clip_ids": clip_ids, "entities": list(entities.values()), "relations": relations, "status": "ok"}
    end = clips * clip_s
    def nonce() -> str:
        return " ".join(rng.sample(VOCAB, 5))

    questions = [
        {"type": "multiple_choice", "question": f"Which shape appears first ({nonce()})?", "options": ["circle", "square", "triangle", "star"], "answer": "B", "evidence_clip_ids": [clip_ids[0], clip_ids[-1]]},
        {"type": "numerical", "question": f"How many objects move {rng.choice(MOVES)} ({nonce()})?", "options": [], "answer": str(rng.randint(0, 6)), "evidence_clip_ids": clip_ids[:3]},
        {"type": "yes_no", "question": f"Does a {objects[-1][0]} appear after the first clip ({nonce()})?", "options": [], "answer": "Yes", "evidence_clip_ids": [clip_ids[1], clip_ids[-1]]},
    ]
    chains = []
    for q, qa in enumerate(questions):
        truth = qa["answer"]
        if unique_thoughts and q:
            thoughts = [dict(t, text=t["text"].replace("while", rng.choice(["as", "when", "just as", "during the moment"]), 1) + f" Note {q}{rng.randint(0, 999)}.") for t in thoughts]
        chains.append(
            {
                "chain_id": f"ch{w:07d}{q}",
                "window_id": window_id,
                "video_id": video["video_id"],
                "video_path": video["path"],
                "video_duration_s": max(video["duration_s"], end),
                "start_s": 0.0,
                "end_s": end,
                "thoughts": thoughts,
                "qa": qa,
                "final_answer": "\\boxed{" + truth + "}",
                "teacher": "bench-teacher",
                "prompt_versions": {"think": "think/1", "qa": "qa/1"},
                "cache_keys": [],
                "status": "ok",
            }
        )
    return graph, captions, chains


def make_corpus(n_chains: int, videos: list[dict], seed: int = 0, unique_thoughts: bool = False):
    rng = random.Random(seed)
    graphs, captions, chains = [], [], []
    for w in range((n_chains + 2) // 3):
        g, c, ch = synthetic_window(w, rng, videos[w % len(videos)], unique_thoughts=unique_thoughts)
        graphs.append(g)
        captions.extend(c)
        chains.extend(ch)
    return graphs, captions, chains[:n_chains]


def bench_checks(graphs, captions, chains, sample: int) -> dict:
    """The check stage's own batch function (5 rule checks), in this process: one core."""
    from curation.checks import find_duplicates
    from pipelines.stage import StageContext
    from pipelines.stages.check import CheckParams, check_batch

    params = CheckParams(checks=["structure", "thoughts", "causality", "grounding", "qa"])
    by_window = {g["window_id"]: g for g in graphs}
    caps = {c["clip_id"]: c for c in captions}
    records = [
        {"chain_id": c["chain_id"], "chain": c, "graph": by_window[c["window_id"]], "captions": {t["clip_id"]: caps[t["clip_id"]] for t in c["thoughts"]}, "duplicate_of": None}
        for c in chains[:sample]
    ]
    ctx = StageContext(run="bench", run_root=ROOT, project_root=ROOT)
    t0, c0 = time.perf_counter(), time.process_time()
    failed = 0
    for start in range(0, len(records), 5000):  # the runner's part size in bench_stages
        failed += sum(not v["passed"] for v in check_batch(records[start : start + 5000], params, ctx))
    rule_s, rule_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    dups = find_duplicates(chains)
    dedup_s = time.perf_counter() - t0
    return {
        "check_chains": len(records),
        "check_seconds": round(rule_s, 2),
        "checks_chains_per_s": round(len(records) / rule_s),
        "checks_chains_per_cpu_s": round(len(records) / rule_cpu),
        "check_failed_verdicts": failed,
        "dedup_chains": len(chains),
        "dedup_seconds": round(dedup_s, 2),
        "dedup_chains_per_s": round(len(chains) / dedup_s),
        "dedup_duplicates": len(dups),
    }


def bench_stages(graphs, captions, chains, videos) -> dict:
    from curation.schemas import CAPTIONS, CHAINS, GRAPHS, VIDEOS, to_table
    from pipelines.rundir import RunDir, atomic_write_json
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages import REGISTRY

    out = {}
    with tempfile.TemporaryDirectory(prefix="vstw-bench-") as tmp:
        run = RunDir(Path(tmp) / "bench")
        for table, schema, rows in (("videos", VIDEOS, videos), ("graphs", GRAPHS, graphs), ("captions", CAPTIONS, captions), ("chains", CHAINS, chains)):
            run.write_part(table, "part-00000-bench", to_table(rows, schema))
            atomic_write_json(run.success_path(table), {"rows": len(rows)})
        ctx = StageContext(run="bench", run_root=run.root, project_root=ROOT)
        runner = LocalRunner(workers=1, part_size=5000, progress=False)
        for name in ("check", "export"):
            stage = REGISTRY[name]
            # The synthetic chains have no verify stage: their answers are not re-derived here.
            params = stage.params_model(**({"allow_unchecked": ["answer"]} if name == "export" else {}))
            t0, c0 = time.perf_counter(), time.process_time()
            inputs = stage.load_inputs(run, params)
            summary = runner.run_stage(stage, params, run, ctx, inputs)
            out[f"{name}_stage_seconds"] = round(time.perf_counter() - t0, 2)
            out[f"{name}_stage_cpu_seconds"] = round(time.process_time() - c0, 2)
            out[f"{name}_stage_rows"] = summary["rows"]
        from pipelines.stages.export import ExportParams, write_exports

        t0, c0 = time.perf_counter(), time.process_time()
        manifest = write_exports(run, ExportParams(allow_unchecked=["answer"]))
        out["export_files_seconds"] = round(time.perf_counter() - t0, 2)
        out["export_files_cpu_seconds"] = round(time.process_time() - c0, 2)
        out["exported_records"] = manifest["records"]
        out["export_bytes"] = sum(p.stat().st_size for p in run.exports_dir.rglob("*") if p.is_file() and not p.is_symlink())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=100_000)
    parser.add_argument("--check-sample", type=int, default=20_000, help="chains timed for the rule checks")
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument("--unique-thoughts", action="store_true", help="every chain has its own thought texts (no sharing within a window)")
    args = parser.parse_args()

    import os

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sample_run = [v for v in (ROOT / "data" / "samples").rglob("*.mp4")]
    videos = [{"video_id": f"v{i:04d}", "path": str(p), "duration_s": 60.0, "status": "ok", "run": "bench"} for i, p in enumerate(sorted(sample_run))]
    t0 = time.perf_counter()
    graphs, captions, chains = make_corpus(args.chains, videos, unique_thoughts=args.unique_thoughts)
    result = {"chains": len(chains), "generate_seconds": round(time.perf_counter() - t0, 2), "cpu_count": os.cpu_count()}
    result |= bench_checks(graphs, captions, chains, min(args.check_sample, len(chains)))
    print(f"checks: {result['checks_chains_per_s']} chains/s wall, {result['checks_chains_per_cpu_s']} per CPU-second, on one core ({result['check_chains']} chains, 5 rule checks); "
          f"dedup: {result['dedup_chains']} chains in {result['dedup_seconds']} s", flush=True)
    if not args.skip_stages:
        result |= bench_stages(graphs, captions, chains, videos)
        print(f"stages ({result['chains']} chains, wall / CPU seconds): check {result['check_stage_seconds']} / {result['check_stage_cpu_seconds']}, "
              f"export {result['export_stage_seconds']} / {result['export_stage_cpu_seconds']} "
              f"(its file writing alone, re-timed: {result['export_files_seconds']} / {result['export_files_cpu_seconds']})", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
