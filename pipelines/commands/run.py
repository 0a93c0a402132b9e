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
        runs: str = typer.Option(None, "--runs-root", help="where run folders go: a folder or a URI such as s3://bucket/runs (default: $VSTW_RUNS, else data/runs)"),
    ):
        """Run (or resume) a recipe into data/runs/RUN (or RUNS_ROOT/RUN)."""
        from pipelines.recipe import RecipeError, load_recipe
        from pipelines.rundir import RunDir, RunNameError, check_run_name, is_uri, run_location, safe_run_name
        from pipelines.run import run_recipe
        from pipelines.runlock import RunLockedError
        from pipelines.runners.ray_runner import RayRunnerError

        where = ""
        try:
            parsed = load_recipe(recipe)
            name = check_run_name(run) if run is not None else f"{safe_run_name(parsed.name)}-{datetime.now():%Y%m%d-%H%M%S}"
            root = runs or runs_root()
            target = run_location(root, name)
            RunDir(target)  # a URI with a credential in it is refused here, before it is printed
            where = target
            console.print(f"run [bold]{name}[/] -> {where}")
            run_recipe(parsed, name, project_root(), root, progress=show_progress(), echo=echo_line, until=until,
                       runner_kind=runner, address=address)
        except RunNameError as err:
            fail(f"--run: {err}")
        except (RecipeError, RayRunnerError, RunLockedError) as err:
            fail(str(err))
        except (OSError, ValueError) as err:  # an unreachable or unknown remote filesystem
            if not is_uri(runs or ""):
                raise
            fail(f"cannot use {where or 'the runs root'}: {str(err).splitlines()[0]}")
        console.print(f"done: {where}")

    @app.command("pull")
    def pull_cmd(
        uri: str = typer.Argument(..., help="a run folder elsewhere, e.g. s3://bucket/runs/demo"),
        to: Path = typer.Option(None, "--to", help="the local runs folder (default: data/runs, or $VSTW_RUNS)"),
    ):
        """Copy a remote run here, whole, so that vstw sql / stats / review / train can use it."""
        from pipelines.rundir import RunDir, RunNameError, check_run_name, pull_run

        run_dir = RunDir(resolve_run(uri))
        try:  # the copy is named after the run's last path component: never '..' or empty
            dest = (to or runs_root()) / check_run_name(run_dir.name)
        except RunNameError as err:
            fail(f"cannot pull {uri}: {err}")
        try:
            if not run_dir.has_recipe():
                fail(f"{run_dir.uri} is not a run folder (no recipe.yaml)")
            existing = RunDir(dest)
            if existing.has_recipe() and existing.read_recipe() != run_dir.read_recipe():
                fail(f"{dest} holds another run of the same name; pull with --to ANOTHER_FOLDER")
            n = pull_run(run_dir, dest)
        except (OSError, ValueError) as err:
            fail(f"cannot copy {run_dir.uri}: {str(err).splitlines()[0]}")
        console.print(f"copied {n} files: {run_dir.uri} -> {dest}")

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
