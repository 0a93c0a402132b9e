"""How well a teacher's graphs and QA ground truths agree with the synthetic ground truth.

    python benchmarks/teacher_quality.py RUN_FOLDER [--json]

For every synthetic video of the run (a data/samples/synthetic/*.mp4 with its *.json beside it):
- graph entities vs the true objects of the window ("<colour> <shape>" names): precision
  (entities that are true objects) and recall (true objects found);
- template questions vs the truth: count_entities (different "<colour> <shape>" objects seen in
  the window), first_appearance (which option appeared first), appeared_before (yes/no).
A question about something that is no true object (e.g. the teacher named the background) is
"unverifiable", not wrong. Comparing teachers = comparing these numbers on the same samples.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.graph import normalize_name  # noqa: E402
from pipelines.rundir import RunDir, atomic_write_json  # noqa: E402


def true_objects(truth: dict, start: float, end: float) -> dict[str, float]:
    """'<colour> <shape>' -> first appearance (s), for the objects visible in [start, end)."""
    out: dict[str, float] = {}
    for scene in truth["scenes"]:
        for o in scene["objects"]:
            if o["appear_s"] < end and o["leave_s"] > start:
                name = f"{o['colour']} {o['shape']}"
                out[name] = min(out.get(name, o["appear_s"]), o["appear_s"])
    return out


def object_name(entity_name: str, objects: dict[str, float]) -> str | None:
    name = normalize_name(entity_name)
    return name if name in objects else None


def judge(question: dict, objects: dict[str, float]) -> str:
    """agree / disagree / unverifiable."""
    template, qa = question["template"], question["qa"]
    details = json.loads(question.get("details") or "{}")
    if template == "count_entities":
        names = details.get("entities", [])
        if not names or any(object_name(n, objects) is None for n in names):
            return "unverifiable"
        return "agree" if int(qa["answer"]) == len(objects) else "disagree"
    if template == "first_appearance":
        names = [re.sub(r"^[A-E]\. ", "", o) for o in qa["options"]]
        mapped = [object_name(n, objects) for n in names]
        if None in mapped:
            return "unverifiable"
        earliest = min(mapped, key=lambda n: objects[n])
        ties = [n for n in mapped if objects[n] == objects[earliest]]
        return "agree" if len(ties) == 1 and mapped["ABCDE".index(qa["answer"])] == earliest else "disagree"
    if template == "appeared_before":
        a, b = object_name(details.get("first", ""), objects), object_name(details.get("second", ""), objects)
        if a is None or b is None or objects[a] == objects[b]:
            return "unverifiable"
        return "agree" if (qa["answer"] == "Yes") == (objects[a] < objects[b]) else "disagree"
    return "unverifiable"


def evaluate(run_dir: RunDir) -> dict:
    videos = {v["video_id"]: v for v in run_dir.read_rows("videos") if v["status"] == "ok"}
    truths = {}
    for vid, v in videos.items():
        path = Path(v["path"]).with_suffix(".json")
        if "synthetic" in path.parts and path.is_file():
            truths[vid] = json.loads(path.read_text())
    graphs = [g for g in run_dir.read_rows("graphs") if g["video_id"] in truths]
    entity_hits = entity_total = found = true_total = 0
    windows = {}
    for g in graphs:
        objects = true_objects(truths[g["video_id"]], g["start_s"], g["end_s"])
        windows[g["window_id"]] = objects
        true_total += len(objects)
        if g["status"] != "ok":
            continue
        names = {normalize_name(e["name"]) for e in g["entities"]}
        entity_total += len(names)
        entity_hits += len(names & set(objects))
        found += len(set(objects) & names)
    questions = {}
    for q in run_dir.read_rows("questions") if run_dir.has_table("questions") else []:
        if q["status"] != "ok" or q["window_id"] not in windows:
            continue
        verdict = judge(q, windows[q["window_id"]])
        counts = questions.setdefault(q["template"], {"agree": 0, "disagree": 0, "unverifiable": 0})
        counts[verdict] += 1
    agree = sum(c["agree"] for c in questions.values())
    verifiable = agree + sum(c["disagree"] for c in questions.values())
    teacher = next((g["teacher"] for g in graphs if g["teacher"]), None)
    return {
        "run": run_dir.name,
        "teacher": teacher,
        "synthetic_videos": len(truths),
        "windows": len(graphs),
        "graphs_ok": sum(g["status"] == "ok" for g in graphs),
        "entity_precision": round(entity_hits / entity_total, 3) if entity_total else None,
        "object_recall": round(found / true_total, 3) if true_total else None,
        "questions": questions,
        "qa_agreement": round(agree / verifiable, 3) if verifiable else None,
        "qa_verifiable": verifiable,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder (e.g. data/runs/demo-<hash>)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run_dir = RunDir(args.run)
    result = evaluate(run_dir)
    atomic_write_json(run_dir.reports_dir / "teacher_quality.json", result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"run {result['run']}, teacher {result['teacher']}: {result['synthetic_videos']} synthetic videos, "
          f"{result['graphs_ok']}/{result['windows']} graphs ok")  # fmt: skip
    print(f"graph entities that are true objects (precision): {result['entity_precision']}")
    print(f"true objects found in the graphs (recall):        {result['object_recall']}")
    for template, c in sorted(result["questions"].items()):
        print(f"  {template:<18} agree {c['agree']:>3}  disagree {c['disagree']:>3}  unverifiable {c['unverifiable']:>3}")
    print(f"QA ground truths agreeing with the synthetic truth: {result['qa_agreement']} (of {result['qa_verifiable']} verifiable)")


if __name__ == "__main__":
    main()
