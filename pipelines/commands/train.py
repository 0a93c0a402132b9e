"""vstw train --sft EXPORT --model PATH [--steps N];
vstw train compare --a A --b B [--eval GOLD | --eval-worlds N --eval-seed S] [--seeds 0,1,2] [--json];
vstw train gold OUT (a gold set from the synthetic ground truth)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from pipelines.commands._util import console, err_console, fail, project_root


def _config(steps, lr, grad_accum, eval_fraction, eval_every, seed, frame_width, lora, device, threads):
    from curation.model.trainer import TrainConfig

    return TrainConfig(
        steps=steps, lr=lr, grad_accum=grad_accum, eval_fraction=eval_fraction, eval_every=eval_every,
        seed=seed, frame_width=frame_width, lora=lora, device=device, threads=threads,
    )  # fmt: skip


def _model(model: str) -> Path:
    """'tiny' -> data/models/tiny (built on first use), else the given folder."""
    if model == "tiny":
        path = project_root() / "data" / "models" / "tiny"
        if not (path / "config.json").exists():
            from curation.model.tiny import init_tiny

            init_tiny(path)
        return path
    path = Path(model)
    if not (path / "config.json").is_file():
        fail(f"--model {model}: not a model folder (no config.json); build a tiny one with `vstw model init-tiny PATH`")
    return path


def _default_out(kind: str) -> Path:
    return project_root() / "data" / "train" / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Minimal SFT trainer: does this data teach?", no_args_is_help=True)

    common = dict(
        steps=typer.Option(30, help="optimizer steps"),
        lr=typer.Option(1e-3, help="learning rate (tiny model: 1e-3; real weights: 1e-5 full, 1e-4 LoRA)"),
        grad_accum=typer.Option(1, help="records per optimizer step"),
        eval_fraction=typer.Option(0.2, help="share of records held out"),
        eval_every=typer.Option(10, help="held-out loss every N steps"),
        seed=typer.Option(0),
        frame_width=typer.Option(0, help="decode frames at most this wide (0: native)"),
        lora=typer.Option(False, help="train LoRA adapters (peft) instead of all weights"),
        device=typer.Option("auto", help="auto, cpu, cuda ..."),
        threads=typer.Option(None, help="torch CPU threads"),
        video_root=typer.Option([], help="folders relative video paths are joined on (repeatable)"),
    )

    @train_app.callback(invoke_without_command=True)
    def train_cmd(
        ctx: typer.Context,
        sft: Path = typer.Option(None, "--sft", help="SFT export: a .jsonl file or a folder of them"),
        model: str = typer.Option("tiny", "--model", help="model folder (Qwen2.5-VL / VST weights), or 'tiny'"),
        out: Path = typer.Option(None, "--out", help="output folder (default data/train/sft-TIME)"),
        steps: int = common["steps"],
        lr: float = common["lr"],
        grad_accum: int = common["grad_accum"],
        eval_fraction: float = common["eval_fraction"],
        eval_every: int = common["eval_every"],
        seed: int = common["seed"],
        frame_width: int = common["frame_width"],
        lora: bool = common["lora"],
        device: str = common["device"],
        threads: int = common["threads"],
        video_root: list[Path] = common["video_root"],
    ):
        """Fine-tune on an SFT export; writes the checkpoint, metrics.jsonl, loss.png, summary.json."""
        if ctx.invoked_subcommand is not None:
            return
        if sft is None:
            fail("give --sft EXPORT (a .jsonl file or a folder of them), or a subcommand (compare, gold)")
        if not sft.exists():
            fail(f"--sft {sft}: not found")
        from curation.model.trainer import train_sft

        out = out or _default_out("sft")
        config = _config(steps, lr, grad_accum, eval_fraction, eval_every, seed, frame_width, lora, device, threads)
        try:
            summary = train_sft(sft, _model(model), out, config, [*video_root, *_export_roots(sft), project_root()], log=console.print)
        except ValueError as err:
            fail(f"--sft {sft}: {err}")
        console.print(
            f"trained {summary['trained_on']} records ({summary['held_out']} held out, {sum(summary['skipped'].values())} skipped): "
            f"train loss {summary['first_window_train_loss']:.4f} -> {summary['last_window_train_loss']:.4f}; checkpoint {summary['checkpoint']}"
        )

    @train_app.command("compare")
    def compare_cmd(
        a: Path = typer.Option(..., "--a", help="first SFT export"),
        b: Path = typer.Option(..., "--b", help="second SFT export"),
        eval: Path = typer.Option(None, "--eval", help="evaluation set: a .jsonl of SFT records, or a folder of synthetic ground truth (default: held-out worlds, see --eval-worlds)"),
        eval_worlds: int = typer.Option(12, "--eval-worlds", help="without --eval: this many synthetic worlds of --eval-seed, written into data/heldout/SEED/ if missing"),
        eval_seed: int = typer.Option(None, "--eval-seed", help="seed of the held-out worlds; must differ from the training corpus's seed (default 9001)"),
        allow_overlap: bool = typer.Option(False, "--allow-overlap", help="evaluate even when evaluation videos are in a training export (the report is marked NOT HELD OUT)"),
        seeds: str = typer.Option(None, "--seeds", help="training seeds, comma separated (e.g. 0,1,2): each arm is trained once per seed; default --seed"),
        json_out: bool = typer.Option(False, "--json", help="end with one line holding the report as one JSON object"),
        keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="save every arm x seed checkpoint under OUT/ARM/seed-S/"),
        model: str = typer.Option("tiny", "--model"),
        out: Path = typer.Option(None, "--out", help="output folder (default data/train/compare-TIME)"),
        steps: int = common["steps"],
        lr: float = common["lr"],
        grad_accum: int = common["grad_accum"],
        eval_fraction: float = common["eval_fraction"],
        eval_every: int = common["eval_every"],
        seed: int = common["seed"],
        frame_width: int = common["frame_width"],
        lora: bool = common["lora"],
        device: str = common["device"],
        threads: int = common["threads"],
        video_root: list[Path] = common["video_root"],
    ):
        """Same model, same budget, two exports, one run per seed: eval loss and answer accuracy on
        videos neither export trained on, with the spread over seeds, in one report."""
        for name, path in (("--a", a), ("--b", b), ("--eval", eval)):
            if path is not None and not path.exists():
                fail(f"{name} {path}: not found")
        from curation.model.trainer import compact_report, compare

        seed_list = parse_seeds(seeds) if seeds else [seed]
        if eval is None:
            eval, limit = heldout_set(eval_worlds, eval_seed)
        else:
            limit = None
            if eval_seed is not None:
                fail("--eval-seed writes held-out worlds; give it without --eval (or drop it)")
        out = out or _default_out("compare")
        config = _config(steps, lr, grad_accum, eval_fraction, eval_every, seed_list[0], frame_width, lora, device, threads)
        roots = [*video_root, *_export_roots(a), *_export_roots(b), project_root()]
        try:
            report = compare(
                a, b, eval, _model(model), out, config, roots, log=lambda *_: None, seeds=seed_list,
                allow_overlap=allow_overlap, eval_limit=limit, keep_checkpoints=keep_checkpoints, warn=_warn,
            )  # fmt: skip
        except (ValueError, FileNotFoundError) as err:  # EvalOverlap is a ValueError
            fail(str(err))
        print((out / "report.md").read_text())
        print(f"report: {out / 'report.md'} ({report['verdict']})")
        if json_out:
            print(json.dumps(compact_report(report)))

    @train_app.command("gold")
    def gold_cmd(
        out: Path = typer.Argument(..., help="the gold .jsonl to write"),
        synthetic: Path = typer.Option(None, help="folder of synthetic ground truth (default data/samples/synthetic)"),
        seed: int = typer.Option(0),
    ):
        """Write a gold set (SFT records) from the synthetic videos' ground truth."""
        from curation.model.gold import write_gold

        folder = synthetic or project_root() / "data" / "samples" / "synthetic"
        path = write_gold(folder, out, seed)
        console.print(f"gold set: {path}")

    app.add_typer(train_app, name="train")


