"""vstw review serve / push / pull / summary: human review of chains in Label Studio."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.commands._util import console, err_console, fail, project_root, resolve_run

review_app = typer.Typer(help="Human review of chains in Label Studio (docs/review.md).", no_args_is_help=True)

URL_HELP = "a Label Studio of your own (token from VSTW_LS_TOKEN); default: the one `vstw review serve` started"
ROOT_HELP = "the folder Label Studio serves videos from (its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)"


def _home() -> Path:
    from annotation.server import home_dir

    return home_dir(project_root())


def _connect(url: str | None, document_root: Path | None):
    from annotation.client import ReviewError, connect_local_or_remote

    try:
        return connect_local_or_remote(_home(), url, document_root)
    except ReviewError as err:
        fail(str(err))


@review_app.command("serve")
def serve_cmd(
    port: int = typer.Option(None, "--port", help="port on 127.0.0.1 (default: a free one)"),
    stop: bool = typer.Option(False, "--stop", help="stop the server this project started"),
    document_root: Path = typer.Option(None, "--document-root", help=ROOT_HELP + " (default: data/, or VSTW_LS_DOCUMENT_ROOT)"),
):
    """Start the local Label Studio (creating .venv-ls if needed) and wait until it is healthy."""
    from annotation import server

    home = _home()
    if stop:
        info = server.stop(home)
        console.print(f"stopped Label Studio (pid {info.pid}, {info.url})" if info else "no Label Studio started from this project is running")
        return
    try:
        if not (server.venv_dir() / "bin" / "label-studio").exists():
            console.print(f"creating {server.venv_dir()} with label-studio=={server.LS_VERSION} (a few minutes, once)")
        info = server.start(home, document_root or server.default_document_root(project_root()), port)
    except server.ServerError as err:
        fail(str(err))
    creds = server.load_credentials(home)
    console.print(f"Label Studio ready at [bold]{info.url}[/] (pid {info.pid})")
    console.print(f"  log in as {creds.username}; password and API token in {home / 'credentials.json'} (or VSTW_LS_PASSWORD / VSTW_LS_TOKEN)")
    console.print(f"  videos served from {info.document_root}; stop with `vstw review serve --stop`")


@review_app.command("push")
def push_cmd(
    run: str = typer.Argument(..., help="run name or folder"),
    where: str = typer.Option(None, "--where", help="SQL predicate over the chains table, e.g. \"qa.type = 'multiple_choice'\""),
    sample: int = typer.Option(None, "--sample", min=1, help="push a random sample of N of the chosen chains"),
    seed: int = typer.Option(0, "--seed", help="seed of --sample"),
    url: str = typer.Option(None, "--url", help=URL_HELP),
    document_root: Path = typer.Option(None, "--document-root", help=ROOT_HELP),
    project: str = typer.Option(None, "--project", help="project title (default: 'vstw RUN')"),
):
    """Import chains as tasks (teacher output as predictions); chains already pushed are skipped."""
    from annotation.client import ReviewError
    from annotation.push import push_chains, select_chains
    from pipelines.rundir import RunDir

    run_dir = RunDir(resolve_run(run, local=True))
    conn = _connect(url, document_root)
    try:
        chains = select_chains(run_dir, where, sample, seed)
        report = push_chains(conn, run_dir, chains, project)
    except ReviewError as err:
        fail(str(err))
    console.print(
        f"project {report.project_title!r} (id {report.project_id}) at {report.url}: "
        f"{report.created} tasks created, {report.already_there} already there, {len(report.skipped)} skipped"
    )
    for item in report.skipped:
        err_console.print(f"  skipped {item['chain_id']}: [{item['reason']}] {item['error']}", highlight=False, soft_wrap=True)
    console.print(f"  open {report.url}/projects/{report.project_id}/data")


@review_app.command("pull")
def pull_cmd(
    run: str = typer.Argument(..., help="run name or folder"),
    url: str = typer.Option(None, "--url", help=URL_HELP),
    project: str = typer.Option(None, "--project", help="project title (default: 'vstw RUN')"),
):
    """Write the project's annotations into the run's `reviews` table (idempotent)."""
    from annotation.client import ReviewError
    from annotation.pull import pull_reviews
    from pipelines.rundir import RunDir
    from pipelines.runlock import RunLockedError, run_lock

    run_dir = RunDir(resolve_run(run, local=True))
    conn = _connect(url, None)
    try:
        with run_lock(run_dir.root, echo=console.print):  # it writes the run's reviews table
            summary = pull_reviews(conn, run_dir, project)
    except (ReviewError, RunLockedError) as err:
        fail(str(err))
    console.print(
        f"{summary['annotations']} annotations from {summary['tasks']} tasks: {summary['ok']} reviews ok, "
        f"{sum(summary['failed_by_reason'].values())} failed; reviews table: {summary['rows']} rows "
        f"({summary['parts_written']} parts written)"
    )
    if summary["kept_from_earlier_pulls"]:
        console.print(f"  kept {summary['kept_from_earlier_pulls']} reviews from earlier pulls whose annotation or task is no longer in Label Studio")
    if summary["not_in_run"]:
        console.print(f"  {summary['not_in_run']} reviews are of chains no longer in the run (kept, not applied)")
    for message in summary["failed_messages"]:
        err_console.print(f"  {message}", highlight=False, soft_wrap=True)


@review_app.command("summary")
def summary_cmd(run: str = typer.Argument(..., help="run name or folder")):
    """The run's review numbers as JSON (what `vstw stats` shows)."""
    from annotation.summary import review_summary
    from pipelines.rundir import RunDir

    console.print_json(json.dumps(review_summary(RunDir(resolve_run(run, local=True)))))


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
