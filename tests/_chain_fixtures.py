"""Realistic chains built from a REAL demo run (videos + clips), while the teacher stages are built.

`make_demo_run` runs the demo recipe up to `segment`; `build_corpus` turns its windows into
`captions`, `graphs` and `chains` rows the way the teacher stages will: one thought per clip
(causal, grounded in the synthetic ground truth or a fixed description of the real videos), and
three questions per window (multiple choice, numerical, yes/no) with multi-clip evidence.
`write_tables` stores them as tables of the run, so the check and export stages run for real.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from curation.schemas import CAPTIONS, CHAINS, GRAPHS, to_table
from pipelines.rundir import RunDir, atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
TEACHER = "fixture-teacher"
PROMPTS = {"think": "think/1", "qa": "qa/1", "graph": "graph/1"}

# What the real sample videos show (their clips carry no annotations).
REAL = {
    "bigbuckbunny": ("rabbit", ["A big rabbit walks out of its burrow onto the grass.", "The rabbit stretches and looks at a butterfly.", "The rabbit sits down under a tree."]),
    "bikes": ("bike", ["A bike rides along the road past a building.", "Another bike follows close behind on the road.", "The two bikes turn at the corner of the street.", "A bike stops near a tree by the road."]),
    "carphone_pristine": ("man", ["A man talks on the phone in a car.", "The man turns his head towards the window.", "The man keeps talking while the car moves."]),
}
_OBJECT = re.compile(r"A (\w+) (\w+) appears and moves (\w+)")


def make_demo_run(runs_root: Path, name: str = "fixture") -> RunDir:
    """The demo recipe's videos + clips (real decoding and scene detection), into runs_root/name."""
    from pipelines.recipe import load_recipe
    from pipelines.run import run_recipe
    from pipelines.samples import make_samples

    make_samples(ROOT)
    recipe = load_recipe(ROOT / "tests" / "recipes" / "fixture-demo.yaml")
    run_recipe(recipe, name, ROOT, runs_root, progress=False, echo=lambda *_: None, until="segment")
    return RunDir(runs_root / name)


def _id(*parts: str) -> str:
    return "ch" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _objects(video: dict) -> list[dict]:
    out = []
    for ann in video.get("annotations") or []:
        m = _OBJECT.match(ann["text"]) if ann["kind"] == "object" else None
        if m:
            out.append({"name": f"{m.group(1)} {m.group(2)}", "direction": m.group(3), "start_s": ann["start_s"], "end_s": ann["end_s"]})
    return out


def _window_story(video: dict, clips: list[dict]) -> tuple[list[dict], list[dict]]:
    """(per-clip {text, entities, visible}, entities) for one window."""
    objects = _objects(video)
    story = []
    if objects:
        scenes = [a for a in video["annotations"] if a["kind"] == "scene"]
        for k, clip in enumerate(clips):
            new = [o for o in objects if clip["start_s"] <= o["start_s"] < clip["end_s"]]
            visible = [o for o in objects if o["start_s"] < clip["end_s"] and o["end_s"] > clip["start_s"]]
            scene = next((s for s in scenes if clip["start_s"] <= s["start_s"] < clip["end_s"]), None)
            if new:
                text = "; ".join(f"a {o['name']} appears and moves {o['direction']}" for o in new)
                text = text[0].upper() + text[1:] + "."
                named = [o["name"] for o in new]
            elif visible:
                text = f"The {visible[0]['name']} keeps moving {visible[0]['direction']} across clip {k + 1}."
                named = [visible[0]["name"]]
            else:
                text = f"Nothing new: the background stays plain in clip {k + 1}."
                named = []
            if scene is not None and scene["start_s"] > 0:
                text = scene["text"].split(": ", 1)[-1].capitalize().rstrip(".") + " now. " + text
            story.append({"text": text, "entities": named, "visible": [o["name"] for o in visible]})
        return story, objects
    subject, lines = REAL[Path(video["path"]).stem]
    for k, clip in enumerate(clips):
        story.append({"text": lines[k % len(lines)], "entities": [subject], "visible": [subject]})
    return story, [{"name": subject, "start_s": clips[0]["start_s"], "end_s": clips[-1]["end_s"], "direction": ""}]


