"""Fixtures of the model tests: the tiny model, a demo run with chains, and SFT exports of it.

The chains come from tests/_chain_fixtures.py (a REAL demo run: decoded videos, detected clips,
thoughts grounded in the synthetic ground truth); the SFT files are written with the export's own
record writer (curation.formats.sft), videos given relative to the samples folder so the trainer's
root join is exercised.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chain_fixtures import build_corpus, make_demo_run, write_tables  # noqa: E402


def tiny_model(folder: Path) -> Path:
    from curation.model.tiny import init_tiny

    if not (folder / "config.json").exists():
        init_tiny(folder)
    return folder


def demo_run_with_chains(runs_root: Path, name: str = "model-fixture"):
    """A real demo run (videos, clips) with chains/captions/graphs tables; returns (run_dir, corpus)."""
    run_dir = make_demo_run(runs_root, name)
    corpus = build_corpus(run_dir)
    write_tables(run_dir, corpus)
    return run_dir, corpus


def relative_video(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(SAMPLES))
    except ValueError:
        return path


def write_sft_export(chains: list[dict], out_dir: Path, name: str = "demo_with_seeks.jsonl", keep=lambda chain: True) -> Path:
    """An SFT export folder: one JSONL (+ its seek file) of the chains `keep` accepts."""
    from curation.formats.sft import dumps_record, sft_record, write_sft

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [dumps_record(sft_record(c, relative_video(c["video_path"]))) for c in chains if keep(c)]
    write_sft(lines, out_dir / name)
    return out_dir
