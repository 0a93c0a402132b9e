"""Run a recipe: the run folder, the stages in order, and a summary per stage."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

import yaml

from pipelines.inputs import list_inputs
from pipelines.recipe import Recipe, RecipeError, portable_recipe, recipe_fingerprint
from pipelines.rundir import RunDir, run_location
from pipelines.runners.ray_runner import runner_from_spec
from pipelines.runlock import run_lock
from pipelines.stage import StageContext
from pipelines.stages import REGISTRY

VERSIONED_PACKAGES = ["vst-workbench", "scenedetect", "decord", "pyarrow", "openai", "transformers", "torch", "duckdb"]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _recipe_data(recipe: Recipe) -> dict:
    return recipe.model_dump(mode="json", exclude={"runner"})


def prepare_run_dir(recipe: Recipe, runs_root: Path | str, run_name: str, project_root: Path | None = None) -> RunDir:
    """Create the run folder (local or a URI), or check that an existing one was made by the
    same recipe. recipe.yaml holds the recipe without this machine's paths (`portable_recipe`,
    relative to `project_root`) and the fingerprint of the recipe as given, which a resume must match."""
    run_dir = RunDir(run_location(runs_root, run_name))
    wanted = _recipe_data(recipe)
    if run_dir.has_recipe():
        if not _same_recipe(run_dir.read_recipe(), wanted):
            raise RecipeError(
                f"run {run_name!r} in {runs_root} was made with a different recipe; "
                f"resume it with the same recipe, or start a new run with --run NEW_NAME"
            )
        return run_dir
    doc = {
        "recipe": portable_recipe(wanted, project_root or Path.cwd()),
        "fingerprint": recipe_fingerprint(wanted),
        "runner": recipe.runner.model_dump(mode="json"),
        "versions": package_versions(),
    }
    run_dir.write_bytes("recipe.yaml", yaml.safe_dump(doc, sort_keys=False).encode())
    return run_dir


def _same_recipe(doc: dict, wanted: dict) -> bool:
    if "fingerprint" in doc:
        return doc["fingerprint"] == recipe_fingerprint(wanted)
    return doc.get("recipe") == wanted  # a run made before recipe.yaml had a fingerprint: the recipe as given


def check_stage_inputs(recipe: Recipe, run_dir: RunDir, until: str | None = None) -> None:
    """Refuse, before anything is written, a recipe whose stages would run without a table they
    read (and mark their own output complete for good): each must be made by an earlier stage of
    the recipe or be complete in the run folder already (a resumed or extended run). A stage whose
    output is complete is skipped, and stages after `until` do not run: what they read does not
    matter now."""
    names = [p.stage for p in recipe.stages]
    if until is not None and until not in names:
        raise RecipeError(f"--until {until}: not a stage of this recipe (its stages: {', '.join(names)})")
    made: set[str] = set()
    problems = []
    for i, params in enumerate(recipe.stages):
        stage = REGISTRY[params.stage]
        if not run_dir.is_complete(stage.output_table):
            problems += [_missing_input(i, stage.name, table, why) for table, why in stage.needs(params).items()
                         if table not in made and not run_dir.is_complete(table)]
        made.add(stage.output_table)
        if stage.name == until:
            break
    if problems:
        raise RecipeError(f"recipe {recipe.name!r} cannot run in {run_dir.name}:\n  " + "\n  ".join(problems))


def _missing_input(i: int, stage: str, table: str, why: str) -> str:
    maker = next((name for name in REGISTRY if REGISTRY[name].output_table == table), None)
    what = f"table {table!r}" + (f" ({why})" if why else "")
    if maker is None:
        return f"{stage} (stages[{i}]) needs {what}, which no stage makes and the run does not have"
    return (f"{stage} (stages[{i}]) needs {what}, which the {maker} stage makes: add {maker} before {stage} "
            f"(or extend a run where {table} is complete)")


def run_recipe(
    recipe: Recipe,
    run_name: str,
    project_root: Path,
    runs_root: Path | str | None = None,
    progress: bool = True,
    echo=print,
    until: str | None = None,
    runner_kind: str | None = None,
    address: str | None = None,
) -> dict[str, dict]:
    """`runner_kind`/`address` override the recipe's runner (the runner never changes the
    outputs, so a run may be resumed under another runner)."""
    recipe = with_runner(recipe, runner_kind, address)
    runs_root = runs_root or project_root / "data" / "runs"
    check_stage_inputs(recipe, RunDir(run_location(runs_root, run_name)), until)  # before the lock makes the folder
    # one writer per run, taken here in the driver: the Ray runner's workers write under it too
    with run_lock(run_location(runs_root, run_name), echo=echo):
        run_dir = prepare_run_dir(recipe, runs_root, run_name, project_root)
        runner = runner_from_spec(recipe.runner, project_root, progress)
        try:
            return _run_stages(recipe, run_name, run_dir, runner, project_root, echo, until)
        finally:
            if hasattr(runner, "close"):
                runner.close()


def with_runner(recipe: Recipe, kind: str | None, address: str | None) -> Recipe:
    """The recipe with its runner kind/address replaced (validated like the YAML)."""
    if kind is None and address is None:
        return recipe
    from pydantic import ValidationError

    from pipelines.recipe import RunnerSpec, format_errors

    data = recipe.runner.model_dump(exclude_none=True)
    data.update({k: v for k, v in {"kind": kind, "address": address}.items() if v is not None})
    if data.get("kind") == "local":  # the recipe's Ray options stay in the recipe, unused
        data = {k: v for k, v in data.items() if k in ("kind", "workers", "part_size")}
    try:
        spec = RunnerSpec.model_validate(data)
    except ValidationError as err:
        raise RecipeError("runner is not valid:\n  " + "\n  ".join(format_errors(err, data))) from None
    return recipe.model_copy(update={"runner": spec})


def _run_stages(recipe: Recipe, run_name: str, run_dir: RunDir, runner, project_root: Path, echo, until: str | None) -> dict[str, dict]:
    ctx = StageContext(run=run_name, run_root=run_dir.uri, project_root=project_root, recipe=recipe.model_dump(mode="json"))
    summaries: dict[str, dict] = {}
    for params in recipe.stages:
        stage = REGISTRY[params.stage]
        require_input_tables(stage, run_dir)
        if stage.load_inputs is not None:
            inputs = stage.load_inputs(run_dir, params)
        elif stage.input_table is None:
            inputs = list_inputs(recipe, project_root)
        else:
            inputs = run_dir.read_rows(stage.input_table)
        summary = runner.run_stage(stage, params, run_dir, ctx, inputs)
        summaries[stage.name] = summary
        echo(format_summary(stage.name, stage.output_table, summary))
        if until == stage.name:
            break
    return summaries


def require_input_tables(stage, run_dir: RunDir) -> None:
    """A stage never runs (and so never marks its output complete) on a table that does not exist:
    its output would be empty for good, and a re-run would skip it."""
    if run_dir.is_complete(stage.output_table):
        return
    missing = [t for t in stage.required_tables() if not run_dir.has_table(t)]
    if missing:
        raise RecipeError(f"stage {stage.name} cannot run in {run_dir.name}: table(s) {', '.join(missing)} do not exist there")


def format_summary(stage: str, table: str, s: dict) -> str:
    state = "already done" if s.get("skipped") else f"{s.get('seconds', 0):.1f}s"
    line = f"{stage:>9} -> {table:<10} {s['ok']:>6} ok {s['failed']:>5} failed   ({state})"
    if s["failed_by_reason"]:
        line += "   " + ", ".join(f"{k}: {v}" for k, v in s["failed_by_reason"].items())
    return line


def run_status(run_dir: RunDir) -> list[dict]:
    """Per table of the run: parts done / planned, rows ok/failed by reason, complete or not."""
    from pipelines.runners.local import summarize

    if not run_dir.has_recipe():
        raise FileNotFoundError(f"{run_dir.uri} is not a run folder (no recipe.yaml)")
    doc = run_dir.read_recipe()
    out = []
    for entry in doc["recipe"]["stages"]:
        stage = REGISTRY.get(entry["stage"])
        if stage is None:
            continue
        table = stage.output_table
        plan = run_dir.read_plan(table) or {}
        planned = plan.get("parts", {})
        done = run_dir.existing_parts(table)
        out.append(
            {
                "stage": stage.name,
                "table": table,
                "complete": run_dir.is_complete(table),
                "parts_done": len(done & set(planned)) if planned else len(done),
                "parts_planned": len(planned),
                **summarize(run_dir, table),
            }
        )
    return out


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
