"""What the kill and equivalence tests share: killing a run's process tree at a chosen moment,
and tables in a form that compares across runs and runners."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import psutil


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (spawned workers, Ray's gcs/raylet included)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def kill_when_parts(cmd: list[str], env: dict, run_dir, table: str, parts: int, timeout_s: float = 240) -> set[str]:
    """Start `cmd` (a `vstw run`), SIGKILL its whole tree once `table` has `parts` parts in
    `run_dir`; returns the parts there at the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(run_dir.existing_parts(table)) < parts:
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    return run_dir.existing_parts(table)


def canonical(run_dir, table: str) -> list[str]:
    """A table as sorted JSON lines, without the `run` column: comparable across runs/runners."""
    rows = run_dir.read_rows(table)
    for row in rows:
        row.pop("run", None)
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
