"""Recipes that cannot work are refused before anything is written (issue 14, part 3): stages in
an order that starves one of them, run names that are paths, endpoint URLs with credentials; and
what a run does write (recipe.yaml, the dataset card, every other file) holds neither a secret
from the environment nor this machine's folders."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from _chain_fixtures import write_table
from pipelines.recipe import RecipeError, parse_recipe, portable_recipe
from pipelines.rundir import RunDir, RunNameError
from pipelines.run import require_input_tables, run_recipe
from pipelines.stages import REGISTRY
from pipelines.teacher_sim import SimulatedTeacherServer

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, echo=lambda *_: None)
KEY_ENV = "VSTW_TEST_PLANTED_KEY"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """Two small synthetic videos with their ground truth, OUTSIDE the project, and a manifest."""
    from curation.synthetic import write_synthetic_set

    root = tmp_path_factory.mktemp("refusals")
    videos = write_synthetic_set(root / "worlds", count=2, seed=77, n_scenes=3, scene_s=(4.0, 6.0), width=160, height=120, fps=12)
    manifest = root / "worlds" / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"path": str(p), "id": p.stem, "annotations_file": str(p.with_suffix(".json"))}) + "\n" for p in videos))
    return root, manifest


def recipe_data(manifest: Path, stages: list[dict], **extra) -> dict:
    return {"name": "refusals", "inputs": [{"manifest": str(manifest)}], "allowed_roots": [str(manifest.parent)],
            "runner": {"kind": "local", "workers": 1, "part_size": 8}, "stages": stages, **extra}  # fmt: skip


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def vstw(args: list[str], env: dict[str, str]):
    from pipelines.cli import app

    return CliRunner().invoke(app, args, env={"VSTW_HOME": str(ROOT), "VSTW_PROGRESS": "0", **env})


# ---- stage order ------------------------------------------------------------------------------------
def test_segment_before_ingest_is_refused_and_nothing_is_written(worlds, tmp_path):
    _, manifest = worlds
    data = recipe_data(manifest, [{"stage": "segment"}, {"stage": "ingest"}])
    with pytest.raises(RecipeError) as err:
        parse_recipe(data, "bad.yaml")
    assert "segment (stages[0]) reads table 'videos', which ingest makes, but ingest comes after it (stages[1])" in str(err.value)
    assert "put ingest before segment" in str(err.value)

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    runs = tmp_path / "runs"
    result = vstw(["run", str(path), "--run", "order"], {"VSTW_RUNS": str(runs)})
    assert result.exit_code == 2, result.output
    assert "put ingest before segment" in result.output and "Traceback" not in result.output
    assert not runs.exists() or not any(runs.iterdir()), "a refused recipe wrote into the runs folder"


def test_a_table_made_later_in_the_recipe_is_an_order_mistake_even_if_optional(worlds):
    _, manifest = worlds
    stages = [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "perceive"}, {"stage": "signals"}]
    with pytest.raises(RecipeError, match=r"perceive \(stages\[2\]\) reads table 'clip_signals', which signals makes"):
        parse_recipe(recipe_data(manifest, stages))


def test_a_stage_whose_table_no_earlier_stage_makes_is_refused_then_accepted_once_complete(worlds, tmp_path):
    """check needs chains, which only think makes: refused on a fresh run, accepted with --until
    (check does not run), and accepted once the run has a complete chains table, even of 0 rows."""
    _, manifest = worlds
    recipe = parse_recipe(recipe_data(manifest, [{"stage": "ingest"}, {"stage": "segment", "min_clip_s": 2.0}, {"stage": "check"}]))
    runs = tmp_path / "runs"
    with pytest.raises(RecipeError) as err:
        run_recipe(recipe, "ext", ROOT, runs, **QUIET)
    assert "check (stages[2]) needs table 'chains', which the think stage makes: add think before check" in str(err.value)
    assert not files_under(runs), "a refused recipe wrote into the runs folder"

    first = run_recipe(recipe, "ext", ROOT, runs, until="segment", **QUIET)
    assert list(first) == ["ingest", "segment"] and first["segment"]["ok"] > 0
    run = RunDir(runs / "ext")
    with pytest.raises(RecipeError, match="needs table 'chains'"):
        run_recipe(recipe, "ext", ROOT, runs, **QUIET)
    assert not run.table_dir("verdicts").exists(), "check marked verdicts complete without chains"

    write_table(run, "chains", [])  # what a think stage with nothing to think about leaves: complete, 0 rows
    extended = run_recipe(recipe, "ext", ROOT, runs, **QUIET)
    assert extended["segment"].get("skipped") and extended["check"]["ok"] == 0 and run.is_complete("verdicts")
    assert run_recipe(recipe, "ext", ROOT, runs, **QUIET)["check"].get("skipped")


def test_until_must_name_a_stage_of_the_recipe(worlds, tmp_path):
    _, manifest = worlds
    recipe = parse_recipe(recipe_data(manifest, [{"stage": "ingest"}]))
    with pytest.raises(RecipeError, match=r"--until segmnet: not a stage of this recipe \(its stages: ingest\)"):
        run_recipe(recipe, "u", ROOT, tmp_path / "runs", until="segmnet", **QUIET)
    assert not files_under(tmp_path / "runs")


def test_export_without_the_stage_of_a_required_check_says_how_to_opt_out(worlds, tmp_path):
    _, manifest = worlds
    stages = [{"stage": "ingest"}, {"stage": "segment"}, {"stage": "perceive"}, {"stage": "graph"}, {"stage": "qa"},
              {"stage": "think"}, {"stage": "check"}, {"stage": "export"}]  # fmt: skip
    with pytest.raises(RecipeError) as err:
        run_recipe(parse_recipe(recipe_data(manifest, stages)), "x", ROOT, tmp_path / "runs", **QUIET)
    message = str(err.value)
    assert "export (stages[7]) needs table 'answer_verdicts'" in message and "which the verify stage makes" in message
    assert "list them in export.allow_unchecked" in message and "verdicts'" not in message.replace("answer_verdicts'", "")
    opted_out = stages[:-1] + [{"stage": "export", "allow_unchecked": ["answer"]}]
    parse_recipe(recipe_data(manifest, opted_out))  # the recipe's choice, by name: accepted


def test_a_stage_never_runs_on_a_table_that_does_not_exist(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(RecipeError, match="stage think cannot run in run: table.*questions.*do not exist"):
        require_input_tables(REGISTRY["think"], run)
    require_input_tables(REGISTRY["ingest"], run)  # reads the recipe's inputs, no table


# ---- run names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escaped_run", "a/b", ".", "..", "", "/tmp/abs", "x y"])
def test_run_names_that_are_not_one_safe_folder_name_are_refused(worlds, tmp_path, name):
    _, manifest = worlds
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_data(manifest, [{"stage": "ingest"}])))
    top = tmp_path / "top"
    runs = top / "runs"
    runs.mkdir(parents=True)
    result = vstw(["run", str(path), "--run", name], {"VSTW_RUNS": str(runs)})
    assert result.exit_code == 2, result.output
    assert f"run name {name!r} is not allowed" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in top.rglob("*")) == ["runs"], "a refused run name made a folder"
    assert not Path("/tmp/abs").exists() or name != "/tmp/abs"
    with pytest.raises(RunNameError):
        run_recipe(parse_recipe(recipe_data(manifest, [{"stage": "ingest"}])), name, ROOT, runs, **QUIET)


def test_commands_that_read_a_run_refuse_a_name_that_is_a_path(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    result = vstw(["status", "../nowhere"], {"VSTW_RUNS": str(runs)})
    assert result.exit_code == 2 and "is neither a run folder nor a run name" in result.output, result.output


# ---- credentials in URLs -----------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["text", "vision"])
@pytest.mark.parametrize("url", ["https://user:{key}@api.example.com/v1", "https://api.example.com/v1?api-key={key}",
                                 "https://{key}@api.example.com/v1", "https://x.example.com/v1?sig={key}&se=2030"])
def test_base_url_with_credentials_is_refused_naming_the_field(worlds, tmp_path, role, url):
    _, manifest = worlds
    key = "sk-planted-" + secrets.token_hex(8)
    teacher = {"text": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}
    teacher[role] = {"base_url": url.format(key=key), "model": "m"}
    data = recipe_data(manifest, [{"stage": "ingest"}], teacher=teacher)
    with pytest.raises(RecipeError) as err:
        parse_recipe(data, "r.yaml")
    message = str(err.value)
    assert f"teacher.{role}.base_url: has credentials in it" in message and "api_key_env" in message
    assert key not in message

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    result = vstw(["run", str(path), "--run", "creds"], {"VSTW_RUNS": str(tmp_path / "runs")})
    assert result.exit_code == 2 and "has credentials in it" in result.output and key not in result.output
    assert not files_under(tmp_path / "runs")


def test_one_check_for_every_address():
    from curation.credentials import url_credentials

    assert url_credentials("s3://bucket/runs?access_key=A&secret_key=B") == ["query parameters access_key, secret_key"]
    assert url_credentials("s3://A:B@bucket/runs") == ["a password in user:password@"]
    assert url_credentials("https://h/v1?X-Amz-Security-Token=t") and url_credentials("https://h/v1?openai_api_key=t")
    assert url_credentials("hdfs://alice@namenode:8020/runs") == []  # a user name, not a secret, outside HTTP
    assert url_credentials("http://127.0.0.1:8080/v1") == url_credentials("embedded") == []
    assert url_credentials("s3://bucket/runs?region=eu-west-1&endpoint_override=localhost:9000") == []
    with pytest.raises(RecipeError, match="runner.address: has credentials in it"):
        parse_recipe({"name": "r", "inputs": [{"glob": "*.mp4"}], "stages": [{"stage": "ingest"}],
                      "runner": {"kind": "ray", "address": "ray://u:p@head:10001"}})  # fmt: skip


# ---- what a run writes ------------------------------------------------------------------------------------
class KeyedTeacher(SimulatedTeacherServer):
    """The simulated teacher, remembering the Authorization headers it was sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.authorizations: set[str] = set()

    def _route(self, method, path, headers, body):
        self.authorizations.add(headers.get("authorization", ""))
        return super()._route(method, path, headers, body)


