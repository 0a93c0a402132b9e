"""Review loop timings against a running Label Studio: push N chains, annotate them through the
API, pull, apply. Uses copies of a run's chains (new chain ids, same videos), pushed into a
throw-away project of that run.

    vstw review serve
    python -m annotation.benchmark RUN --chains 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from annotation.client import connect_local_or_remote
from annotation.pull import pull_reviews
from annotation.push import push_chains, select_chains
from annotation.server import home_dir
from curation.reviews import apply_reviews
from pipelines.commands._util import project_root, resolve_run
from pipelines.rundir import RunDir


def _copies(chains: list[dict], n: int) -> list[dict]:
    return [dict(chains[i % len(chains)], chain_id=f"bench-{i:06d}") for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--apply-chains", type=int, default=100_000, help="size of the in-memory apply_reviews run")
    args = parser.parse_args()

    run_dir = RunDir(resolve_run(args.run, local=True))
    conn = connect_local_or_remote(home_dir(project_root()))
    chains = _copies(select_chains(run_dir), args.chains)
    title = f"benchmark {run_dir.name} {int(time.time())}"
    numbers: dict[str, float | int] = {"chains": len(chains)}

    t = time.perf_counter()
    report = push_chains(conn, run_dir, chains, title)
    numbers["push_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    push_chains(conn, run_dir, chains, title)
    numbers["push_again_s"] = round(time.perf_counter() - t, 2)

    tasks = list(conn.client.tasks.list(project=report.project_id, fields="all"))
    t = time.perf_counter()
    for k, task in enumerate(tasks):
        decision = "reject" if k % 4 == 3 else "accept"
        result = json.loads(json.dumps(task.predictions[0].result))
        result.append({"id": "d", "from_name": "decision", "to_name": "video", "type": "choices", "value": {"choices": [decision]}})
        conn.client.annotations.create(id=task.id, result=result, lead_time=30.0)
    numbers["annotate_via_api_s"] = round(time.perf_counter() - t, 2)

    bench_dir = RunDir(Path(run_dir.root.parent) / f".bench-{run_dir.name}")
    bench_dir.root.mkdir(exist_ok=True)
    (bench_dir.root / "chains").mkdir(exist_ok=True)
    t = time.perf_counter()
    summary = pull_reviews(conn, bench_dir, title)
    numbers["pull_s"] = round(time.perf_counter() - t, 2)
    numbers["reviews"] = summary["ok"]

    many = _copies(chains, args.apply_chains)
    reviews = bench_dir.read_rows("reviews")
    t = time.perf_counter()
    kept = apply_reviews(many, reviews)
    numbers["apply_reviews_s"] = round(time.perf_counter() - t, 3)
    numbers["apply_reviews_chains"] = len(many)
    numbers["apply_reviews_kept"] = len(kept)
    conn.client.projects.delete(report.project_id)
    print(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
