"""vstw show RUN [--sample N --seed S | --where SQL | --chain ID ...] [--out FILE]: the chain gallery."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.commands._util import console, fail, show_progress


def register(app: typer.Typer) -> None:
    @app.command("show")
    def show_cmd(
        run: str = typer.Argument(..., help="run name or folder"),
        sample: int = typer.Option(None, "--sample", help="at most N chains, a seeded sample (default 50, or every --chain given)"),
        seed: int = typer.Option(0, "--seed", help="which sample: the same seed gives the same chains"),
        where: str = typer.Option(None, "--where", help='SQL condition over the gallery_chains view, e.g. "NOT exported", "qa_type = \'numerical\'"'),
        chain: list[str] = typer.Option(None, "--chain", help="a chain id to show (repeat for several)"),
        out: Path = typer.Option(None, "--out", help="HTML file (default: the run's reports/gallery.html)"),
        title: str = typer.Option(None, "--title", help="the page's title"),
        per_clip: int = typer.Option(2, "--keyframes-per-clip", min=0, help="keyframes under each thought (taken from the frames VST's loader takes)"),
    ):
        """Write a self-contained HTML page of chains: keyframes, thoughts on their clips, the question
        and answer, every verdict, the export decision, reviews and provenance; filters at the top."""
        from pipelines.commands.sql import open_cli_catalog
        from pipelines.gallery import GalleryError, GalleryRequest, write_gallery

        cat = open_cli_catalog(run, False)
        try:
            target = out or cat.scope.roots[0] / "reports" / "gallery.html"
            request = GalleryRequest(sample=sample, seed=seed, where=where, chain_ids=list(chain or []), title=title, keyframes_per_clip=per_clip)
            try:
                result = write_gallery(cat, request, target, progress=show_progress())
            except GalleryError as err:
                fail(str(err))
        finally:
            cat.close()
        console.print(f"gallery: {result.chains} chains ({result.matched} matched), {result.keyframes} keyframes ({result.decoded} decoded, the rest cached) in {result.seconds:.1f} s")
        for video_id, problem in sorted(result.problems.items()):
            console.print(f"[yellow]no keyframes for {video_id}[/]: {problem}")
        console.print(f"open it: {result.path}")
