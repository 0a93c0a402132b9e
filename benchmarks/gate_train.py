"""Does the gate's filtering teach better? Train on the gated export and on the unfiltered export of
the same run, evaluate both on synthetic worlds neither saw, over several training seeds.

    .venv/bin/python benchmarks/gate_train.py EXPORT_GATED EXPORT_UNFILTERED \
        [--seeds 0,1,2] [--steps 30] [--eval-worlds 12] [--eval-seed 9001] [--model tiny] [--json]

EXPORT_*: an SFT export (a .jsonl, a folder of them, or a run's `exports/` folder: its `sft/`
is used). The gated one is the run's own export; the unfiltered one is the same run exported with
no exclusions. Any two exports work (e.g. two recipes, or a sample export against a subset).
Held-out worlds are written into data/heldout/<eval-seed>/ when missing; the comparison refuses
evaluation videos that are in either export (by sha256 and synthetic world). Prints the per-seed
table and the mean ± std [min, max] over seeds; `--json` ends with one line holding one JSON
object (curation.model.trainer.compact_report). The full report goes to OUT/report.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sft_path(path: Path) -> Path:
    """A run's exports folder -> its sft/ folder; anything else as given."""
    return path / "sft" if (path / "sft").is_dir() and (path / "manifest.json").is_file() else path


def dataset_roots(path: Path) -> list[Path]:
    """The export root (the folder with manifest.json + videos/) that relative video paths join on."""
    for folder in [path if path.is_dir() else path.parent, *path.resolve().parents]:
        if (folder / "manifest.json").is_file() and (folder / "videos").is_dir():
            return [folder]
    return []


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gated", type=Path, help="the gate's SFT export")
    parser.add_argument("unfiltered", type=Path, help="the same run's SFT export with no exclusions")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma separated")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-worlds", type=int, default=12, help="held-out synthetic worlds")
    parser.add_argument("--eval-seed", type=int, default=None, help="their seed (default curation.model.gold.HELDOUT_SEED)")
    parser.add_argument("--eval", type=Path, default=None, help="an evaluation set instead (a folder of synthetic ground truth or a .jsonl)")
    parser.add_argument("--model", default="tiny", help="'tiny' (data/models/tiny, built if missing) or a model folder")
    parser.add_argument("--frame-width", type=int, default=128, help="decode frames at most this wide (0: native)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--video-root", type=Path, action="append", default=[], help="extra folder relative video paths join on")
    parser.add_argument("--allow-overlap", action="store_true", help="measure even when evaluation videos were trained on")
    parser.add_argument("--out", type=Path, default=None, help="default data/train/gate-train-TIME")
    parser.add_argument("--json", action="store_true", help="end with one line holding one JSON object")
    return parser.parse_args(argv)


def model_folder(name: str) -> Path:
    if name != "tiny":
        return Path(name)
    from curation.model.tiny import init_tiny

    path = ROOT / "data" / "models" / "tiny"
    if not (path / "config.json").exists():
        init_tiny(path)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    from curation.model.gold import HELDOUT_SEED, ensure_heldout, heldout_folder
    from curation.model.trainer import EvalOverlap, TrainConfig, compact_report, compare

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    gated, unfiltered = sft_path(args.gated), sft_path(args.unfiltered)
    for name, path in (("EXPORT_GATED", gated), ("EXPORT_UNFILTERED", unfiltered)):
        if not path.exists():
            print(f"error: {name} {path}: not found", file=sys.stderr)
            return 2
    if args.eval is not None:
        eval_set, limit = args.eval, None
    else:
        seed = HELDOUT_SEED if args.eval_seed is None else args.eval_seed
        eval_set, limit = ensure_heldout(heldout_folder(ROOT, seed), args.eval_worlds, seed), args.eval_worlds
    out = args.out or ROOT / "data" / "train" / f"gate-train-{datetime.now():%Y%m%d-%H%M%S}"
    config = TrainConfig(steps=args.steps, lr=args.lr, seed=seeds[0], frame_width=args.frame_width, threads=args.threads)
    roots = [*args.video_root, *dataset_roots(gated), *dataset_roots(unfiltered), ROOT]
    started = time.monotonic()
    try:
        report = compare(
            gated, unfiltered, eval_set, model_folder(args.model), out, config, roots, log=lambda *_: None,
            seeds=seeds, names=("gated", "unfiltered"), allow_overlap=args.allow_overlap, eval_limit=limit,
            warn=lambda message: print(message, file=sys.stderr),
        )  # fmt: skip
    except EvalOverlap as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.monotonic() - started
    print((out / "report.md").read_text())
    print(f"{len(seeds)} seeds x 2 arms x {args.steps} steps in {seconds:.0f} s; report: {out / 'report.md'}")
    if args.json:
        print(json.dumps({**compact_report(report), "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
