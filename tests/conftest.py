"""Shared fixtures: the project root, the sample data, and a helper to run recipes into tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never reach a model hub; everything they load is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VSTW_PROGRESS", "0")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def samples(project_root) -> Path:
    """The sample data (idempotent: `make samples` usually made it already)."""
    from pipelines.samples import make_samples

    return make_samples(project_root)


@pytest.fixture
def run_recipe_dict(tmp_path, project_root):
    """Run a recipe given as a dict into tmp_path/runs/<run>; returns the RunDir."""
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe

    def _run(data: dict, run: str = "t", root: Path | None = None) -> RunDir:
        recipe = parse_recipe(data)
        run_recipe(recipe, run, root or project_root, tmp_path / "runs", progress=False, echo=lambda *_: None)
        return RunDir(tmp_path / "runs" / run)

    return _run
