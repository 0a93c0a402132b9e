"""vstw run RECIPE / vstw status RUN"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from pipelines.commands._util import console, echo_line, fail, project_root, resolve_run, runs_root, show_progress


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        recipe: Path = typer.Argument(..., help="recipe YAML"),
        run: str = typer.Option(None, "--run", help="run name (default: recipe name + date); an existing run is resumed"),
        until: str = typer.Option(None, "--until", help="stop after this stage"),
        runner: str = typer.Option(None, "--runner", help="local or ray (default: the recipe's runner.kind)"),
        address: str = typer.Option(None, "--address", help="ray: cluster address, e.g. auto or ray://HOST:10001 (docs/cluster.md)"),
    ):
        """Run (or resume) a recipe into data/runs/RUN."""
        from pipelines.recipe import RecipeError, load_recipe
        from pipelines.run import run_recipe
        from pipelines.runners.ray_runner import RayRunnerError

        try:
            parsed = load_recipe(recipe)
            name = run or f"{parsed.name}-{datetime.now():%Y%m%d-%H%M%S}"
            console.print(f"run [bold]{name}[/] -> {runs_root() / name}")
            run_recipe(parsed, name, project_root(), runs_root(), progress=show_progress(), echo=echo_line, until=until,
                       runner_kind=runner, address=address)
        except RecipeError as err:
            fail(str(err))
        except RayRunnerError as err:
            fail(str(err))
        console.print(f"done: {runs_root() / name}")

    @app.command("status")
    def status_cmd(run: str = typer.Argument(..., help="run name or folder")):
        """Per stage: parts done, rows ok / failed by reason."""
        from pipelines.rundir import RunDir
        from pipelines.run import run_status

        run_dir = RunDir(resolve_run(run))
        try:
            rows = run_status(run_dir)
        except FileNotFoundError as err:
            fail(str(err))
        table = Table(title=f"run {run_dir.name}")
        for col in ("stage", "table", "state", "parts", "ok", "failed", "failed by reason"):
            table.add_column(col)
        for r in rows:
            state = "complete" if r["complete"] else ("partial" if r["parts_done"] else "not started")
            reasons = ", ".join(f"{k}: {v}" for k, v in r["failed_by_reason"].items())
            table.add_row(r["stage"], r["table"], state, f"{r['parts_done']}/{r['parts_planned']}", str(r["ok"]), str(r["failed"]), reasons)
        console.print(table)