@pytest.fixture(scope="module")
def full_run(worlds, tmp_path_factory):
    """A run through every stage but judge with a teacher whose key is in the environment only."""
    root, manifest = worlds
    key = "sk-planted-" + secrets.token_hex(16)
    stages = [{"stage": "ingest"}, {"stage": "segment", "min_clip_s": 2.0, "max_clip_s": 10.0},
              {"stage": "perceive", "source": "annotation"}, {"stage": "graph", "source": "teacher"}, {"stage": "qa", "mode": "mixed"},
              {"stage": "think", "mode": "teacher"}, {"stage": "verify", "samples": 3}, {"stage": "check"},
              {"stage": "export", "formats": ["sft", "rl", "hf"]}]  # fmt: skip
    runs = tmp_path_factory.mktemp("planted") / "runs"
    os.environ[KEY_ENV] = key
    try:
        with KeyedTeacher(rate=0.0, seed=5) as teacher:
            endpoint = {"base_url": teacher.base_url, "model": "simulated-teacher", "api_key_env": KEY_ENV}
            data = recipe_data(manifest, stages, teacher={"text": endpoint, "concurrency": 4, "timeout_s": 30, "max_retries": 1})
            recipe = parse_recipe(data)
            summaries = run_recipe(recipe, "planted", ROOT, runs, **QUIET)
            again = run_recipe(recipe, "planted", ROOT, runs, **QUIET)  # a resume reads recipe.yaml back
    finally:
        del os.environ[KEY_ENV]
    assert f"Bearer {key}" in teacher.authorizations, "the teacher was never sent the key: the test proves nothing"
    assert all(s.get("skipped") for s in again.values()), again
    return {"run": RunDir(runs / "planted"), "key": key, "summaries": summaries, "data": data, "root": root, "runs": runs}


