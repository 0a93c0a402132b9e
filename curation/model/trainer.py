"""A minimal SFT trainer: does this data teach a model what it should?

`train_sft` renders every record of an SFT export the way VST's loader does
(curation.model.sft_render), trains a Qwen2.5-VL (the tiny one on CPU, real weights on GPU, full
fine-tuning or LoRA through peft) for a fixed number of steps, logs train and held-out loss,
saves the checkpoint, the metrics (JSONL) and a loss plot. `evaluate_gold` measures a model on a
gold set: mean loss on its assistant turns, and answer accuracy when the model is run as VST runs
(spec section 4) with the gold thoughts as memory. `compare` trains the same model with the same
budget on two exports and evaluates both on the same gold set: how a user checks that filtering
helped.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curation.model.sft_render import RecordError, Sample, read_records, render_sft_record


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 30
    lr: float = 1e-3  # right for the tiny model; use ~1e-5 (full) or ~1e-4 (LoRA) on real weights
    weight_decay: float = 0.0
    grad_accum: int = 1
    eval_fraction: float = 0.2  # records held out (at least one, when there are two or more)
    eval_every: int = 10
    seed: int = 0
    frame_width: int = 0  # decode frames at most this wide (0: native); the processor resizes
    lora: bool = False
    lora_rank: int = 8
    device: str = "auto"
    threads: int | None = None  # torch CPU threads


@dataclass
class RenderedSet:
    samples: list[Sample] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    errors: list[str] = field(default_factory=list)


def render_records(records: list[tuple[Path, list]], processor, extra_roots: list[Path], frame_width: int) -> RenderedSet:
    """Render every record; a record VST's loader would skip is counted by reason, not trained on."""
    out = RenderedSet()
    for file, record in records:
        try:
            out.samples.append(render_sft_record(record, processor, [file.parent, *extra_roots], frame_width))
        except RecordError as err:
            out.skipped[err.reason] = out.skipped.get(err.reason, 0) + 1
            out.errors.append(f"{file.name}: {err}")
    return out


def split_held_out(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_eval = 0 if len(samples) < 2 else max(1, int(round(len(samples) * fraction)))
    held = [samples[i] for i in order[:n_eval]]
    train = [samples[i] for i in order[n_eval:]]
    return train, held


def _to(sample: Sample, device) -> dict:
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in sample.model_inputs().items()}


def mean_loss(model, samples: list[Sample]) -> float | None:
    """Token-weighted mean loss over the labelled tokens of the samples."""
    import torch

    if not samples:
        return None
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for sample in samples:
            n = int((sample.labels[1:] != -100).sum())
            if n == 0:
                continue
            total += float(model(**_to(sample, device)).loss) * n
            tokens += n
    return total / tokens if tokens else None


def prepare_model(model, config: TrainConfig):
    if not config.lora:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise RuntimeError("LoRA needs the peft package: pip install peft") from None
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, target_modules=targets, lora_dropout=0.0)
    return get_peft_model(model, lora)


def train_loop(model, train: list[Sample], held: list[Sample], config: TrainConfig, log=print) -> list[dict]:
    """AdamW for `steps` optimizer steps (each over `grad_accum` samples, cycling through the data in
    a seeded order); returns the metrics: train loss per step, held-out loss every eval_every."""
    import torch

    if not train:
        raise ValueError("no training samples (all records were skipped or held out)")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    order: list[int] = []
    metrics = []
    first = mean_loss(model, held)
    metrics.append({"step": 0, "held_out_loss": first})
    started, tokens = time.monotonic(), 0
    for step in range(1, config.steps + 1):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(config.grad_accum):
            if not order:
                order = list(range(len(train)))
                rng.shuffle(order)
            sample = train[order.pop()]
            loss = model(**_to(sample, device)).loss / config.grad_accum
            loss.backward()
            step_loss += float(loss.detach())
            tokens += int(sample.input_ids.numel())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        row = {"step": step, "train_loss": step_loss, "tokens_per_s": tokens / max(1e-9, time.monotonic() - started)}
        if step % config.eval_every == 0 or step == config.steps:
            row["held_out_loss"] = mean_loss(model, held)
        metrics.append(row)
        log(json.dumps(row))
    return metrics