def _questions(video: dict, clips: list[dict], objects: list[dict]) -> list[dict]:
    evidence = list(dict.fromkeys([clips[0]["clip_id"], clips[-1]["clip_id"]]))
    stem = Path(video["path"]).stem
    if _objects(video):
        first = min(objects, key=lambda o: o["start_s"])
        shapes = ["circle", "square", "triangle"]
        late = [o for o in objects if o["start_s"] > clips[len(clips) // 2]["start_s"]]
        asked = late[0]["name"] if late else "purple hexagon"
        # A teacher phrases each video's questions its own way (and the dedup check expects it).
        k = int(stem.rsplit("-", 1)[-1]) % 4
        mc = ["Which shape appears first?", "What kind of shape is the very first object to show up?", "The earliest object on screen has which form?", "Before anything else enters, which shape do we see?"][k]
        num = ["How many shapes appear in total?", "Count every object that enters the picture: how many are there?", "What is the number of distinct objects shown over the whole video?", "Across all scenes, how many moving figures can be seen?"][k]
        yn = [f"Does a {asked} appear in the second half?", f"Is a {asked} visible after the middle of the video?", f"Late in the clip, do we spot a {asked}?", f"After halfway, can a {asked} be seen?"][k]
        return [
            {"type": "multiple_choice", "question": mc, "options": shapes, "answer": "ABC"[shapes.index(first["name"].split()[1])], "evidence_clip_ids": evidence},
            {"type": "numerical", "question": num, "options": [], "answer": str(len(objects)), "evidence_clip_ids": evidence},
            {"type": "yes_no", "question": yn, "options": [], "answer": "Yes" if late else "No", "evidence_clip_ids": evidence},
        ]
    subject = REAL[stem][0]
    return [
        {"type": "multiple_choice", "question": f"What is the main subject of video {video['video_id'][:7]}?", "options": [f"a {subject}", "a cooking show", "a football match"], "answer": "A", "evidence_clip_ids": evidence},
        {"type": "numerical", "question": f"How many clips of {stem} show the {subject}?", "options": [], "answer": str(len(clips)), "evidence_clip_ids": evidence},
        {"type": "yes_no", "question": f"Is there a {subject} in {stem}, gar\u00e7on?", "options": [], "answer": "Yes", "evidence_clip_ids": evidence},
    ]


def build_corpus(run_dir: RunDir) -> dict[str, list[dict]]:
    """{"captions": [...], "graphs": [...], "chains": [...]} rows for every window of the run."""
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos") if v["status"] == "ok"}
    windows: dict[str, list[dict]] = {}
    for clip in sorted(run_dir.read_rows("clips"), key=lambda c: (c["window_id"], c["index_in_window"])):
        if clip["status"] == "ok":
            windows.setdefault(clip["window_id"], []).append(clip)
    captions, graphs, chains = [], [], []
    for window_id, clips in sorted(windows.items()):
        video = videos[clips[0]["video_id"]]
        story, objects = _window_story(video, clips)
        vs, ve = clips[0]["window_start_s"], clips[-1]["window_end_s"]
        by_name: dict[str, dict] = {}  # one entity per name, as the graph stage merges duplicates
        relations = []
        for o in sorted(objects, key=lambda o: o["start_s"]):
            seen = [c["clip_id"] for c in clips if o["start_s"] < c["end_s"] and o["end_s"] > c["start_s"]] or [clips[0]["clip_id"]]
            eid = "e-" + o["name"].replace(" ", "-")
            ent = by_name.setdefault(o["name"], {"entity_id": eid, "name": o["name"], "type": "object", "attributes": [o["name"].split()[0]], "clip_ids": [], "first_clip_id": seen[0], "first_seen_s": o["start_s"]})
            ent["clip_ids"] = list(dict.fromkeys(ent["clip_ids"] + seen))
            if o["direction"]:
                relations.append({"subject": eid, "predicate": f"moves {o['direction']}", "object": None, "clip_id": seen[0], "time_s": o["start_s"]})
        graphs.append({"window_id": window_id, "video_id": video["video_id"], "start_s": vs, "end_s": ve, "clip_ids": [c["clip_id"] for c in clips], "entities": list(by_name.values()), "relations": relations, "teacher": TEACHER, "prompt_version": PROMPTS["graph"], "status": "ok"})
        for clip, part in zip(clips, story):
            captions.append({"clip_id": clip["clip_id"], "video_id": video["video_id"], "window_id": window_id, "start_s": clip["start_s"], "end_s": clip["end_s"], "caption": part["text"] + " Visible: " + ", ".join(part["visible"]) + ".", "entities": part["visible"], "source": "annotation", "prompt_version": "annotation/1", "status": "ok"})
        thoughts = [{"clip_id": c["clip_id"], "start_s": c["start_s"], "end_s": c["end_s"], "text": p["text"], "entities": p["entities"]} for c, p in zip(clips, story)]
        for qa in _questions(video, clips, objects):
            from curation.formats.question import boxed, ground_truth

            chains.append(
                {
                    "chain_id": _id(window_id, qa["question"]),
                    "window_id": window_id,
                    "video_id": video["video_id"],
                    "video_path": video["path"],
                    "video_duration_s": video["duration_s"],
                    "start_s": vs,
                    "end_s": ve,
                    "thoughts": thoughts,
                    "qa": qa,
                    "final_answer": boxed(ground_truth(qa)),
                    "teacher": TEACHER,
                    "prompt_versions": PROMPTS,
                    "cache_keys": [],
                    "status": "ok",
                }
            )
    return {"captions": captions, "graphs": graphs, "chains": chains}


def write_table(run_dir: RunDir, table: str, rows: list[dict], run: str | None = None) -> None:
    schema = {"captions": CAPTIONS, "graphs": GRAPHS, "chains": CHAINS}[table]
    for row in rows:
        row.setdefault("run", run or run_dir.name)
    for old in run_dir.existing_parts(table):
        run_dir.part_path(table, old).unlink()
    run_dir.write_part(table, "part-00000-fixture", to_table(rows, schema))
    atomic_write_json(run_dir.success_path(table), {"rows": len(rows)})


def write_tables(run_dir: RunDir, corpus: dict[str, list[dict]]) -> None:
    for table, rows in corpus.items():
        write_table(run_dir, table, rows)


def demo_run_copy(tmp_path_factory, name: str) -> RunDir:
    """A fresh copy of the session's demo run (videos + clips), made once per test session."""
    import shutil

    base = tmp_path_factory.getbasetemp() / "chain-fixture-base"
    if not (base / "fixture" / "clips" / "_SUCCESS.json").exists():
        make_demo_run(base)
    target = tmp_path_factory.mktemp(name) / name
    shutil.copytree(base / "fixture", target)
    return RunDir(target)


def run_stage(run_dir: RunDir, name: str, **params) -> dict:
    """Run one registered stage on the run folder (as `vstw run` would), returns its summary."""
    from pipelines.runners.local import LocalRunner
    from pipelines.stage import StageContext
    from pipelines.stages import REGISTRY

    stage = REGISTRY[name]
    p = stage.params_model(**params)
    for table in (stage.output_table,):
        marker = run_dir.success_path(table)
        marker.unlink(missing_ok=True)  # rerun on purpose: params may have changed
        for part in run_dir.existing_parts(table):
            run_dir.part_path(table, part).unlink()
    ctx = StageContext(run=run_dir.name, run_root=run_dir.root, project_root=ROOT)
    return LocalRunner(workers=1, progress=False).run_stage(stage, p, run_dir, ctx, stage.load_inputs(run_dir, p))
