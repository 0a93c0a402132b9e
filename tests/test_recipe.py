"""Recipe validation: refused with the field's path and the allowed values."""

from __future__ import annotations

import pytest

from pipelines.recipe import RecipeError, load_recipe, parse_recipe


def base(**overrides):
    data = {
        "name": "t",
        "inputs": [{"glob": "data/samples/real/*.mp4"}],
        "stages": [{"stage": "ingest"}, {"stage": "segment"}],
    }
    data.update(overrides)
    return data


def error_of(data) -> str:
    with pytest.raises(RecipeError) as err:
        parse_recipe(data, "r.yaml")
    return str(err.value)


def test_valid_recipe_parses_with_defaults():
    recipe = parse_recipe(base())
    segment = recipe.stages[1]
    assert segment.stage == "segment" and segment.threshold == 27.0 and segment.max_clip_s == 10.0
    assert recipe.runner.workers == 2


def test_typo_key_names_the_path_and_the_allowed_keys():
    msg = error_of(base(stages=[{"stage": "ingest"}, {"stage": "segment", "treshold": 30}]))
    assert "r.yaml is not valid" in msg
    assert "stages[1] (segment).treshold: unknown key" in msg
    assert "threshold" in msg.split("allowed:")[1] and "min_clip_s" in msg


def test_negative_threshold_is_refused_with_the_bound():
    msg = error_of(base(stages=[{"stage": "segment", "threshold": -5}]))
    assert "stages[0] (segment).threshold: must be greater than or equal to 0 (got -5)" in msg


def test_unknown_stage_lists_the_known_ones():
    msg = error_of(base(stages=[{"stage": "segmnet"}]))
    assert "unknown stage 'segmnet'" in msg and "segment" in msg and "ingest" in msg


def test_literal_value_lists_allowed_values():
    msg = error_of(base(stages=[{"stage": "segment", "detector": "histogram"}]))
    assert "stages[0] (segment).detector: 'histogram' is not allowed; allowed values: 'content', 'adaptive' or 'transnetv2'" in msg


def test_cross_field_rule_is_explained():
    msg = error_of(base(stages=[{"stage": "segment", "min_clip_s": 6, "max_clip_s": 10}]))
    assert "max_clip_s (10.0) must be at least twice min_clip_s (6.0)" in msg


def test_top_level_typo_and_missing_field():
    msg = error_of({"name": "t", "input": [], "stages": [{"stage": "ingest"}]})
    assert "inputs: Field required" in msg
    assert "input: unknown key; allowed:" in msg and "inputs" in msg


def test_input_needs_exactly_one_source():
    msg = error_of(base(inputs=[{"glob": "a", "manifest": "b"}]))
    assert "inputs[0]: give exactly one of 'glob' or 'manifest'" in msg


def test_stage_listed_twice():
    assert "stage(s) listed twice: ingest" in error_of(base(stages=[{"stage": "ingest"}, {"stage": "ingest"}]))


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="is not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(RecipeError, match="expected a mapping at the top level"):
        load_recipe(scalar)


def test_shipped_demo_recipe_is_valid(project_root):
    recipe = load_recipe(project_root / "pipelines" / "recipes" / "demo.yaml")
    assert [s.stage for s in recipe.stages][:2] == ["ingest", "segment"]
