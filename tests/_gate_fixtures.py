"""Real stage output from the simulated teacher: synthetic worlds and the recipe that takes them
through every stage (qa -> think -> verify -> check -> export), shared by the gate and gallery tests."""

from __future__ import annotations

import json
from pathlib import Path


def worlds_manifest(folder: Path, count: int, seed: int) -> Path:
    """`count` synthetic worlds (videos with ground-truth annotations) and their manifest."""
    from curation.synthetic import write_synthetic_set

    videos = write_synthetic_set(folder, count=count, seed=seed, n_scenes=4, scene_s=(6.0, 10.0), width=160, height=120, fps=12)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"path": str(p), "id": p.stem, "annotations_file": str(p.with_suffix(".json"))}) + "\n" for p in videos))
    return manifest


def simulated_teacher_recipe(manifest: Path, base_url: str) -> dict:
    return {
        "name": "gate-test",
        "inputs": [{"manifest": str(manifest)}],
        "allowed_roots": [str(manifest.parent)],
        "runner": {"kind": "local", "workers": 1, "part_size": 8},
        "teacher": {"text": {"base_url": base_url, "model": "simulated-teacher"}, "concurrency": 4, "timeout_s": 30, "max_retries": 1},
        "stages": [
            {"stage": "ingest"},
            {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
            {"stage": "perceive", "source": "annotation"},
            {"stage": "graph", "source": "teacher"},
            {"stage": "qa", "mode": "mixed"},
            {"stage": "think", "mode": "teacher"},
            {"stage": "verify", "samples": 3},
            {"stage": "check"},
            {"stage": "export", "formats": ["sft", "rl"]},
        ],
    }
