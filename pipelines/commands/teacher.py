"""vstw teacher serve | stop | status | usage: the embedded llama.cpp teacher and teacher usage."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from pipelines.commands._util import console, fail, project_root, resolve_run


def register(app: typer.Typer) -> None:
    teacher = typer.Typer(help="The embedded teacher server (llama.cpp + Gemma 3 270M) and teacher usage.", no_args_is_help=True)
    app.add_typer(teacher, name="teacher")

    @teacher.command("serve")
    def serve_cmd(
        port: int = typer.Option(None, "--port", help="default: a free port"),
        threads: int = typer.Option(2, "--threads", help="CPU threads for generation"),
        n_ctx: int = typer.Option(2048, "--n-ctx", help="context size in tokens"),
        model: Path = typer.Option(None, "--model", help="a GGUF file (default: the Gemma 3 270M from PyPI)"),
        stop: bool = typer.Option(False, "--stop", help="stop the running server instead"),
    ):
        """Start the embedded teacher in the background (recipes reach it as `base_url: embedded`)."""
        from pipelines.teacher_server import TeacherServerError, start_server

        if stop:
            return _stop()
        try:
            info = start_server(project_root(), port=port, model_path=model, n_ctx=n_ctx, threads=threads)
        except TeacherServerError as err:
            fail(str(err))
        console.print(f"teacher running: {info.base_url} (model {info.model}, pid {info.pid}, log {info.log})")
        console.print("stop it with: vstw teacher stop")

    def _stop():
        from pipelines.teacher_server import stop_server

        info = stop_server(project_root())
        console.print(f"stopped the teacher server (pid {info.pid})" if info else "no teacher server was running")

    @teacher.command("stop")
    def stop_cmd():
        """Stop the embedded teacher started by `vstw teacher serve` (by its pid)."""
        _stop()

    @teacher.command("simulate")
    def simulate_cmd(
        port: int = typer.Option(0, "--port", help="0: a free port"),
        rate: float = typer.Option(0.1, "--rate", min=0.0, max=1.0, help="share of teacher items that get a mistake"),
        kinds: str = typer.Option("", "--kinds", help="comma-separated mistake kinds (default: all; see docs/teacher.md)"),
        seed: int = typer.Option(0, "--seed", help="which items get which mistake"),
        log: Path = typer.Option(None, "--log", help="injection log, JSON lines (default: data/teacher-sim/injections.jsonl)"),
        wordings: str = typer.Option("seen", "--wordings", help="seen: the mistake wordings the checks were built against; heldout: other wordings of the same mistakes"),
        stop: bool = typer.Option(False, "--stop", help="stop the running simulated teacher instead"),
    ):
        """Start the simulated teacher in the background: faithful replies, known mistakes at --rate, each logged."""
        from pipelines.teacher_sim import SimulatorProcessError, start_simulator, stop_simulator

        if stop:
            info = stop_simulator(project_root())
            console.print(f"stopped the simulated teacher (pid {info.pid})" if info else "no simulated teacher was running")
            return
        try:
            info = start_simulator(project_root(), port=port, rate=rate, kinds=[k.strip() for k in kinds.split(",") if k.strip()] or None, seed=seed, log_path=log, wordings=wordings)
        except (SimulatorProcessError, ValueError) as err:
            fail(str(err))
        console.print(f"simulated teacher running: {info.base_url} (pid {info.pid}, rate {info.rate}, seed {info.seed})", highlight=False, soft_wrap=True)
        console.print(f"injections logged to {info.log}; recipe: teacher.text.base_url: {info.base_url}", highlight=False, soft_wrap=True)
        console.print("stop it with: vstw teacher simulate --stop", highlight=False)

    @teacher.command("status")
    def status_cmd():
        """Whether the embedded teacher runs, and where."""
        from pipelines.teacher_server import read_state

        info = read_state(project_root())
        if info is None:
            console.print("no teacher server running (start one with: vstw teacher serve)")
            raise typer.Exit(1)
        console.print(f"running: {info.base_url} (model {info.model}, pid {info.pid})")

    @teacher.command("usage")
    def usage_cmd(run: str = typer.Argument(..., help="run name or folder"), as_json: bool = typer.Option(False, "--json")):
        """Teacher requests, tokens, cache hits, retries, failures and cost per stage of a run."""
        from curation.teacher.usage import summarize_usage
        from pipelines.rundir import RunDir

        run_dir = RunDir(resolve_run(run))
        summary = summarize_usage(run_dir.read_rows("teacher_usage") if run_dir.has_table("teacher_usage") else [])
        if as_json:
            console.print_json(json.dumps(summary))
            return
        table = Table(title=f"teacher usage, run {run_dir.name}")
        for col in ("stage", "calls", "requests", "cache hits", "retries", "repairs", "failures", "prompt tok", "completion tok", "cost USD"):
            table.add_column(col)
        for stage, s in summary.items():
            table.add_row(stage, *(str(s[k]) for k in ("calls", "requests", "cache_hits", "retries", "repairs", "failures", "prompt_tokens", "completion_tokens")), f"{s['cost_usd']:.4f}")
        console.print(table)
