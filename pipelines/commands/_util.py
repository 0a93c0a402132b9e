"""Helpers every command uses: the project root, the runs folder, and clean error exits."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def project_root() -> Path:
    """VSTW_HOME, else the nearest folder above the current one holding pyproject.toml + data/."""
    env = os.environ.get("VSTW_HOME")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "data").is_dir():
            return folder
    return here


def runs_root() -> Path:
    return Path(os.environ.get("VSTW_RUNS", project_root() / "data" / "runs")).resolve()


def resolve_run(run: str, local: bool = False) -> Path | str:
    """A run name (under the runs folder), a path to a run folder, or a run's URI (s3://...).
    `local`: the command needs the run on this machine's disk (a URI is refused, with the way
    to copy the run here)."""
    if "://" in run:
        from pipelines.rundir import filesystem_for

        try:
            filesystem_for(run)  # refuses a URI with a credential in it, without echoing it
        except ValueError as err:
            fail(str(err))
        if local:
            fail(f"{run} is not on this machine's disk; copy it here first: vstw pull {run}")
        return run.rstrip("/")
    candidate = Path(run)
    if candidate.is_dir():
        return candidate.resolve()
    from pipelines.rundir import RunNameError, check_run_name

    try:  # not a folder, so a name: never one that reaches outside the runs folder
        path = runs_root() / check_run_name(run)
    except RunNameError as err:
        fail(f"{run!r} is neither a run folder nor a run name: {err}")
    if not path.is_dir():
        known = sorted(p.name for p in runs_root().glob("*") if p.is_dir()) if runs_root().is_dir() else []
        fail(f"no run named {run!r} in {runs_root()}" + (f"; known runs: {', '.join(known)}" if known else ""))
    return path


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def show_progress() -> bool:
    """Progress bars unless VSTW_PROGRESS=0 (tests and scripts set it)."""
    return os.environ.get("VSTW_PROGRESS", "1") != "0"


def echo_line(line: str) -> None:
    """One line of a run's summary, never wrapped (users grep these lines)."""
    console.print(line, soft_wrap=True, highlight=False)
