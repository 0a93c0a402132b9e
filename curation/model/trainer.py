"""A minimal SFT trainer: does this data teach a model what it should?

`train_sft` renders every record of an SFT export the way VST's loader does
(curation.model.sft_render), trains a Qwen2.5-VL (the tiny one on CPU, real weights on GPU, full
fine-tuning or LoRA through peft) for a fixed number of steps, logs train and held-out loss,
saves the checkpoint, the metrics (JSONL) and a loss plot. `evaluate_gold` measures a model on a
gold set: mean loss on its assistant turns, and answer accuracy when the model is run as VST runs
(spec section 4) with the gold thoughts as memory, graded by VST's reward rules
(curation.formats.rewards). `compare` trains the same model with the same budget on two exports,
once per training seed, and evaluates every checkpoint on the same gold set, which must hold
videos neither export trained on (checked by content hash and synthetic world): how a user checks
that filtering helped, with the spread over seeds that says whether a difference is noise.
"""

from __future__ import annotations

import json
import math
import random
import statistics
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


def _load_base(model_path: Path, config: TrainConfig):
    """(model, processor) ready to train: float32 on CPU for full fine-tuning."""
    import torch

    from curation.model.tiny import load_model

    if config.threads:
        torch.set_num_threads(config.threads)
    model, processor = load_model(model_path, device=None if config.device == "auto" else config.device)
    if not config.lora:
        model = model.float() if next(model.parameters()).device.type == "cpu" else model
    return model, processor


def fit(model, rendered: RenderedSet, config: TrainConfig, log=print):
    """Split (seeded), train; returns (model, train, held, metrics). LoRA adapters are merged at
    the end, so the model behaves (and saves) like the base model."""
    train, held = split_held_out(rendered.samples, config.eval_fraction, config.seed)
    model = prepare_model(model, config)
    metrics = train_loop(model, train, held, config, log)
    if config.lora:
        model = model.merge_and_unload()
    return model, train, held, metrics


def run_summary(export: Path, model_path: Path, rendered: RenderedSet, train: list, held: list, metrics: list[dict], config: TrainConfig) -> dict:
    losses = [m["train_loss"] for m in metrics if "train_loss" in m]
    return {
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
    }


