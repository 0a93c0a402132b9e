"""A gold set from the synthetic videos' ground truth (curation/synthetic.py), as SFT records.

Each synthetic video becomes one record: the whole video is the window, each ground-truth scene a
clip whose thought states what it shows (background, shapes appearing and leaving), and three
questions whose answers the ground truth fixes: how many shapes appear (numerical), which shape
appears first (multiple choice) and whether a given coloured shape appears (yes/no). Used by
`vstw train compare` to measure held-out loss and answer accuracy.

Held out by seed: `ensure_heldout` writes synthetic worlds with a seed of their own into
data/heldout/<seed>/, so that no training export can have seen them (the sample and gate corpora
use other seeds); `world_seed` names the world a synthetic file name stands for, so that the
trainer can tell two files of the same world apart from two worlds.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from curation.model.sft_render import read_records
from curation.model.vst_protocol import MEMORY_START

SHAPES = ["circle", "square", "triangle"]
HELDOUT_SEED = 9001  # far from the samples' 7 and the gate corpus's seeds: its worlds are new
_SYNTHETIC_NAME = re.compile(r"^synthetic-(\d+)-(\d+)$")


def scene_thought(scene: dict) -> str:
    parts = [f"A plain {scene['background']} background."]
    for obj in sorted(scene["objects"], key=lambda o: o["appear_s"]):
        parts.append(f"A {obj['colour']} {obj['shape']} appears and moves {obj['direction']}.")
    return " ".join(parts)


def gold_questions(truth: dict, seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer) pairs fixed by the ground truth."""
    objects = sorted((o for s in truth["scenes"] for o in s["objects"]), key=lambda o: (o["appear_s"], o["object_id"]))
    first = objects[0]
    rng = random.Random(f"{seed}:{truth['name']}")
    seen = {(o["colour"], o["shape"]) for o in objects}
    if rng.random() < 0.5:
        colour, shape = rng.choice(sorted(seen))
    else:
        unseen = [(c, s) for c in ("red", "green", "blue", "yellow", "white", "magenta") for s in SHAPES if (c, s) not in seen]
        colour, shape = rng.choice(unseen) if unseen else rng.choice(sorted(seen))
    options = "\n".join(f"{chr(ord('A') + i)}. {s}" for i, s in enumerate(SHAPES))
    return [
        ("How many shapes appear in total?", "\\boxed{" + str(len(objects)) + "}"),
        (f"Which shape appears first?\n{options}", "\\boxed{" + "ABC"[SHAPES.index(first["shape"])] + "}"),
        (f"Does a {colour} {shape} appear?", "\\boxed{" + ("Yes" if (colour, shape) in seen else "No") + "}"),
    ]


def gold_record(truth: dict, video: str, seed: int = 0) -> list[dict]:
    end = float(truth["duration_s"])
    stream = [[float(s["start_s"]), float(s["end_s"]), scene_thought(s)] for s in truth["scenes"]]
    qa = [[end, end, q, a] for q, a in gold_questions(truth, seed)]
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": video, "video_start": 0.0, "video_end": end},
                {"type": "text", "text": "", "previous": MEMORY_START},
            ],
        },
        {"role": "assistant", "content": [{"type": "text_stream", "text_stream": stream, "qa_stream": qa}]},
    ]


def gold_from_synthetic(folder: Path, seed: int = 0, limit: int | None = None) -> list[list[dict]]:
    """One gold record per `<name>.json` ground truth with its `<name>.mp4` beside it (the first
    `limit` by name, when given)."""
    records = []
    for truth_path in sorted(Path(folder).glob("*.json"))[:limit]:
        truth = json.loads(truth_path.read_text())
        video = truth_path.with_suffix(".mp4")
        if video.is_file() and truth.get("scenes"):
            records.append(gold_record(truth, str(video.resolve()), seed))
    if not records:
        raise FileNotFoundError(f"no synthetic ground truth (<name>.json + <name>.mp4) in {folder}")
    return records


def write_gold(folder: Path, out: Path, seed: int = 0) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in gold_from_synthetic(folder, seed)), encoding="utf-8")
    return out


def load_gold(path: Path, limit: int | None = None) -> list[tuple[Path, list]]:
    """(file, record) pairs: a folder of synthetic ground truth is turned into records on the fly;
    a .jsonl file (or a folder of them) is read as SFT records."""
    path = Path(path)
    if path.is_dir() and any(path.glob("*.json")):
        return [(path / "gold.jsonl", r) for r in gold_from_synthetic(path, limit=limit)]
    return read_records(path)[:limit]


def heldout_folder(root: Path, seed: int) -> Path:
    return Path(root) / "data" / "heldout" / str(seed)


def ensure_heldout(folder: Path, count: int, seed: int = HELDOUT_SEED) -> Path:
    """Write the `count` synthetic worlds of `seed` into `folder` (those already there are kept);
    returns the folder. Its first `count` worlds by name are exactly these."""
    from curation.synthetic import write_synthetic_set

    if count < 1:
        raise ValueError(f"held-out worlds: need at least 1, got {count}")
    write_synthetic_set(Path(folder), count=count, seed=seed)
    return Path(folder)


def world_seed(name: str) -> int | None:
    """The script seed of a synthetic world file name (`synthetic-S-NNN` -> S*1000+NNN, as
    curation.synthetic.write_synthetic_set draws it), else None: two names with the same script
    seed are the same world, whatever the set they were written in."""
    m = _SYNTHETIC_NAME.match(Path(name).stem)
    return int(m.group(1)) * 1000 + int(m.group(2)) if m else None
