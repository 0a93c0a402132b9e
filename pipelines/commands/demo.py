"""vstw demo: the sample data through the demo recipe, end to end, with the embedded defaults."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import typer

from pipelines.commands._util import console, echo_line, fail, project_root, runs_root, show_progress

DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(recipe: Path = typer.Option(DEMO_RECIPE, help="recipe to run (default: the demo recipe)")):
        """Make the samples, run the demo recipe, and say where everything is."""
        from pipelines.recipe import RecipeError, load_recipe
        from pipelines.rundir import run_location, safe_run_name
        from pipelines.runlock import RunLockedError, run_lock
        from pipelines.samples import make_samples

        root = project_root()
        make_samples(root)
        try:
            parsed = load_recipe(recipe)
        except RecipeError as err:
            fail(str(err))
        # The run name follows the recipe's content: an unchanged demo resumes (or does nothing),
        # a changed one starts a fresh run instead of refusing.
        digest = hashlib.sha256(recipe.read_bytes()).hexdigest()[:8]
        name = f"{safe_run_name(parsed.name)}-{digest}"
        console.print(f"[bold]demo[/]: recipe {recipe} -> run {name}")
        try:
            # held before the teacher starts: a second demo must neither start nor stop a teacher
            with run_lock(run_location(runs_root(), name), echo=echo_line):
                _run_with_teacher(parsed, name, root)
        except (RecipeError, RunLockedError) as err:
            fail(str(err))
        run_dir = runs_root() / name
        console.print(f"\n[bold green]demo finished[/]: {run_dir}")
        for sub in sorted(p.name for p in run_dir.iterdir() if p.is_dir()):
            console.print(f"  {run_dir / sub}")
        console.print(f"\nnext: vstw show {name}   |   vstw status {name}   |   vstw stats {name} --html   |   vstw validate sft {run_dir}/exports/sft")


def _run_with_teacher(recipe, name: str, root: Path) -> None:
    from pipelines.run import run_recipe

    started = _start_embedded_teacher(recipe, root)
    try:
        run_recipe(recipe, name, root, runs_root(), progress=show_progress(), echo=echo_line)
    finally:
        if started:
            from pipelines.teacher_server import stop_server

            stop_server(root)
            console.print("embedded teacher stopped")


def _uses_embedded_teacher(recipe) -> bool:
    teacher = recipe.teacher
    if teacher is None:
        return False
    endpoints = [getattr(teacher, "text", None), getattr(teacher, "vision", None)]
    return any(e is not None and e.base_url == "embedded" for e in endpoints)


def _start_embedded_teacher(recipe, root: Path) -> bool:
    """Start llama.cpp's server for a recipe that asks for `base_url: embedded`, unless one is
    already running (then it is left running). True when this call started it."""
    if not _uses_embedded_teacher(recipe) or os.environ.get("VSTW_TEACHER_URL"):
        return False
    from pipelines.teacher_server import TeacherServerError, read_state, start_server

    if read_state(root) is not None:
        return False
    console.print("starting the embedded teacher (llama.cpp + Gemma 3 270M, 127.0.0.1) ...")
    try:
        info = start_server(root)
    except TeacherServerError as err:
        fail(str(err))
    console.print(f"embedded teacher ready at {info.base_url} (pid {info.pid})")
    return True