def test_the_key_from_the_environment_is_in_no_file_of_the_run(full_run):
    run, key = full_run["run"], full_run["key"].encode()
    files = files_under(run.root)
    assert {"recipe.yaml", "README.md", "manifest.json"} <= {p.name for p in files}
    assert any("teacher-cache" in p.parts for p in files) and any("exports" in p.parts for p in files)
    leaked = [str(p.relative_to(run.root)) for p in files if key in p.read_bytes()]
    assert not leaked, f"the planted key was written to {leaked}"
    assert KEY_ENV in run.recipe_path.read_text()  # the NAME of the variable is kept: a resume needs it


def test_recipe_yaml_and_the_dataset_card_name_no_folder_of_this_machine(full_run):
    run, root = full_run["run"], full_run["root"]
    recipe_text = run.recipe_path.read_text()
    card = (run.exports_dir / "hf" / "README.md").read_text()
    manifest = (run.exports_dir / "manifest.json").read_text()
    for text in (recipe_text, card, manifest):
        assert str(root) not in text and str(ROOT) not in text and str(Path.home()) + "/" not in text
    doc = yaml.safe_load(recipe_text)
    assert doc["recipe"]["inputs"] == [{"glob": None, "manifest": "<allowed_roots[0]>/manifest.jsonl"}]
    assert doc["recipe"]["allowed_roots"] == ["<outside the project>"] and doc["fingerprint"].startswith("sha256:")
    assert "<allowed_roots[0]>/manifest.jsonl" in card and json.loads(manifest)["dataset_root"] == "."


