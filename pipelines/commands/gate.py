"""vstw gate report RUN: what the simulated teacher injected into a run, and what the gate let through."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.commands._util import fail, project_root, resolve_run

DEFAULT_LOG = Path("data") / "teacher-sim" / "injections.jsonl"


def register(app: typer.Typer) -> None:
    gate = typer.Typer(help="Measure the quality gate on a run made with the simulated teacher.", no_args_is_help=True)
    app.add_typer(gate, name="gate")

    @gate.command("report")
    def report_cmd(
        run: str = typer.Argument(..., help="run name or folder"),
        log: Path = typer.Option(None, "--log", help=f"the simulated teacher's injection log (default: the run's reports/injections.jsonl, else {DEFAULT_LOG})"),
        as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    ):
        """Per mistake kind: injected and caught; false rejects of clean chains; share of exported chains that are right."""
        from pipelines.gate_report import GateReportError, format_report, gate_report, read_injections
        from pipelines.rundir import RunDir

        run_dir = RunDir(resolve_run(run))
        if log is None:
            in_run = Path(run_dir.path("reports", "injections.jsonl"))
            log = in_run if in_run.is_file() else project_root() / DEFAULT_LOG
        try:
            report = gate_report(run_dir, read_injections(log))
        except (FileNotFoundError, ValueError, GateReportError) as err:
            fail(str(err))
        if as_json:
            print(json.dumps(report.as_json()))
        else:
            print(format_report(report))  # plain: a table that rich would wrap
