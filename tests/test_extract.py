"""Rule-based fact extraction (curation/extract.py) against the synthetic worlds' truth."""

from __future__ import annotations

import pytest

from curation.extract import extract_facts
from curation.graph import ClipFacts, merge_graph
from curation.synthetic import ground_truth, make_script


def _clip_captions(truth: dict, clip_s: float = 4.0) -> list[tuple[str, float, float, str]]:
    """Clips of `clip_s` seconds captioned the way perceive maps annotations onto clips."""
    out, start, i = [], 0.0, 0
    while start < truth["duration_s"]:
        end = min(truth["duration_s"], start + clip_s)
        texts = [
            e["text"] for e in truth["events"]
            if (e["start_s"] < end and e["end_s"] > start) or (e["start_s"] == e["end_s"] and start <= e["start_s"] < end)
        ]  # fmt: skip
        out.append((f"c{i}", start, end, " ".join(texts)))
        start, i = end, i + 1
    return out


@pytest.mark.parametrize("seed", range(12))
def test_rules_extract_every_object_of_a_world_with_its_colour_and_direction(seed):
    truth = ground_truth(make_script(f"w{seed}", seed=seed))
    clips = _clip_captions(truth)
    facts = [ClipFacts(cid, start, extract_facts(caption)) for cid, start, _, caption in clips]
    entities, relations = merge_graph(facts)
    by_name = {e["name"]: e for e in entities}
    objects = [o for s in truth["scenes"] for o in s["objects"]]
    for obj in objects:
        name = f"{obj['colour']} {obj['shape']}"
        assert name in by_name, f"{name} missing from {sorted(by_name)}"
        assert obj["colour"] in by_name[name]["attributes"]
        # First seen in the clip where the world shows it first (of all objects with that name).
        first_s = min(o["appear_s"] for o in objects if f"{o['colour']} {o['shape']}" == name)
        clip_of_first = next(cid for cid, start, end, _ in clips if start <= first_s < end)
        assert by_name[name]["first_clip_id"] == clip_of_first
    # Every motion the graph states is the world's, never an invented one.
    directions = {}
    for o in objects:
        directions.setdefault(f"{o['colour']} {o['shape']}", set()).add(o["direction"])
    id_to_name = {e["entity_id"]: e["name"] for e in entities}
    for r in relations:
        if r["predicate"].startswith("moves_"):
            assert r["predicate"].removeprefix("moves_") in directions[id_to_name[r["subject"]]]
    assert {e["name"] for e in entities} == set(directions)  # nothing else (backgrounds are not things)


def test_rules_extract_nothing_from_text_without_known_things():
    assert extract_facts("Scene 3: a plain teal background.").entities == []
    assert extract_facts("").relations == []


def test_rules_read_people_animals_vehicles_and_disappearances():
    got = extract_facts("A dog runs to the right while two cars wait. The red kite disappears.")
    kinds = {e.name: e.type for e in got.entities}
    assert kinds == {"dog": "animal", "car": "vehicle", "red kite": "object"}
    assert ("red kite", "disappears") in {(r.subject, r.predicate) for r in got.relations}
