"""Process helpers the kill tests share."""

from __future__ import annotations

import signal

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
