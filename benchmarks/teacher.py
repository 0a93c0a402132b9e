"""Teacher client throughput against a local OpenAI-compatible server with a fixed latency.

    python benchmarks/teacher.py [--latency 0.2] [--concurrency 1 8 32] [--rounds 6]

For each concurrency c: c * rounds distinct requests through TeacherClient (retries, cache,
validation and usage accounting included), achieved requests/s vs the ideal c / latency.
Then the largest set again with a warm cache: its time vs the cold run's.
Targets (issue 3): >= 80% of ideal up to 32; warm re-run < 5% of the cold time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pydantic import BaseModel  # noqa: E402

from _teacher_fixtures import FakeTeacherServer  # noqa: E402
from curation.teacher import TeacherCall, TeacherClient, TeacherConfig  # noqa: E402


class Answer(BaseModel):
    answer: str


def calls(n: int, tag: str) -> list[TeacherCall]:
    return [TeacherCall("bench", f"{tag}-{i}", [{"role": "user", "content": f"request {tag} {i}"}], Answer, "bench.v1", 32) for i in range(n)]


def timed(client: TeacherClient, batch: list[TeacherCall]) -> float:
    started = time.perf_counter()
    results = client.complete_all(batch)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed: {failed[0].reason}: {failed[0].error}")
    return elapsed


def serve(latency: float, conn) -> None:
    """The test server in its own process, so that its work does not share the client's GIL."""
    with FakeTeacherServer(latency_s=latency) as server:
        conn.send(server.port)
        conn.recv()  # until the benchmark is done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=6, help="requests per concurrency slot")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    out = {"latency_s": args.latency, "runs": []}
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=serve, args=(args.latency, child), daemon=True)
    proc.start()
    base_url = f"http://127.0.0.1:{parent.recv()}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.concurrency:
            config = TeacherConfig.model_validate({"text": {"base_url": base_url, "model": "bench", "structured_output": "json_object_schema"}, "concurrency": c})
            client = TeacherClient(config, Path(tmp) / f"cache-{c}")
            batch = calls(c * args.rounds, f"c{c}")
            timed(client, calls(min(c, 4), f"warmup{c}"))  # connections opened
            cold = timed(client, batch)
            warm = timed(TeacherClient(config, Path(tmp) / f"cache-{c}"), batch)  # a new client: only the disk cache helps
            ideal = c / args.latency
            out["runs"].append({
                "concurrency": c, "requests": len(batch), "cold_s": round(cold, 3), "req_per_s": round(len(batch) / cold, 1),
                "ideal_req_per_s": round(ideal, 1), "of_ideal": round(len(batch) / cold / ideal, 3),
                "warm_s": round(warm, 4), "warm_of_cold": round(warm / cold, 4),
            })  # fmt: skip
    parent.send("stop")
    proc.join(10)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"teacher client vs a local server with {args.latency * 1000:.0f} ms latency")
    print(f"{'conc':>5} {'reqs':>5} {'cold s':>7} {'req/s':>7} {'ideal':>7} {'% ideal':>8} {'warm s':>8} {'warm/cold':>10}")
    for r in out["runs"]:
        print(f"{r['concurrency']:>5} {r['requests']:>5} {r['cold_s']:>7.2f} {r['req_per_s']:>7.1f} {r['ideal_req_per_s']:>7.1f} "
              f"{100 * r['of_ideal']:>7.1f}% {r['warm_s']:>8.3f} {100 * r['warm_of_cold']:>9.2f}%")  # fmt: skip


if __name__ == "__main__":
    main()