def test_a_recipe_that_differs_only_in_a_shortened_path_does_not_resume_the_run(full_run, tmp_path):
    """Another folder of the same name shortens to the same recipe.yaml text: the fingerprint still tells them apart."""
    other = tmp_path / "worlds"
    other.mkdir()
    (other / "manifest.jsonl").write_text((full_run["root"] / "worlds" / "manifest.jsonl").read_text())
    data = recipe_data(other / "manifest.jsonl", full_run["data"]["stages"], teacher=full_run["data"]["teacher"])
    assert portable_recipe(parse_recipe(data).model_dump(mode="json"), ROOT)["inputs"] == yaml.safe_load(full_run["run"].recipe_path.read_text())["recipe"]["inputs"]
    with pytest.raises(RecipeError, match="was made with a different recipe"):
        run_recipe(parse_recipe(data), "planted", ROOT, full_run["runs"], **QUIET)


def test_paths_inside_the_project_are_written_relative_to_it():
    data = {"name": "p", "inputs": [{"glob": str(ROOT / "data" / "samples" / "real" / "*.mp4")}, {"manifest": "data/samples/manifest.jsonl"}],
            "allowed_roots": [str(ROOT / "data" / "samples")], "teacher": {"text": {"base_url": "embedded", "model": "m"}, "cache_dir": "/var/cache/teacher"},
            "stages": [{"stage": "ingest"}, {"stage": "judge", "model": str(ROOT / "data" / "models" / "tiny")}]}  # fmt: skip
    out = portable_recipe(parse_recipe(data).model_dump(mode="json"), ROOT)
    assert [i["glob"] or i["manifest"] for i in out["inputs"]] == ["data/samples/real/*.mp4", "data/samples/manifest.jsonl"]
    assert out["allowed_roots"] == ["data/samples"] and out["stages"][1]["model"] == "data/models/tiny"
    assert out["teacher"]["cache_dir"] == "<outside the project>/teacher"