def plot_losses(metrics: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(m["step"], m["train_loss"]) for m in metrics if m.get("train_loss") is not None]
    held = [(m["step"], m["held_out_loss"]) for m in metrics if m.get("held_out_loss") is not None]
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if held:
        ax.plot(*zip(*held), "o-", label="held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def train_sft(export: Path, model_path: Path, out_dir: Path, config: TrainConfig, video_roots: list[Path] | None = None, log=print) -> dict:
    """Train on an SFT export; writes out_dir/{checkpoint/, metrics.jsonl, loss.png, summary.json}."""
    import torch

    from curation.model.tiny import load_model

    if config.threads:
        torch.set_num_threads(config.threads)
    _seed_everything(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, processor = load_model(model_path, device=None if config.device == "auto" else config.device)
    if not config.lora:
        model = model.float() if next(model.parameters()).device.type == "cpu" else model
    rendered = render_records(read_records(export), processor, [Path(export), *(video_roots or [])], config.frame_width)
    train, held = split_held_out(rendered.samples, config.eval_fraction, config.seed)
    model = prepare_model(model, config)
    metrics = train_loop(model, train, held, config, log)
    checkpoint = out_dir / "checkpoint"
    if config.lora:
        model = model.merge_and_unload()  # a plain checkpoint that loads like the base model
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    (out_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    plot_losses(metrics, out_dir / "loss.png", f"SFT on {Path(export).name}")
    losses = [m["train_loss"] for m in metrics if "train_loss" in m]
    summary = {
        "export": str(export),
        "model": str(model_path),
        "records": len(rendered.samples) + sum(rendered.skipped.values()),
        "trained_on": len(train),
        "held_out": len(held),
        "skipped": rendered.skipped,
        "skip_errors": rendered.errors[:20],
        "config": asdict(config),
        "first_train_loss": losses[0] if losses else None,
        "last_train_loss": losses[-1] if losses else None,
        "first_window_train_loss": _mean(losses[: max(1, len(losses) // 5)]),
        "last_window_train_loss": _mean(losses[-max(1, len(losses) // 5) :]),
        "held_out_loss_before": metrics[0]["held_out_loss"],
        "held_out_loss_after": next((m["held_out_loss"] for m in reversed(metrics) if m.get("held_out_loss") is not None), None),
        "tokens_per_s": metrics[-1].get("tokens_per_s"),
        "checkpoint": str(checkpoint),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ---- evaluation on a gold set -----------------------------------------------------------------
@dataclass
class GoldSet:
    """A gold set rendered once: training samples (for the loss) and, per record, the decoded
    clips, the memory of its gold thoughts and its questions (for the answer accuracy)."""

    samples: list[Sample]
    items: list[tuple[list, str, list]]  # (clips, memory, qa_stream)


def prepare_gold(gold: list[tuple[Path, list]], processor, video_roots: list[Path], frame_width: int = 0) -> GoldSet:
    from curation.model.sft_render import clip_frames, parse_record, resolve_video
    from curation.model.vst_protocol import MEMORY_START, ClipInput, memory_line

    rendered = render_records(gold, processor, video_roots, frame_width)
    items = []
    for file, record in gold:
        try:
            video, text, thoughts, qas = parse_record(record)
            vs, ve = float(video["video_start"]), float(video["video_end"])
            spans = [(float(s), float(e)) for s, e, _ in thoughts]
            frames = clip_frames(resolve_video(video["video"], [file.parent, *video_roots]), vs, ve, spans, frame_width)
        except RecordError:
            continue
        clips = [ClipInput(s, e, f) for (s, e), f in zip(spans, frames)]
        memory = (text.get("previous") or MEMORY_START) + "".join(memory_line(c.start_s, c.end_s, t[2]) for c, t in zip(clips[:-1], thoughts[:-1]))
        items.append((clips, memory, qas))
    return GoldSet(rendered.samples, items)


def evaluate_gold(model, processor, gold: GoldSet, max_answer_tokens: int = 8) -> dict:
    """Loss on the gold records' assistant turns, and answer accuracy when the model answers each
    gold question as VST runs (memory = the gold thoughts of all clips but the last; then the last
    clip and `Time=Ts question`)."""
    from curation.model.vst_protocol import PrefixCache, Sampling, VSTEngine, answer_is_right, final_question, final_turns

    loss = mean_loss(model, gold.samples)
    engine = VSTEngine(model, processor)
    answers = []
    for clips, memory, qas in gold.items:
        cache = PrefixCache(engine)  # the questions of a record share its memory
        for s, e, question, answer in qas:
            out = engine.generate(
                memory, final_turns(clips[-1], final_question(float(e), question)), [clips[-1]], Sampling(max_new_tokens=max_answer_tokens), cache
            )
            answers.append({"question": question, "gold": answer, "output": out.text, "right": answer_is_right(_kind(answer), out.text, answer)})
    right = sum(a["right"] for a in answers)
    return {
        "loss": loss,
        "accuracy": right / len(answers) if answers else None,
        "questions": len(answers),
        "records": len(gold.samples),
        "answers": answers[:50],
    }


def _kind(answer: str) -> str:
    """The reward type a gold answer calls for: a letter, yes/no, else a number."""
    from curation.model.vst_protocol import boxed

    inner = (boxed(answer) or answer).strip()
    if inner in {"A", "B", "C", "D", "E"}:
        return "multiple_choice"
    if inner.lower() in {"yes", "no"}:
        return "yes_no"
    return "numerical"


def compare(
    export_a: Path,
    export_b: Path,
    gold_path: Path,
    model_path: Path,
    out_dir: Path,
    config: TrainConfig,
    video_roots: list[Path] | None = None,
    log=print,
) -> dict:
    """Same model, same budget, two exports; both evaluated on the same gold set; one report."""
    from curation.model.gold import load_gold
    from curation.model.tiny import load_model

    roots = list(video_roots or [])
    device = None if config.device == "auto" else config.device
    report: dict = {"gold": str(gold_path), "model": str(model_path), "config": asdict(config), "runs": {}}
    base_model, processor = load_model(model_path, device=device)
    gold = prepare_gold(load_gold(gold_path), processor, roots, config.frame_width)
    report["base"] = evaluate_gold(base_model, processor, gold)
    del base_model
    for name, export in (("a", export_a), ("b", export_b)):
        summary = train_sft(export, model_path, out_dir / name, config, roots, log)
        model, _ = load_model(summary["checkpoint"], device=device)
        summary["gold"] = evaluate_gold(model, processor, gold)
        report["runs"][name] = summary
    report["verdict"] = _verdict(report)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(report))
    return report


def _verdict(report: dict) -> str:
    a, b = report["runs"]["a"]["gold"], report["runs"]["b"]["gold"]
    if a["loss"] is None or b["loss"] is None:
        return "no gold loss to compare"
    better = "a" if a["loss"] < b["loss"] else "b"
    return f"{better} has the lower gold loss ({min(a['loss'], b['loss']):.4f} vs {max(a['loss'], b['loss']):.4f})"


def report_markdown(report: dict) -> str:
    def fmt(x):
        return "-" if x is None else (f"{x:.4f}" if isinstance(x, float) and not math.isnan(x) else str(x))

    lines = [
        "# SFT comparison",
        "",
        f"Model `{report['model']}`, {report['config']['steps']} steps, lr {report['config']['lr']}, seed {report['config']['seed']}; gold set `{report['gold']}`.",
        "",
        "| data | records | trained on | skipped | train loss first -> last | held-out loss before -> after | gold loss | gold accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| base model | - | - | - | - | - | {fmt(report['base']['loss'])} | {fmt(report['base']['accuracy'])} |",
    ]
    for name, run in report["runs"].items():
        lines.append(
            f"| {name}: `{run['export']}` | {run['records']} | {run['trained_on']} | {sum(run['skipped'].values())} | "
            f"{fmt(run['first_window_train_loss'])} -> {fmt(run['last_window_train_loss'])} | "
            f"{fmt(run['held_out_loss_before'])} -> {fmt(run['held_out_loss_after'])} | {fmt(run['gold']['loss'])} | {fmt(run['gold']['accuracy'])} |"
        )
    lines += ["", f"Verdict: {report['verdict']}.", ""]
    return "\n".join(lines)
