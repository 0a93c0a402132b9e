"""The gate against the simulated teacher, from real stage output (no hand-written chains).

Three synthetic worlds go through the real stages once up to `graph` (no mistakes); then, for
every mistake kind, a copy of that run goes on (qa -> think -> verify -> check -> export) with the
simulated teacher injecting ONLY that kind into every item it applies to. Each injected mistake
must be kept out of the export (excluded by a check with the kind's reason code, or repaired
away by the stage's own validation), and a clean run must export every chain, all of them right
by the worlds' ground truth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _gate_fixtures import simulated_teacher_recipe, worlds_manifest
from curation.teacher.simulator import KINDS
from pipelines.gate_report import gate_report, read_injections
from pipelines.recipe import parse_recipe
from pipelines.rundir import RunDir
from pipelines.run import run_recipe
from pipelines.teacher_sim import SimulatedTeacherServer

PROJECT = Path(__file__).resolve().parents[1]

# Where each kind must show up when it reaches a chain: a reason code of the excluding verdicts
# (`check:reason`), or None when the stage itself refuses such replies (the repair is faithful).
EXPECTED = {
    # an invented "blue triangle" in a world with a red one reads as a wrong colour: either code
    "hallucinated_entity": {"grounding:thought_names_unknown_entity", "grounding:thought_wrong_attribute"},
    "wrong_attribute": {"grounding:thought_wrong_attribute"},
    "future_entity": {"causality:thought_leaks_future"},
    "future_event": {"causality:thought_leaks_future_event"},
    "early_answer": {"causality:answer_before_question"},
    "prompt_echo": {"thoughts:thought_prompt_echo"},
    "reworded_repeat": {"thoughts:thought_near_duplicate"},
    "missing_thought": {"thoughts:thought_too_short", "thoughts:thought_empty"},
    "language_drift": {"thoughts:thought_wrong_language"},
    "wrong_answer": {"answer:answer_disagrees_teacher"},
    "wrong_count": {"answer:answer_disagrees_teacher"},
    "answer_leaked": {"qa:answer_leaked_in_question"},
    "duplicate_options": {"qa:options_near_identical"},
    "broken_json": set(),
    "truncation": set(),
}


# A kind the simulator cannot make for an item is replaced, and logged as what it made.
FALLBACK = {"future_entity": {"hallucinated_entity"}, "future_event": {"hallucinated_entity", "future_entity"}}


@pytest.fixture(scope="module")
def gate_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    manifest = worlds_manifest(root / "worlds", count=3, seed=424)
    with SimulatedTeacherServer(rate=0.0, seed=3) as server:
        recipe = parse_recipe(simulated_teacher_recipe(manifest, server.base_url))
        run_recipe(recipe, "base", PROJECT, root / "runs", progress=False, echo=lambda *_: None, until="graph")
        yield root, recipe, server


def _run_with(gate_env, name: str, kinds: tuple[str, ...], rate: float):
    root, recipe, server = gate_env
    runs = root / "runs"
    shutil.copytree(runs / "base", runs / name)
    server.simulator.rate, server.simulator.kinds = rate, kinds
    before = len(server.injections)
    run_recipe(recipe, name, PROJECT, runs, progress=False, echo=lambda *_: None)
    injections = server.injections[before:]
    log = runs / name / "injections.jsonl"
    log.write_text("".join(json.dumps(i) + "\n" for i in injections))
    run_dir = RunDir(runs / name)
    return run_dir, gate_report(run_dir, read_injections(log)), injections


def _decisions(run_dir: RunDir) -> dict[str, dict]:
    return {d["chain_id"]: d for d in run_dir.read_rows("export_decisions")}


def test_clean_run_exports_every_chain_and_every_exported_chain_is_right(gate_env):
    run_dir, report, injections = _run_with(gate_env, "clean", KINDS, 0.0)
    assert injections == []
    assert report.chains >= 6  # 3 worlds, template + teacher questions
    decisions = _decisions(run_dir)
    rejected = {cid: d["excluded_by"] for cid, d in decisions.items() if not d["exported"]}
    assert rejected == {}, f"clean chains rejected: {rejected}"
    assert report.false_reject_rate == 0.0
    assert report.exported == report.chains and report.exported_correct == report.exported
    assert report.truth_checked == report.exported
    # The template count question has the same words in every world: none is a duplicate.
    counts = [c for c in run_dir.read_rows("chains") if c["status"] == "ok" and c["qa_template"] == "count_entities"]
    assert len({c["video_id"] for c in counts}) >= 2
    assert len({c["qa"]["question"] for c in counts}) == 1
    assert all(decisions[c["chain_id"]]["exported"] for c in counts)


@pytest.mark.parametrize("kind", KINDS)
def test_each_mistake_kind_alone_is_kept_out_of_the_export_with_its_reason(gate_env, kind):
    run_dir, report, injections = _run_with(gate_env, f"only-{kind}", (kind,), 1.0)
    assert injections, f"the simulator injected no {kind}"
    made = {i["kind"] for i in injections}
    assert kind in made and made <= {kind} | FALLBACK.get(kind, set()), made
    content = [i for i in injections if i["item"].split("/")[0] in ("graph", "qa", "think")]
    assert sum(v["injected"] for v in report.by_kind.values()) == len(content)
    for made_kind, entry in report.by_kind.items():
        assert entry["caught"] == entry["injected"], f"{made_kind} reached the export in chains {entry['missed_chains']}"
    # Where the mistake reached a chain, the excluding verdicts name the kind's reason code.
    decisions = _decisions(run_dir)
    carried = [cid for cid, d in decisions.items() if not d["exported"]]
    if EXPECTED[kind] and carried:
        reasons = {r for cid in carried for r in decisions[cid]["excluded_by"] or []}
        expected = set().union(*(EXPECTED[k] for k in made))
        assert reasons & expected, f"{kind}: excluded by {sorted(reasons)}, expected one of {sorted(expected)}"
    # Nothing else is lost: chains that carry no mistake are exported.
    assert report.clean_rejected == 0, f"clean chains rejected: {report.clean_rejected_by}"
    assert report.exported_correct == report.exported


def test_the_ground_truth_oracle_sees_wrong_thoughts_and_wrong_answers(gate_env):
    """The report's "fully correct" means something: a changed colour, direction, an object not
    yet on screen, or a changed answer in an otherwise clean chain are each found."""
    from pipelines.gate_report import answer_truth_error, load_truth, thought_truth_errors

    run_dir, _, _ = _run_with(gate_env, "clean-oracle", KINDS, 0.0)
    chains = [c for c in run_dir.read_rows("chains") if c["status"] == "ok"]
    truth = load_truth(chains[0]["video_path"])
    chain = chains[0]
    assert all(thought_truth_errors(t, chain["start_s"], truth) == [] for t in chain["thoughts"])
    objects = [o for s in truth["scenes"] for o in s["objects"]]
    first = min(objects, key=lambda o: o["appear_s"])
    last = max(objects, key=lambda o: o["appear_s"])
    thought = next(t for t in chain["thoughts"] if t["end_s"] > first["appear_s"])
    other_dir = next(d for d in ("left", "right", "up", "down") if d != first["direction"])
    wrong = [
        f"A {first['colour']} {first['shape']} appears and moves {other_dir}.",
        f"A {next(c for c in ('red', 'green', 'blue', 'yellow', 'white', 'magenta') if not any(o['colour'] == c and o['shape'] == first['shape'] for o in objects))} {first['shape']} appears.",
    ]
    for text in wrong:
        assert thought_truth_errors({**thought, "text": text}, chain["start_s"], truth), text
    if last["appear_s"] > chain["thoughts"][0]["end_s"]:
        early = {**chain["thoughts"][0], "text": f"A {last['colour']} {last['shape']} appears."}
        assert thought_truth_errors(early, chain["start_s"], truth) or any(
            o["colour"] == last["colour"] and o["shape"] == last["shape"] and o["appear_s"] < chain["thoughts"][0]["end_s"] for o in objects
        )
    count = next((c for c in chains if c["qa"]["type"] == "numerical"), None)
    assert count is not None and answer_truth_error(count, load_truth(count["video_path"])) is None
    bumped = {**count, "qa": {**count["qa"], "answer": str(int(count["qa"]["answer"]) + 1)}}
    assert answer_truth_error(bumped, load_truth(count["video_path"])) is not None
