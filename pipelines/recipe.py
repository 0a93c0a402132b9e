"""Recipes: a YAML file that names the inputs, the stages with their parameters, and the runner.

Validation is strict (unknown keys and out-of-range values are refused) and errors name the
field's path and what is allowed, e.g.

    recipe demo.yaml is not valid:
      stages[1] (segment).threshold: must be >= 0 (got -5.0)
      stages[1] (segment).treshold: unknown key; allowed: detector, threshold, ...
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation.credentials import URL_CREDENTIALS_ERROR, refuse_url_credentials
from curation.teacher.config import TeacherConfig
from pipelines.stages import REGISTRY


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is meant for the user as is."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(Strict):
    """One source of videos: a glob of files, or a manifest (JSONL or CSV)."""

    glob: str | None = None
    manifest: str | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.glob is None) == (self.manifest is None):
            raise ValueError("give exactly one of 'glob' or 'manifest'")
        return self


class StageResources(Strict):
    """Ray runner: what one worker of a stage asks the cluster for, and how many run at once."""

    num_cpus: float | None = Field(None, gt=0, le=1024)
    num_gpus: float | None = Field(None, ge=0, le=64)
    concurrency: int | None = Field(None, ge=1, le=10_000)  # tasks (cpu) or actors (io, model) at once
    threads: int | None = Field(None, ge=1, le=256)  # io stages: parts run at once in each actor


class RunnerSpec(Strict):
    kind: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1, le=256)  # local: processes/threads; ray without address: CPUs of the local Ray
    part_size: int = Field(8, ge=1, le=100_000)
    # ray only (docs/cluster.md): "auto" (the cluster `ray start` made here), "ray://host:10001",
    # or none: start a local Ray (RAY_ADDRESS from the environment wins when set).
    address: str | None = Field(None, min_length=1)
    resources: dict[str, StageResources] = Field(default_factory=dict)  # ray only: per stage name
    object_store_mb: int | None = Field(None, ge=64)  # ray only, local Ray: object store size

    @field_validator("address")
    @classmethod
    def _no_credentials_in_address(cls, value: str | None) -> str | None:
        return value if value is None else refuse_url_credentials(value, "give them through the environment, never in the address")

    @model_validator(mode="after")
    def _ray_options(self):
        if self.kind != "ray":
            used = [k for k in ("address", "object_store_mb") if getattr(self, k) is not None] + (["resources"] if self.resources else [])
            if used:
                raise ValueError(f"{', '.join(used)}: only used by the ray runner (set kind: ray)")
        unknown = sorted(set(self.resources) - set(REGISTRY))
        if unknown:
            raise ValueError(f"resources: unknown stage(s) {', '.join(unknown)}; known stages: {', '.join(REGISTRY)}")
        return self


def _stage_union():
    models = tuple(stage.params_model for stage in REGISTRY.values())
    return Annotated[Union[models], Field(discriminator="stage")]  # type: ignore[valid-type]


class Recipe(Strict):
    # pydantic's own error text (a traceback, a log) never prints a value: it may be a secret URL
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(..., min_length=1)
    description: str = ""
    inputs: list[InputSpec] = Field(..., min_length=1)
    # Paths in inputs and manifests must resolve inside these folders (relative to the project).
    allowed_roots: list[str] = Field(default_factory=lambda: ["."])
    runner: RunnerSpec = Field(default_factory=RunnerSpec)
    stages: list[_stage_union()] = Field(..., min_length=1)  # type: ignore[valid-type]
    teacher: TeacherConfig | None = None  # endpoints, limits, budget, prices, cache (docs/teacher.md)

    @field_validator("stages")
    @classmethod
    def _stages_in_order(cls, stages: list) -> list:
        problems = [line for i, params in enumerate(stages) for line in _made_too_late(stages, i)]
        if problems:
            raise ValueError("\n  ".join(problems))
        return stages

    @model_validator(mode="after")
    def _stages_once(self):
        names = [s.stage for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage(s) listed twice: {', '.join(dupes)}")
        return self


def _made_too_late(stages: list, i: int) -> list[str]:
    """A stage that reads a table which a later stage of the recipe makes would run without it
    (and mark its output complete, for good): one message per such table."""
    stage = REGISTRY[stages[i].stage]
    made_at = {REGISTRY[p.stage].output_table: j for j, p in enumerate(stages)}
    out = []
    for table in dict.fromkeys([*stage.needs(stages[i]), *stage.reads_if_present]):
        j = made_at.get(table, -1)
        if j > i:
            maker = stages[j].stage
            out.append(f"{stage.name} (stages[{i}]) reads table {table!r}, which {maker} makes, but {maker} comes after it "
                       f"(stages[{j}]): put {maker} before {stage.name}")
    return out


def _describe(recipe_data: Any, loc: tuple) -> str:
    """stages[1] (segment).threshold -- a location readable by a person."""
    out = ""
    node = recipe_data
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and "stage" in node and i + 1 < len(loc):
                    out += f" ({node['stage']})"
            continue
        if i > 0 and isinstance(loc[i - 1], int) and isinstance(node, dict) and part == node.get("stage"):
            continue  # the discriminator tag pydantic adds: already shown in parentheses
        out += ("." if out else "") + str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _allowed_keys(recipe_data: Any, loc: tuple) -> list[str]:
    if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
        try:
            stage_name = recipe_data["stages"][loc[1]]["stage"]
            return sorted(REGISTRY[stage_name].params_model.model_fields)
        except (KeyError, IndexError, TypeError):
            return []
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            break
        model = field.annotation
    return sorted(model.model_fields)


def format_errors(err: ValidationError, data: Any) -> list[str]:
    lines = []
    for e in err.errors():
        where = _describe(data, e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; allowed: {', '.join(_allowed_keys(data, e['loc']))}")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"{where}: unknown stage {e['input'].get('stage')!r}; known stages: {', '.join(REGISTRY)}")
        elif e["type"] == "union_tag_not_found":
            lines.append(f"{where}: each stage needs a 'stage' key naming one of: {', '.join(REGISTRY)}")
        elif e["type"] == "literal_error":
            allowed = e.get("ctx", {}).get("expected", "")
            lines.append(f"{where}: {e['input']!r} is not allowed; allowed values: {allowed}")
        else:
            msg = e["msg"].replace("Input should be", "must be").replace("Value error, ", "")
            # a URL with a credential is never echoed: the message goes to the terminal and logs
            echo = e["type"] not in ("missing", URL_CREDENTIALS_ERROR) and not isinstance(e.get("input"), (dict, list))
            got = f" (got {e['input']!r})" if echo else ""
            lines.append(f"{where}: {msg}{got}")
    return lines


# ---- the recipe as the run folder keeps it ------------------------------------------------------------
OUTSIDE = "<outside the project>"


def portable_recipe(data: dict, project_root: Path) -> dict:
    """The resolved recipe (`Recipe.model_dump(mode="json")`) as recipe.yaml and the dataset card
    hold it: a run folder and a dataset are shared, so they name no folder of this machine. An
    absolute path inside the project becomes relative to it (as the recipe's own relative paths
    are); one inside an allowed root outside the project becomes `<allowed_roots[i]>/...`, that
    root `<outside the project>`; any other keeps its last component. What was shortened is
    still told apart on resume by `recipe_fingerprint`."""
    out = json.loads(json.dumps(data))
    roots = [_outside_root(r, project_root) for r in data.get("allowed_roots") or []]
    for holder, key in _path_fields(out):
        holder[key] = _portable_path(holder[key], project_root, roots)
    out["allowed_roots"] = [OUTSIDE if root is not None else kept for root, kept in zip(roots, out.get("allowed_roots") or [])]
    return out


def recipe_fingerprint(data: dict) -> str:
    """Identifies the recipe as given, absolute paths included (recipe.yaml keeps only this digest of them)."""
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _path_fields(data: dict):
    """(container, key) of every local path in a dumped recipe."""
    for spec in data.get("inputs") or []:
        yield from ((spec, k) for k in ("glob", "manifest") if isinstance(spec.get(k), str))
    roots = data.get("allowed_roots") or []
    yield from ((roots, i) for i in range(len(roots)))
    teacher = data.get("teacher") or {}
    if isinstance(teacher.get("cache_dir"), str):
        yield teacher, "cache_dir"
    for stage in data.get("stages") or []:
        model = REGISTRY[stage["stage"]].params_model if stage.get("stage") in REGISTRY else None
        yield from ((stage, k) for k in (model.path_fields if model else ()) if isinstance(stage.get(k), str))


def _outside_root(root: str, project_root: Path) -> Path | None:
    """An allowed root given as an absolute path outside the project (None for any other)."""
    path = Path(root)
    return path if path.is_absolute() and _relative(path, project_root) is None else None


def _portable_path(value: str, project_root: Path, outside_roots: list[Path | None]) -> str:
    path = Path(value)
    if not path.is_absolute():
        return value  # relative to the project already (or ~: the user's home, on any machine)
    inside = _relative(path, project_root)
    if inside is not None:
        return inside
    for i, root in enumerate(outside_roots):
        rel = _relative(path, root) if root is not None else None
        if rel is not None:
            return f"<allowed_roots[{i}]>" + ("" if rel == "." else "/" + rel)
    return f"{OUTSIDE}/{path.name}" if path.name else OUTSIDE


def _relative(path: Path, base: Path) -> str | None:
    """`path` relative to `base` (POSIX, "." for base itself), by its text or once links are
    resolved; None when it is not inside. Glob characters stay as they are."""
    for p, b in ((Path(os.path.normpath(path)), Path(os.path.normpath(base))), (_resolved(path), _resolved(base))):
        if p == b or b in p.parents:
            return p.relative_to(b).as_posix()
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: only the text is compared
        return path


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source} is not valid: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        lines = format_errors(err, data)
        raise RecipeError(f"{source} is not valid:\n  " + "\n  ".join(lines)) from None


def load_recipe(path: Path | str) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{path} is not valid YAML: {err}") from None
    return parse_recipe(data, str(path))
