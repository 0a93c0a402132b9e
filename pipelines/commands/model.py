"""vstw model init-tiny PATH: write a tiny offline Qwen2.5-VL for tests, demos and benchmarks."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.commands._util import console


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(help="VST models: build a tiny one offline.", no_args_is_help=True)

    @model_app.command("init-tiny")
    def init_tiny_cmd(
        path: Path = typer.Argument(..., help="folder to write the model, tokenizer and processor to"),
        seed: int = typer.Option(1234, help="seed of the random weights"),
        hidden: int = typer.Option(64, help="text hidden size (multiple of 4)"),
        layers: int = typer.Option(2, help="decoder layers"),
    ):
        """A tiny random Qwen2.5-VL in Hugging Face format (loadable with from_pretrained, offline)."""
        from curation.model.tiny import init_tiny

        init_tiny(path, seed=seed, hidden=hidden, layers=layers)
        console.print(f"tiny Qwen2.5-VL written to {path}")

    app.add_typer(model_app, name="model")
