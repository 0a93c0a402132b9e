"""The `vstw` command line. Each command group lives in pipelines/commands/<name>.py and exposes
`register(app)`; this file only assembles them, so adding a command touches one file."""

from __future__ import annotations

import importlib
import pkgutil

import typer

import pipelines.commands

app = typer.Typer(
    name="vstw",
    help="Build, check, review, query and train on Video Streaming Thinking (VST) data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in sorted(m.name for m in pkgutil.iter_modules(pipelines.commands.__path__)):
    if not module.startswith("_"):
        importlib.import_module(f"pipelines.commands.{module}").register(app)


if __name__ == "__main__":
    app()
