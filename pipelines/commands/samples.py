"""vstw samples: materialise the sample data (idempotent)."""

from __future__ import annotations

import typer

from pipelines.commands._util import console, project_root


def register(app: typer.Typer) -> None:
    @app.command("samples")
    def samples_cmd(
        synthetic: int = typer.Option(4, help="how many synthetic videos"),
        seed: int = typer.Option(7, help="seed of the synthetic set"),
    ):
        """Copy the real sample videos and generate the synthetic ones (with ground truth)."""
        from pipelines.samples import make_samples

        manifest = make_samples(project_root(), synthetic, seed)
        console.print(f"samples ready: {manifest}")
