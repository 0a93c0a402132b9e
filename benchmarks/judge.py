"""Judge time vs number of clips, with and without reuse of the memory's KV cache.

    .venv/bin/python benchmarks/judge.py [--clips 4 8 16 32] [--threads 1] [--repeats 2]
    .venv/bin/python benchmarks/judge.py --hidden 256 --layers 4   # a less tiny model: compute, not overhead

One chain of N clips (2 s each, 4 frames at 2 fps from a synthetic sample video, one ~15-token
thought per clip), judged by the tiny Qwen2.5-VL on CPU in the two streaming modes:
- likelihood: every thought scored given its clip and the memory of the thoughts before it;
- own thinking: the model writes 8 greedy tokens per clip, then answers (8 tokens).
"cached" keeps the KV cache of system + memory across clips (what the judge does);
"no cache" re-encodes the whole prompt at every call (the reference). Prints a table and one
JSON line, with the tokens run through the model by each path (load-independent: the cached
path's count grows linearly with N, the other's quadratically). On the tiny model a forward pass
costs about the same for 10 or 1,000 tokens (per-call overhead dominates), so the time ratio
shows mostly at 16-32 clips or with --hidden 256 --layers 4; on real 3B-7B weights the time
follows the token counts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.model.judge import ChainInput, JudgeConfig, own_thinking, thought_likelihood  # noqa: E402
from curation.model.vst_protocol import ClipInput, VSTEngine  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "white", "magenta"]
SHAPES = ["circle", "square", "triangle"]


def make_chain(n: int, frames) -> ChainInput:
    clips, thoughts = [], []
    for k in range(n):
        start = k * 2.0
        picked = frames[[(4 * k + j) % len(frames) for j in range(4)]]
        clips.append(ClipInput(start, start + 2.0, picked))
        thoughts.append(f"A {COLOURS[k % 6]} {SHAPES[k % 3]} appears and moves left; the {COLOURS[(k + 1) % 6]} one leaves.")
    return ChainInput(f"bench-{n}", "numerical", "How many shapes appear in total?", str(n), clips, thoughts)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the
    steadier measure (other processes' load stretches wall time, not our CPU time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = work done)")
    parser.add_argument("--repeats", type=int, default=1, help="best of N")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: a tiny one built in a temp folder)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size of the built model (64: the tests' tiny one)")
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()

    import tempfile

    import torch

    from curation.model.tiny import init_tiny, load_model
    from curation.video.decode import read_frames

    torch.set_num_threads(args.threads)
    model_path = args.model or init_tiny(Path(tempfile.mkdtemp(prefix="vstw-bench-")) / "tiny", hidden=args.hidden, layers=args.layers)
    model, processor = load_model(model_path, device="cpu")
    frames = read_frames(ROOT / "data" / "samples" / "synthetic" / "synthetic-7-000.mp4", list(range(0, 500, 12)), target_width=128)
    config = JudgeConfig(samples=1, temperature=0.0, max_thought_tokens=8, max_answer_tokens=8)
    engines = {"cached": VSTEngine(model, processor, use_cache=True), "no_cache": VSTEngine(model, processor, use_cache=False)}
    thought_likelihood(engines["cached"], make_chain(2, frames))  # warm-up

    rows = []
    for n in args.clips:
        chain = make_chain(n, frames)
        row = {"clips": n}
        for mode, fn in (("likelihood", lambda e: thought_likelihood(e, chain)), ("own_thinking", lambda e: own_thinking(e, chain, config))):
            for name, engine in engines.items():
                engine.tokens_run = 0
                runs = [timed(lambda: fn(engine)) for _ in range(args.repeats)]
                row[f"{mode}_{name}_s"] = round(min(w for w, _ in runs), 3)
                row[f"{mode}_{name}_cpu_s"] = round(min(c for _, c in runs), 3)
                row[f"{mode}_{name}_tokens"] = engine.tokens_run // args.repeats
            row[f"{mode}_ratio"] = round(row[f"{mode}_no_cache_cpu_s"] / row[f"{mode}_cached_cpu_s"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        "| clips | likelihood cached: CPU s (tokens) | no cache: CPU s (tokens) | ratio | own thinking cached: CPU s (tokens) | no cache: CPU s (tokens) | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [str(r["clips"])]
        for mode in ("likelihood", "own_thinking"):
            cells += [
                f"{r[f'{mode}_cached_cpu_s']} ({r[f'{mode}_cached_tokens']})",
                f"{r[f'{mode}_no_cache_cpu_s']} ({r[f'{mode}_no_cache_tokens']})",
                str(r[f"{mode}_ratio"]),
            ]
        print("| " + " | ".join(cells) + " |")
    print(
        json.dumps(
            {
                "benchmark": "judge",
                "threads": args.threads,
                "hidden": args.hidden,
                "layers": args.layers,
                "cpus": platform.processor() or platform.machine(),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
