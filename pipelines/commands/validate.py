"""vstw validate sft PATH / vstw validate rl PATH: per-record errors, exit 1 when any record is bad."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from pipelines.commands._util import console, err_console, fail

MAX_SHOWN = 50  # problems listed in full; the summary counts all of them


def _print_report(report, show_tokens: bool = False) -> None:
    problems = report.problems()
    for p in problems[:MAX_SHOWN]:
        err_console.print(f"[red]{escape(report.path.name)}[/] {escape(str(p))}", highlight=False, soft_wrap=True)
    if len(problems) > MAX_SHOWN:
        err_console.print(f"... and {len(problems) - MAX_SHOWN} more problems", highlight=False)
    if show_tokens:
        rendered = [r for r in report.records if r.tokens is not None]
        if rendered:
            table = Table(title=f"tokens per record ({report.path.name})")
            for col in ("record", "tokens", "labelled", "frames"):
                table.add_column(col, justify="right")
            for r in rendered[:MAX_SHOWN]:
                table.add_row(r.where, str(r.tokens), str(r.label_tokens), str(r.frames))
            console.print(table)
            total = sum(r.tokens for r in rendered)
            console.print(f"tokens: total {total}, mean {total / len(rendered):.0f}, max {max(r.tokens for r in rendered)} over {len(rendered)} rendered records")
            _print_counter(report.counted_by)
    bad = len(report.bad_records)
    verdict = "[green]OK[/]" if report.ok else "[red]INVALID[/]"
    console.print(f"{verdict} {escape(str(report.path))}: {len(report.records)} records, {bad} bad, {len(report.file_problems)} file problems", highlight=False, soft_wrap=True)


def _print_counter(counter) -> None:
    """Say which processor counted the tokens: the tiny offline one's counts are not Qwen's."""
    if counter is None:
        return
    console.print(f"tokens counted by {escape(str(counter))}", highlight=False, soft_wrap=True)
    if not counter.qwen_vocabulary:
        console.print("[yellow]these are not Qwen2.5-VL token counts[/]: render with --processor <Qwen2.5-VL or VST folder> for real ones", highlight=False, soft_wrap=True)


def _load_processor(processor: str | None, tiny: bool):
    if processor:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(processor, local_files_only=True)
    if tiny:
        from curation.model.tiny import build_processor, tokenizer_corpus, train_tokenizer

        return build_processor(train_tokenizer(tokenizer_corpus()))
    return None


def _is_sidecar(path: Path) -> bool:
    """Seek indexes and provenance files sit beside the data files; they are not data."""
    name = path.name
    if name.endswith("_with_seeks.jsonl"):
        return False
    return name.endswith(("_seeks.jsonl", "_provenance.jsonl", "_provenance.parquet"))


def _files(path: Path, pattern: str) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob(pattern) if not _is_sidecar(p))
    return [path]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Check exported SFT / RL files the way VST's trainers will read them.", no_args_is_help=True)
    app.add_typer(group, name="validate")

    @group.command("sft")
    def sft_cmd(
        path: Path = typer.Argument(..., help="an SFT .jsonl, or a folder of them (exports/sft)"),
        video_root: Path = typer.Option(None, help="folder relative video paths are joined to (default: the export root, the folder above sft/)"),
        processor: str = typer.Option(None, help="local folder of a Qwen2.5-VL processor (VST or Qwen weights folder) to render with"),
        tiny: bool = typer.Option(True, help="without --processor: render with the tiny offline Qwen2.5-VL processor (its own small tokenizer and pixel budget: token counts are NOT Qwen's)"),
        render: bool = typer.Option(True, help="render every record into the training conversation (slower)"),
        max_frames: int = typer.Option(384, help="the trainer's FPS_MAX_FRAMES"),
        limit: int = typer.Option(None, help="validate only the first N records of each file"),
    ):
        """Seek offsets, record shape, videos, 2 fps slices, rendering and labels, per record.
        Token counts are printed with the processor that counted them (tiny by default: not Qwen's)."""
        from curation.formats.validate import validate_sft

        files = _files(path, "*.jsonl")
        if not files or not all(f.exists() for f in files):
            fail(f"no SFT JSONL at {path}")
        proc = _load_processor(processor, tiny) if render else None
        bad = 0
        for f in files:
            report = validate_sft(f, video_root, proc, max_frames=max_frames, limit=limit)
            _print_report(report, show_tokens=proc is not None)
            bad += not report.ok
        raise typer.Exit(1 if bad else 0)

    @group.command("rl")
    def rl_cmd(
        path: Path = typer.Argument(..., help="an RL .parquet, or a folder of them (exports/rl)"),
        video_root: Path = typer.Option(None, help="the RL trainer's working directory (default: the export root, the folder above rl/)"),
    ):
        """Columns and types, durations against the videos, ground truths against VST's rewards."""
        from curation.formats.validate import validate_rl

        files = _files(path, "*.parquet")
        if not files or not all(f.exists() for f in files):
            fail(f"no RL Parquet at {path}")
        bad = 0
        for f in files:
            report = validate_rl(f, video_root)
            _print_report(report)
            bad += not report.ok
        raise typer.Exit(1 if bad else 0)
