"""vstw import FORMAT SOURCE --videos DIR --out manifest.jsonl: annotations a researcher already
has (subtitles, dense captions, narrations, ASR) as a manifest the recipes read."""

from __future__ import annotations

from pathlib import Path

import typer

from rich.markup import escape

from pipelines.commands._util import console, echo_line, fail, show_progress


def say(line: str) -> None:
    echo_line(escape(line))  # paths and cue texts hold brackets, which rich would read as markup


def register(app: typer.Typer) -> None:
    from curation.importers import FORMATS

    formats_help = "; ".join(f"{name}: {what}" for name, (_, what) in FORMATS.items())

    @app.command("import")
    def import_cmd(
        fmt: str = typer.Argument(..., metavar="FORMAT", help=f"one of: {', '.join(FORMATS)}"),
        source: Path = typer.Argument(..., help=f"what to read. {formats_help}"),
        videos: Path = typer.Option(..., "--videos", help="the folder holding the videos (searched recursively; matched by file stem)"),
        out: Path = typer.Option(..., "--out", help="the manifest to write (JSON Lines); a report goes beside it (<name>.report.json)"),
        workers: int = typer.Option(2, min=1, help="videos probed at once"),
        show: int = typer.Option(10, help="problems printed (all of them are in the report)"),
    ):
        """Write a manifest whose rows carry timestamped annotations (kind caption, narration, asr or subtitle)."""
        from pipelines.importer import import_annotations, report_path

        if fmt not in FORMATS:
            fail(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        if not source.exists():
            fail(f"{source}: no such file or folder")
        if not videos.is_dir():
            fail(f"--videos {videos}: not a folder")
        if out.suffix.lower() != ".jsonl":
            fail(f"--out {out}: a manifest is a .jsonl file")

        def progress(items, total):
            if not show_progress() or total < 2:
                return items
            from rich.progress import track

            return track(items, total=total, description="probing videos", console=console)

        report = import_annotations(fmt, source, videos, out, workers=workers, progress=progress)
        say(f"{report.rows} videos with {report.annotations_kept} annotations -> {out}")
        say(f"read {report.annotations_read} annotations; {report.keys_without_video} ids without a video, "
                  f"{report.videos_without_annotations} videos without annotations, {report.videos_unreadable} videos unreadable")  # fmt: skip
        dropped, noted = report.dropped_by_reason(), report.adjusted_by_reason()
        if dropped:
            say("dropped: " + ", ".join(f"{reason} {n}" for reason, n in dropped.most_common()))
        if noted:
            say("noted (kept): " + ", ".join(f"{reason} {n}" for reason, n in noted.most_common()))
        for problem in report.problems[:show]:
            say(f"  {problem.reason}: {problem.message}")
        if len(report.problems) > show:
            say(f"  ... {len(report.problems) - show} more in {report_path(out)}")
        else:
            say(f"report: {report_path(out)}")
        if report.rows:
            folder = videos.resolve()
            say(f"use it in a recipe: inputs: [{{manifest: {out}}}]  allowed_roots: [{folder}]")
        else:
            fail("no video got annotations: nothing to run (see the problems above)", code=1)
