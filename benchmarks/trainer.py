"""Trainer throughput: SFT tokens per second on CPU with the tiny Qwen2.5-VL.

    .venv/bin/python benchmarks/trainer.py [--steps 30] [--threads 1 2] [--hidden 64 --layers 2]

Records: the gold set of the synthetic samples (whole videos, one clip per scene, three
questions), rendered once as VST's loader does (frames decoded 128 px wide; the tiny processor
resizes to 56 px anyway). Each step is one record, forward + backward + AdamW; tokens/s counts
every input token (text and visual) and is measured after two warm-up steps. Prints one JSON line
per thread count.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()

    import torch

    from curation.model.gold import load_gold
    from curation.model.tiny import init_tiny, load_model
    from curation.model.trainer import render_records

    path = init_tiny(Path(tempfile.mkdtemp(prefix="vstw-bench-")) / "tiny", hidden=args.hidden, layers=args.layers)
    _, processor = load_model(path, device="cpu")
    samples = render_records(load_gold(ROOT / "data" / "samples" / "synthetic"), processor, [], 128).samples
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model, _ = load_model(path, device="cpu")
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tokens, started = 0, None
        for step in range(args.steps + 2):
            if step == 2:
                tokens, started = 0, time.perf_counter()
            sample = samples[step % len(samples)]
            optimizer.zero_grad(set_to_none=True)
            model(**sample.model_inputs()).loss.backward()
            optimizer.step()
            tokens += int(sample.input_ids.numel())
        seconds = time.perf_counter() - started
        params = sum(p.numel() for p in model.parameters())
        print(
            json.dumps(
                {
                    "benchmark": "trainer",
                    "threads": threads,
                    "hidden": args.hidden,
                    "layers": args.layers,
                    "parameters": params,
                    "steps": args.steps,
                    "tokens_per_step": round(tokens / args.steps),
                    "tokens_per_s": round(tokens / seconds, 1),
                    "s_per_step": round(seconds / args.steps, 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