def _export_roots(path: Path) -> list[Path]:
    """The dataset root of an export (the folder holding manifest.json and videos/): relative
    video paths in its SFT files are joined on it, as VST's trainer joins them on its data root."""
    for folder in [path if path.is_dir() else path.parent, *path.resolve().parents]:
        if (folder / "manifest.json").is_file() and (folder / "videos").is_dir():
            return [folder]
    return []



def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; a clear error for anything else (duplicates included)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--seeds {text!r}: give integers separated by commas, e.g. 0,1,2")
    if not seeds or len(set(seeds)) != len(seeds):
        fail(f"--seeds {text!r}: give distinct integers separated by commas, e.g. 0,1,2")
    return seeds


def heldout_set(count: int, seed: int | None) -> tuple[Path, int]:
    """data/heldout/SEED/ with its first `count` synthetic worlds written (kept when present)."""
    from curation.model.gold import HELDOUT_SEED, ensure_heldout, heldout_folder

    seed = HELDOUT_SEED if seed is None else seed
    if count < 1:
        fail(f"--eval-worlds {count}: need at least 1")
    folder = ensure_heldout(heldout_folder(project_root(), seed), count, seed)
    return folder, count


def _warn(message: str) -> None:
    err_console.print(message, style="bold red", markup=False, highlight=False, soft_wrap=True)
