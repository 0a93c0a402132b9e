"""The quality gate, measured end to end against a teacher whose mistakes are known.

Makes a corpus of synthetic worlds (some longer than one 192 s window), starts the simulated
teacher (`pipelines.teacher_sim`, on 127.0.0.1) with a stated mistake rate, runs the REAL stages
(ingest -> segment -> perceive -> graph -> qa -> think -> verify -> check -> judge -> export) with
the local runner, and prints per mistake kind caught/injected, the false-reject rate on clean
chains (and which checks rejected them), and the share of exported chains that are fully right.

    .venv/bin/python benchmarks/gate.py                       # 100 worlds (8 over 192 s), rate 0.2, seed 0 (~14 min, judge included)
    .venv/bin/python benchmarks/gate.py --wordings heldout --no-judge --json   # mistakes worded as no check was written for

`--json` ends the output with one line holding one JSON object:
{"by_kind": {KIND: {"injected": N, "caught": M}}, "false_reject_rate": X, "exported_correct_rate": Y, "clean_chains": N, ...}
Targets (issue 12): >= 95% caught for every kind, <= 2% false rejects, >= 99% of exported chains right.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_corpus(folder: Path, worlds: int, long_worlds: int, seed: int) -> Path:
    """`worlds` synthetic videos (4-6 scenes of 5-12 s), of which `long_worlds` last over 192 s
    (several windows); small frames so that decoding is not what the benchmark measures."""
    from curation.synthetic import write_synthetic_set

    small = dict(width=160, height=120, fps=12)
    paths = write_synthetic_set(folder / "short", count=worlds - long_worlds, seed=1000 + seed, n_scenes=5, scene_s=(5.0, 12.0), **small)
    if long_worlds:
        paths += write_synthetic_set(folder / "long", count=long_worlds, seed=2000 + seed, n_scenes=24, scene_s=(7.0, 11.0), **small)
    manifest = folder / "manifest.jsonl"
    rows = [{"path": str(p), "id": p.stem, "annotations_file": str(p.with_suffix(".json")), "metadata": {"source": "synthetic-gate"}} for p in paths]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def gate_recipe(manifest: Path, base_url: str, judge: bool, workers: int) -> dict:
    stages = [
        {"stage": "ingest"},
        {"stage": "segment", "detector": "content", "threshold": 27, "min_clip_s": 2.0, "max_clip_s": 10.0, "window_max_s": 192},
        {"stage": "perceive", "source": "annotation"},
        {"stage": "graph", "source": "teacher"},
        {"stage": "qa", "mode": "mixed"},
        {"stage": "think", "mode": "teacher"},
        {"stage": "verify", "samples": 3},
        {"stage": "check"},
    ]
    if judge:
        stages.append({"stage": "judge", "model": "tiny", "samples": 2, "max_thought_tokens": 8, "max_answer_tokens": 6, "frame_width": 112, "min_pixels": 3136})
    stages.append({"stage": "export", "formats": ["sft", "rl"]})
    return {
        "name": "gate",
        "description": "issue 12: the gate measured against the simulated teacher",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": [str(manifest.parent)],
        "runner": {"kind": "local", "workers": workers, "part_size": 16},
        "teacher": {
            "text": {"base_url": base_url, "model": "simulated-teacher", "structured_output": "json_schema"},
            "concurrency": 8,
            "timeout_s": 60,
            "max_retries": 2,
        },
        "stages": stages,
    }


def export_unfiltered(runs_root: Path, run_name: str, project_root: Path) -> Path:
    """The same run exported with no exclusion at all (every chain the stages produced), into
    `<run>-unfiltered/exports`: the baseline `benchmarks/gate_train.py` trains against."""
    from pipelines.rundir import RunDir
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages import REGISTRY

    target = runs_root / f"{run_name}-unfiltered"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(runs_root / run_name, target, ignore=shutil.ignore_patterns("export_decisions", "exports", "teacher-cache"))
    run_dir = RunDir(target)
    stage = REGISTRY["export"]
    params = stage.params_model(formats=["sft", "rl"], exclude_on=[], allow_unchecked=["structure", "thoughts", "causality", "grounding", "qa", "dedup", "answer"],
                                judge_excludes=False, exclude_review_labels=[])  # fmt: skip
    ctx = StageContext(run=target.name, run_root=run_dir.root, project_root=project_root)
    LocalRunner(workers=1, part_size=5000, progress=False).run_stage(stage, params, run_dir, ctx, stage.load_inputs(run_dir, params))
    return run_dir.exports_dir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=100)
    ap.add_argument("--long", type=int, default=8, help="of which this many last over 192 s")
    ap.add_argument("--rate", type=float, default=0.2, help="share of teacher items that get a mistake")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-judge", action="store_true", help="skip the VST-model judge stage (faster)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "gate")
    ap.add_argument("--keep", action="store_true", help="keep an earlier run folder (default: start afresh)")
    ap.add_argument("--wordings", choices=("seen", "heldout"), default="seen",
                    help="heldout: the simulator words its mistakes in ways no check was written against")
    ap.add_argument("--unfiltered", action="store_true", help="also export the same run with no exclusion (for benchmarks/gate_train.py)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line")
    args = ap.parse_args()

    os.environ.setdefault("VSTW_PROGRESS", "0")
    from pipelines.gate_report import format_report, gate_report, read_injections
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe
    from pipelines.teacher_sim import SimulatedTeacherServer

    t0 = time.perf_counter()
    corpus = make_corpus(args.out / f"worlds-{args.seed}", args.worlds, args.long, args.seed)
    t_corpus = time.perf_counter() - t0
    runs_root = args.out / "runs"
    run_name = f"gate-r{args.rate:g}-s{args.seed}" + ("-heldout" if args.wordings == "heldout" else "")
    log = runs_root / run_name / "reports" / "injections.jsonl"
    if not args.keep:  # a kept run resumes: its finished stages ask nothing, so its log must stay
        shutil.rmtree(runs_root / run_name, ignore_errors=True)
    log.parent.mkdir(parents=True, exist_ok=True)

    with SimulatedTeacherServer(rate=args.rate, seed=args.seed, log_path=log, wordings=args.wordings) as teacher:
        recipe = parse_recipe(gate_recipe(corpus, teacher.base_url, not args.no_judge, args.workers), "gate recipe")
        t1 = time.perf_counter()
        summary = run_recipe(recipe, run_name, ROOT, runs_root=runs_root, progress=False, echo=lambda *a, **k: None)
        t_run = time.perf_counter() - t1
    report = gate_report(RunDir(runs_root / run_name), read_injections(log))
    print(f"corpus: {args.worlds} synthetic worlds ({args.long} over 192 s) in {corpus.parent} ({t_corpus:.0f} s to make)")
    print(f"run: {runs_root / run_name}, mistake rate {args.rate}, seed {args.seed}, {args.wordings} wordings, {t_run:.0f} s")
    for stage, s in summary.items():
        print(f"  {stage:<9} {s}")
    print()
    print(format_report(report))
    if args.unfiltered:
        print(f"unfiltered export of the same run: {export_unfiltered(runs_root, run_name, ROOT)}")
    print(f"gated export: {runs_root / run_name / 'exports'}")
    if args.json:
        print(json.dumps(report.as_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
