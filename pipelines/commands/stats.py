"""vstw stats [RUN | --all] [--html] [--json]: the standard corpus report (pipelines/stats.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from pipelines.commands._util import console, fail, project_root, show_progress
from pipelines.commands.sql import known_runs, open_cli_catalog, refresh_persistent_catalog


def print_report(report) -> None:
    from pipelines.stats import format_value

    console.print(f"[bold]Corpus report[/]: {report.scope}")
    for s in report.sections:
        table = Table(title=s.title, title_justify="left", title_style="bold", header_style="bold")
        numeric = [bool(s.rows) and all(isinstance(r[i], (int, float)) or r[i] is None for r in s.rows) for i in range(len(s.columns))]
        for name, is_num in zip(s.columns, numeric):
            table.add_column(name, justify="right" if is_num else "left")
        for row in s.rows:
            table.add_row(*(format_value(col, v) for col, v in zip(s.columns, row)))
        console.print(table)
        if s.note:
            console.print(f"[dim]{s.note}[/]")
        if not s.rows:
            console.print("[dim]no rows[/]")


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_cmd(
        run: str = typer.Argument(None, help="run name or folder (default: the only run, if there is one)"),
        all_runs: bool = typer.Option(False, "--all", help="every run of the runs folder"),
        html: bool = typer.Option(False, "--html", help="also write a self-contained HTML report with plots"),
        out: Path = typer.Option(None, "--out", help="HTML file (default: the run's reports/stats.html)"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of tables"),
        examples: bool = typer.Option(True, "--examples/--no-examples", help="with --html: a gallery of example chains per rejection reason and per check, linked from the report"),
    ):
        """The standard report: videos, clips, windows, chains, thoughts, QA mix, checks, teacher, reviews."""
        import duckdb

        from pipelines.stats import standard_report

        if not run and not all_runs:
            runs = known_runs()
            if len(runs) != 1:
                fail("give a run name or --all" + (f"; known runs: {', '.join(runs)}" if runs else "; there are no runs yet"))
            run = runs[0]
        cat = open_cli_catalog(run, all_runs)
        refresh_persistent_catalog()
        try:
            try:
                report = standard_report(cat)
            except duckdb.Error as err:
                fail(f"the report could not be computed over {cat.scope.label}: {str(err).splitlines()[0]}")
            if as_json:
                print(json.dumps(report.to_json(), indent=2, default=str))
            else:
                print_report(report)
            if html:
                from pipelines.report import write_html_report

                target = out or default_html_path(cat)
                path = write_html_report(cat, target, report=report, examples=examples, progress=show_progress())
                console.print(f"HTML report: {path}")
        finally:
            cat.close()


def default_html_path(cat) -> Path:
    if cat.scope.all_runs:
        return project_root() / "data" / "reports" / "stats-all-runs.html"
    return cat.scope.roots[0] / "reports" / "stats.html"