def _write_run(out_dir: Path, metrics: list[dict], summary: dict, title: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    plot_losses(metrics, out_dir / "loss.png", title)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def _save_checkpoint(model, processor, folder: Path) -> str:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def train_sft(export: Path, model_path: Path, out_dir: Path, config: TrainConfig, video_roots: list[Path] | None = None, log=print) -> dict:
    """Train on an SFT export; writes out_dir/{checkpoint/, metrics.jsonl, loss.png, summary.json}."""
    _seed_everything(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, processor = _load_base(model_path, config)
    rendered = render_records(read_records(export), processor, [Path(export), *(video_roots or [])], config.frame_width)
    model, train, held, metrics = fit(model, rendered, config, log)
    summary = run_summary(export, model_path, rendered, train, held, metrics, config)
    summary["checkpoint"] = _save_checkpoint(model, processor, out_dir / "checkpoint")
    _write_run(out_dir, metrics, summary, f"SFT on {Path(export).name}")
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


# The reward each gold answer kind is graded with (curation/formats/rewards.py, VST's rules).
DATA_SOURCE = {"multiple_choice": "multiple choice", "numerical": "numerical", "yes_no": "yes or no"}


def answer_reward(gold: str, output: str) -> float:
    """The reward VST's rule gives `output` for the gold answer `gold` (`\\boxed{B}`, `\\boxed{3}`,
    `\\boxed{Yes}` or the bare answer): the same grading the RL export's rows get."""
    from curation.formats.rewards import compute_reward, extract_boxed

    truth = extract_boxed(gold)
    truth = (gold if truth is None else truth).strip()
    return compute_reward(DATA_SOURCE[_kind(gold)], output, [truth])


def evaluate_gold(model, processor, gold: GoldSet, max_answer_tokens: int = 8) -> dict:
    """Loss on the gold records' assistant turns, and answer accuracy when the model answers each
    gold question as VST runs (memory = the gold thoughts of all clips but the last; then the last
    clip and `Time=Ts question`), each answer graded by VST's reward rule for its kind."""
    from curation.model.vst_protocol import PrefixCache, Sampling, VSTEngine, final_question, final_turns

    loss = mean_loss(model, gold.samples)
    engine = VSTEngine(model, processor)
    answers = []
    for clips, memory, qas in gold.items:
        cache = PrefixCache(engine)  # the questions of a record share its memory
        for s, e, question, answer in qas:
            out = engine.generate(
                memory, final_turns(clips[-1], final_question(float(e), question)), [clips[-1]], Sampling(max_new_tokens=max_answer_tokens), cache
            )
            reward = answer_reward(answer, out.text)
            answers.append({"question": question, "gold": answer, "kind": _kind(answer), "output": out.text, "reward": reward, "right": reward == 1.0})
    right = sum(a["right"] for a in answers)
    by_kind = {}
    for a in answers:
        row = by_kind.setdefault(a["kind"], {"questions": 0, "right": 0})
        row["questions"] += 1
        row["right"] += int(a["right"])
    return {
        "loss": loss,
        "accuracy": right / len(answers) if answers else None,
        "questions": len(answers),
        "right": right,
        "by_kind": by_kind,
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


# ---- held out means held out: no evaluation video was trained on -------------------------------
class EvalOverlap(ValueError):
    """The gold set holds videos a training export holds (same bytes, or the same synthetic world)."""


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a video file, cached by (path, size, mtime): several records share a video."""
    from curation.video.probe import sha256_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def record_videos(records: list[tuple[Path, list]], video_roots: list[Path]) -> dict[Path, dict]:
    """path -> {sha256, world, name} of every video the records point at (records whose video
    cannot be found are skipped: the trainer skips them too). `world`: the synthetic world's script
    seed (curation.model.gold.world_seed) when the file keeps its synthetic name."""
    from curation.model.gold import world_seed
    from curation.model.sft_render import parse_record, resolve_video

    out: dict[Path, dict] = {}
    for file, record in records:
        try:
            video, *_ = parse_record(record)
            path = resolve_video(video["video"], [file.parent, *video_roots]).resolve()
        except (RecordError, KeyError, TypeError, AttributeError):
            continue
        if path not in out:
            out[path] = {"sha256": _sha256(path), "world": world_seed(path.name), "name": path.name}
    return out


def find_overlap(gold_videos: dict[Path, dict], arms: dict[str, dict[Path, dict]]) -> list[dict]:
    """Every (gold video, arm, training video) pair that is the same video: same sha256 (an
    export's `videos/<video_id>` link of the same file included), or the same synthetic world."""
    by_sha: dict[str, list[tuple[str, Path]]] = {}
    by_world: dict[int, list[tuple[str, Path]]] = {}
    for arm, videos in arms.items():
        for path, ident in videos.items():
            by_sha.setdefault(ident["sha256"], []).append((arm, path))
            if ident["world"] is not None:
                by_world.setdefault(ident["world"], []).append((arm, path))
    found = []
    for path, ident in sorted(gold_videos.items()):
        hits = {(arm, p): "sha256" for arm, p in by_sha.get(ident["sha256"], [])}
        for arm, p in by_world.get(ident["world"], []) if ident["world"] is not None else []:
            hits.setdefault((arm, p), "synthetic_world")
        found += [{"eval_video": str(path), "arm": arm, "train_video": str(p), "by": by} for (arm, p), by in sorted(hits.items())]
    return found


def overlap_message(overlap: list[dict], gold_label: str) -> str:
    shown = "; ".join(f"{Path(o['eval_video']).name} = {o['arm']}:{Path(o['train_video']).name} ({o['by']})" for o in overlap[:5])
    more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
    eval_videos = len({o["eval_video"] for o in overlap})
    return (
        f"the evaluation set {gold_label} shares {eval_videos} video(s) with the training exports: {shown}{more}. "
        "Evaluate on worlds neither export saw (--eval-worlds N --eval-seed S writes them into data/heldout/S/), "
        "or pass --allow-overlap to measure anyway (the report is then marked as not held out)"
    )


# ---- compare two exports over several seeds ---------------------------------------------------
def spread(values: list[float | None]) -> dict:
    """mean, sample std (0 for one value), min, max and n of the values that are not None."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "min": min(xs), "max": max(xs), "n": len(xs)}


def compare(
    export_a: Path,
    export_b: Path,
    gold_path: Path,
    model_path: Path,
    out_dir: Path,
    config: TrainConfig,
    video_roots: list[Path] | None = None,
    log=print,
    *,
    seeds: list[int] | None = None,
    names: tuple[str, str] = ("a", "b"),
    allow_overlap: bool = False,
    eval_limit: int | None = None,
    keep_checkpoints: bool = False,
    warn=None,
) -> dict:
    """Same model, same budget, two exports, once per training seed; every checkpoint evaluated on
    the same gold set (loss + reward-graded answer accuracy); one report with per-seed rows and the
    spread over seeds. Refuses (EvalOverlap) a gold set sharing a video with either export unless
    `allow_overlap`, and then warns (`warn`, default `log`) and marks the report."""
    from curation.model.gold import load_gold

    seeds = list(seeds) if seeds else [config.seed]
    if len(set(names)) != 2:
        raise ValueError(f"the two arms need two different names, got {names}")
    roots = list(video_roots or [])
    exports = dict(zip(names, (Path(export_a), Path(export_b))))
    gold_records = load_gold(gold_path, eval_limit)
    train_records = {name: read_records(path) for name, path in exports.items()}
    overlap = find_overlap(record_videos(gold_records, roots), {n: record_videos(r, [exports[n], *roots]) for n, r in train_records.items()})
    if overlap and not allow_overlap:
        raise EvalOverlap(overlap_message(overlap, str(gold_path)))
    if overlap:
        (warn or log)(f"WARNING: NOT HELD OUT: {overlap_message(overlap, str(gold_path))}")
    report: dict = {
        "gold": str(gold_path),
        "model": str(model_path),
        "config": asdict(config),
        "seeds": seeds,
        "arms": {n: str(p) for n, p in exports.items()},
        "held_out": not overlap,
        "overlap": overlap,
        "runs": {n: [] for n in names},
    }
    base_model, processor = _load_base(model_path, config)
    gold = prepare_gold(gold_records, processor, roots, config.frame_width)
    if not gold.samples:
        raise ValueError(f"the evaluation set {gold_path} has no usable record")
    report["base"] = evaluate_gold(base_model, processor, gold)
    del base_model
    rendered = {n: render_records(train_records[n], processor, [exports[n], *roots], config.frame_width) for n in names}
    for seed in seeds:
        for name in names:
            report["runs"][name].append(_seed_run(name, exports[name], rendered[name], gold, model_path, out_dir / name / f"seed-{seed}", config, seed, keep_checkpoints, log))
    report["summary"] = {n: _arm_summary(report["runs"][n]) for n in names}
    report["paired"] = _paired(report["runs"], names)
    report["verdict"] = _verdict(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(report))
    return report


def _seed_run(name, export, rendered, gold, model_path, out_dir, config, seed, keep_checkpoint, log) -> dict:
    """One arm, one seed: train from the base weights, evaluate on the gold set."""
    from dataclasses import replace

    config = replace(config, seed=seed)
    _seed_everything(seed)
    model, processor = _load_base(model_path, config)
    model, train, held, metrics = fit(model, rendered, config, log)
    summary = {"arm": name, "seed": seed, **run_summary(export, model_path, rendered, train, held, metrics, config)}
    summary["gold"] = evaluate_gold(model, processor, gold)
    summary["checkpoint"] = _save_checkpoint(model, processor, out_dir / "checkpoint") if keep_checkpoint else None
    _write_run(out_dir, metrics, summary, f"{name}: SFT on {Path(export).name}, seed {seed}")
    return summary


def _arm_summary(runs: list[dict]) -> dict:
    return {
        "export": runs[0]["export"],
        "records": runs[0]["records"],
        "eval_loss": spread([r["gold"]["loss"] for r in runs]),
        "eval_accuracy": spread([r["gold"]["accuracy"] for r in runs]),
        "split_loss": spread([r["held_out_loss_after"] for r in runs]),
    }


def _paired(runs: dict[str, list[dict]], names: tuple[str, str]) -> dict:
    """Per-seed differences (second arm minus first): the same seed, so the same order of draws."""
    first, second = (runs[n] for n in names)
    loss = [b["gold"]["loss"] - a["gold"]["loss"] for a, b in zip(first, second) if None not in (a["gold"]["loss"], b["gold"]["loss"])]
    acc = [b["gold"]["accuracy"] - a["gold"]["accuracy"] for a, b in zip(first, second) if None not in (a["gold"]["accuracy"], b["gold"]["accuracy"])]
    return {"of": f"{names[1]} - {names[0]}", "eval_loss": spread(loss), "eval_accuracy": spread(acc)}


def _verdict(report: dict) -> str:
    """Which arm has the lower mean eval loss, in how many seeds, and the paired difference with
    its spread: the reader judges noise from the numbers, the verdict does not hide them."""
    first, second = report["runs"]
    pairs = [(a["gold"]["loss"], b["gold"]["loss"]) for a, b in zip(report["runs"][first], report["runs"][second])]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    if not pairs:
        return "no eval loss to compare"
    sa, sb = (report["summary"][n] for n in (first, second))
    lower = first if sa["eval_loss"]["mean"] <= sb["eval_loss"]["mean"] else second
    wins = sum((x < y) if lower == first else (y < x) for x, y in pairs)
    loss, acc = report["paired"]["eval_loss"], report["paired"]["eval_accuracy"]
    text = (
        f"{lower} has the lower mean eval loss ({sa['eval_loss']['mean']:.4f} {first} vs {sb['eval_loss']['mean']:.4f} {second}; "
        f"lower in {wins}/{len(pairs)} seeds; paired {report['paired']['of']}: {loss['mean']:+.4f} ± {loss['std']:.4f})"
    )
    if acc["n"]:
        text += f"; eval accuracy {sa['eval_accuracy']['mean']:.3f} {first} vs {sb['eval_accuracy']['mean']:.3f} {second} (paired {acc['mean']:+.3f} ± {acc['std']:.3f})"
    if not report["held_out"]:
        text += "; NOT HELD OUT: the evaluation shares videos with the training data"
    return text


def _fmt(x) -> str:
    return "-" if x is None else (f"{x:.4f}" if isinstance(x, float) and not math.isnan(x) else str(x))


def _fmt_spread(s: dict) -> str:
    if not s["n"]:
        return "-"
    return f"{s['mean']:.4f} ± {s['std']:.4f} [{s['min']:.4f}, {s['max']:.4f}]"


def report_markdown(report: dict) -> str:
    cfg = report["config"]
    lines = ["# SFT comparison", ""]
    if not report["held_out"]:
        videos = len({o["eval_video"] for o in report["overlap"]})
        lines += [f"**WARNING: NOT HELD OUT. {videos} evaluation video(s) are also in the training exports; the eval numbers measure memory, not generalisation.**", ""]
    lines += [
        f"Model `{report['model']}`, {cfg['steps']} steps, lr {cfg['lr']}, seeds {', '.join(map(str, report['seeds']))}; "
        f"evaluation set `{report['gold']}` ({report['base']['records']} records, {report['base']['questions']} questions; "
        "accuracy graded by VST's reward rules).",
        "",
        "| arm | seed | records | trained on | skipped | train loss first -> last | split loss before -> after | eval loss | eval accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| base model | - | - | - | - | - | - | {_fmt(report['base']['loss'])} | {_fmt(report['base']['accuracy'])} |",
    ]
    for name, runs in report["runs"].items():
        for run in runs:
            lines.append(
                f"| {name} | {run['seed']} | {run['records']} | {run['trained_on']} | {sum(run['skipped'].values())} | "
                f"{_fmt(run['first_window_train_loss'])} -> {_fmt(run['last_window_train_loss'])} | "
                f"{_fmt(run['held_out_loss_before'])} -> {_fmt(run['held_out_loss_after'])} | {_fmt(run['gold']['loss'])} | {_fmt(run['gold']['accuracy'])} |"
            )
    lines += ["", "Over seeds (mean ± std [min, max]):", "", "| arm | export | eval loss | eval accuracy |", "| --- | --- | --- | --- |"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | `{s['export']}` | {_fmt_spread(s['eval_loss'])} | {_fmt_spread(s['eval_accuracy'])} |")
    paired = report["paired"]
    lines.append(f"| {paired['of']} (paired by seed) | | {_fmt_spread(paired['eval_loss'])} | {_fmt_spread(paired['eval_accuracy'])} |")
    lines += ["", f"Verdict: {report['verdict']}.", ""]
    return "\n".join(lines)


def compact_report(report: dict) -> dict:
    """The report as one small JSON object (`--json`): per arm the per-seed eval loss and accuracy
    and their spread, the base model, the paired difference, the overlap, the verdict."""
    return {
        "eval": report["gold"],
        "held_out": report["held_out"],
        "overlap": len({o["eval_video"] for o in report["overlap"]}),
        "seeds": report["seeds"],
        "steps": report["config"]["steps"],
        "questions": report["base"]["questions"],
        "base": {"eval_loss": report["base"]["loss"], "eval_accuracy": report["base"]["accuracy"]},
        "arms": {
            name: {
                "export": s["export"],
                "records": s["records"],
                "per_seed": [{"seed": r["seed"], "eval_loss": r["gold"]["loss"], "eval_accuracy": r["gold"]["accuracy"]} for r in report["runs"][name]],
                "eval_loss": s["eval_loss"],
                "eval_accuracy": s["eval_accuracy"],
            }
            for name, s in report["summary"].items()
        },
        "paired": report["paired"],
        "verdict": report["verdict"],
    }
